import Testing
@testable import IPIPCore

/// The outer header on its own (written by the encapsulation flow, parsed by the decapsulation flow),
/// and the rules in which the two inner families differ.
@Suite struct EncapsulationTests {
    let local = IPv4Address(198, 51, 100, 37)
    let peer = IPv4Address(203, 0, 113, 86)

    func outer(protocolNumber: UInt8, source: IPv4Address? = nil, destination: IPv4Address? = nil, moreFragments: Bool = false,
               payload: [UInt8] = [UInt8](repeating: 0x45, count: 28)) -> [UInt8] {
        IPv4HeaderFields(tos: 0x02, moreFragments: moreFragments, protocolNumber: protocolNumber,
                         source: source ?? peer, destination: destination ?? local).bytes(payload: payload)
    }

    func parse(_ bytes: [UInt8]) -> Encapsulation.Parsed {
        bytes.withUnsafeBytes { Encapsulation.ipInIPv4.parse($0, local: local) }
    }

    @Test func writtenHeaderParsesBackToItsFieldsForBothFamilies() throws {
        for (innerProtocol, family) in [(IPProtocolNumber.ipip, Encapsulation.InnerFamily.ipv4), (IPProtocolNumber.ipv6, .ipv6)] {
            var buffer = [UInt8](repeating: 0, count: Encapsulation.ipInIPv4.headerLength + 40)
            buffer.withUnsafeMutableBytes {
                Encapsulation.ipInIPv4.write(.init(tos: 0xB9, identification: 0x1234, dontFragment: true, ttl: 17,
                                                   innerProtocol: innerProtocol, source: peer, destination: local),
                                             innerLength: 40, into: $0)
            }
            let view = try buffer.withUnsafeBytes { try IPv4PacketView(validating: $0, exactLength: true) }
            #expect(view.tos == 0xB9 && view.identification == 0x1234 && view.dontFragment && view.ttl == 17)
            guard case let .tunnelled(source, inner, parsedFamily, ecn) = parse(buffer) else {
                Issue.record("not parsed as a tunnelled packet")
                continue
            }
            #expect(source == peer && inner == 20..<60 && parsedFamily == family && ecn == .ect1)
        }
    }

    @Test func parseSortsWhatIsNotATunnelledPacket() {
        guard case .fragment(let source) = parse(outer(protocolNumber: IPProtocolNumber.ipip, moreFragments: true)) else {
            Issue.record("a fragment is to be reassembled")
            return
        }
        #expect(source == peer)
        guard case .icmp = parse(outer(protocolNumber: IPProtocolNumber.icmp)) else {
            Issue.record("ICMP goes to the outer-ICMP classifier")
            return
        }
        guard case .invalid(.notForUs) = parse(outer(protocolNumber: IPProtocolNumber.ipip, destination: IPv4Address(198, 51, 100, 38))),
              case .invalid(.malformedOuter) = parse(outer(protocolNumber: IPProtocolNumber.udp)),
              case .invalid(.malformedOuter) = parse(Array(outer(protocolNumber: IPProtocolNumber.ipip)[0..<19])) else {
            Issue.record("another destination, another protocol and a short header are refused")
            return
        }
        var badChecksum = outer(protocolNumber: IPProtocolNumber.ipip)
        badChecksum[10] ^= 0xFF
        guard case .invalid(.malformedOuter) = parse(badChecksum) else {
            Issue.record("a bad header checksum is refused")
            return
        }
    }

    /// IPv4 without DF may be fragmented to the path; IPv6 never is, and its MTU never drops below 1280.
    @Test func theFamiliesFitAPathAsTheirRFCsSay() throws {
        let withDF = IPv4HeaderFields(dontFragment: true, protocolNumber: IPProtocolNumber.udp, source: peer, destination: local)
            .bytes(payload: [UInt8](repeating: 0, count: 1380))
        let withoutDF = IPv4HeaderFields(protocolNumber: IPProtocolNumber.udp, source: peer, destination: local)
            .bytes(payload: [UInt8](repeating: 0, count: 1380))
        try withDF.withUnsafeBytes { bytes in
            let packet = try #require(IPv4PacketView.checkedInner(bytes))
            guard case .tooBig(mtu: 1300) = packet.fit(length: bytes.count, pathMTU: 1300), case .fits = packet.fit(length: bytes.count, pathMTU: 1400) else {
                Issue.record("IPv4 with DF: too big below its length, fits at it")
                return
            }
        }
        try withoutDF.withUnsafeBytes { bytes in
            let packet = try #require(IPv4PacketView.checkedInner(bytes))
            guard case .fragment(mtu: 1300) = packet.fit(length: bytes.count, pathMTU: 1300) else {
                Issue.record("IPv4 without DF is fragmented to the path")
                return
            }
        }
        var ipv6 = [UInt8](repeating: 0, count: 1400)
        ipv6.withUnsafeMutableBytes {
            IPv6HeaderFields(payloadLength: 1360, nextHeader: IPProtocolNumber.udp, hopLimit: 64,
                             source: IPv6Address("2001:db8:b::87")!, destination: IPv6Address("2001:db8:b::20")!).write(into: $0)
        }
        try ipv6.withUnsafeBytes { bytes in
            let packet = try #require(IPv6PacketView.checkedInner(bytes))
            guard case .tooBig(mtu: 1280) = packet.fit(length: bytes.count, pathMTU: 1000),
                  case .tooBig(mtu: 1300) = packet.fit(length: bytes.count, pathMTU: 1300),
                  case .fits = packet.fit(length: bytes.count, pathMTU: 1400) else {
                Issue.record("IPv6 is never fragmented, and its MTU is at least 1280")
                return
            }
            let rules = EncapsulationRules()
            #expect(packet.outerDontFragment(rules, pathMTU: 1400) && !packet.outerDontFragment(rules, pathMTU: 1200))
        }
    }

    /// Each error says the same thing in either family's words.
    @Test func tunnelErrorsMapToEachFamilysMessage() {
        #expect(TunnelICMPError.tooBig(mtu: 1400).icmp == (3, 4, 1400))
        #expect(TunnelICMPError.tooBig(mtu: 1400).icmpv6 == (2, 0, 1400))
        #expect(TunnelICMPError.unreachable.icmp == (3, 1, 0))
        #expect(TunnelICMPError.unreachable.icmpv6 == (1, 3, 0))
        #expect(TunnelICMPError.timeExceeded.icmp == (11, 0, 0))
        #expect(TunnelICMPError.timeExceeded.icmpv6 == (3, 0, 0))
    }
}
