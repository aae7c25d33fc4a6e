import PropertyBased
import Testing
@testable import IPIPCore

/// IPv6 addresses, the IPv6 header codec, ICMPv6 checksums and errors against scapy's bytes, and the
/// IPv6 routing table against a linear scan.
@Suite struct IPv6CodecTests {
    @Test(arguments: [
        ("2001:db8:b::87", "2001:db8:b::87"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("::", "::"), ("::1", "::1"),
        ("fe80::1:2", "fe80::1:2"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"), ("1::", "1::"), ("0:0:1::", "0:0:1::"),
    ])
    func parsesAndPrintsTheCanonicalForm(text: String, canonical: String) throws {
        let address = try #require(IPv6Address(text))
        #expect(address.description == canonical)
        #expect(IPv6Address(canonical) == address)
    }

    @Test(arguments: ["", ":", ":::", "1:::2", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
                      "::1:2:3:4:5:6:7:8", "1:", ":1", "192.0.2.1", "::ffff:192.0.2.1", "fe80::1%eth0", "2001:db8::/64"])
    func refusesWhatIsNoAddress(text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func prefixesKnowHostBitsAndContainment() throws {
        let lan = try #require(IPv6Prefix("2001:db8:b::/64"))
        #expect(!lan.hasHostBitsSet && lan.contains(IPv6Address("2001:db8:b::87")!) && !lan.contains(IPv6Address("2001:db8:c::1")!))
        let sloppy = try #require(IPv6Prefix("2001:db8:b::87/64"))
        #expect(sloppy.hasHostBitsSet && sloppy.network == lan)
        #expect(IPv6Prefix("2001:db8::/129") == nil && IPv6Prefix("2001:db8::/") == nil && IPv6Prefix("2001:db8::/6x") == nil)
        #expect(IPv6Prefix("2001:db8::1")?.length == 128)
        #expect(IPv6Prefix("::/0")!.contains(IPv6Address("2001:db8::1")!))
        for length in [0, 1, 63, 64, 65, 127, 128] {
            let masked = IPv6Address(high: .max, low: .max).masked(to: length)
            #expect(masked.high.nonzeroBitCount + masked.low.nonzeroBitCount == length)
        }
    }

    @Test func solicitedNodeGroupAndItsMAC() {
        let ghost = IPv6Address("2001:db8:b::1:87")!
        #expect(ghost.solicitedNode.description == "ff02::1:ff01:87")
        #expect(ghost.solicitedNode.multicastMAC.description == "33:33:ff:01:00:87")
        #expect(IPv6Address("fe80::1")!.isLinkLocal && !IPv6Address("fec0::1")!.isLinkLocal)
        #expect(IPv6Address("::ffff:c000:201")!.isIPv4Mapped && !IPv6Address("::ffff:c000:201")!.isUnicastCandidate)
    }

    @Test func readsScapysHeader() throws {
        try Fixture.bytes("ipv6-icmpv6-echo").withUnsafeBytes { buffer in
            let packet = try IPv6PacketView(validating: buffer, exactLength: true)
            #expect(packet.trafficClass == 0x02 && packet.ecn == .ect0 && packet.hopLimit == 63)
            #expect(packet.nextHeader == IPv6NextHeader.icmpv6 && packet.payloadLength == buffer.count - 40)
            #expect(packet.source == IPv6Address("2001:db8:b::20") && packet.destination == IPv6Address("2001:db8:b::87"))
            #expect(InternetChecksum.verifyIPv6Upper(packet.bytes, nextHeader: IPv6NextHeader.icmpv6))
        }
        var padded = Fixture.bytes("ipv6-icmpv6-echo") + [0, 0]
        try padded.withUnsafeBytes { buffer throws in
            #expect(throws: IPv6ParseError.lengthMismatch) { try IPv6PacketView(validating: buffer, exactLength: true) }
            #expect(try IPv6PacketView(validating: buffer).bytes.count == buffer.count - 2)
            return ()
        }
        padded[45] ^= 0x40   // inside the ICMPv6 message
        padded.withUnsafeBytes { buffer in
            #expect(!InternetChecksum.verifyIPv6Upper(UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count - 2)]), nextHeader: 58))
        }
        #expect(throws: IPv6ParseError.badVersion) { try Fixture.bytes("ipv4-icmp-echo").withUnsafeBytes { try IPv6PacketView(validating: $0) } }
        #expect(throws: IPv6ParseError.truncated) { try Array(Fixture.bytes("ipv6-icmpv6-echo")[0..<39]).withUnsafeBytes { try IPv6PacketView(validating: $0) } }
    }

    /// ipipd's ICMPv6 errors, byte for byte as scapy builds them (checksum included, for source ::).
    @Test func errorsMatchScapy() {
        let echo = Fixture.bytes("ipv6-icmpv6-echo")
        echo.withUnsafeBytes { original in
            #expect(ICMPv6ErrorRules.packet(type: ICMPv6Type.packetTooBig, code: 0, parameter: 1380, about: original)
                    == Fixture.bytes("icmpv6-packet-too-big"))
            #expect(ICMPv6ErrorRules.packet(type: ICMPv6Type.destinationUnreachable, code: ICMPv6UnreachableCode.addressUnreachable, about: original)
                    == Fixture.bytes("icmpv6-address-unreachable"))
            #expect(ICMPv6ErrorRules.mayReport(on: original, type: ICMPv6Type.packetTooBig))
        }
        // Never about an ICMPv6 error, nor to ::, nor (but for "too big") about a packet to a group.
        Fixture.bytes("icmpv6-packet-too-big").withUnsafeBytes { error in
            #expect(!ICMPv6ErrorRules.mayReport(on: error, type: ICMPv6Type.destinationUnreachable))
        }
        var toGroup = echo
        toGroup[24] = 0xFF
        toGroup.withUnsafeBytes { #expect(!ICMPv6ErrorRules.mayReport(on: $0, type: ICMPv6Type.destinationUnreachable)) }
        toGroup.withUnsafeBytes { #expect(ICMPv6ErrorRules.mayReport(on: $0, type: ICMPv6Type.packetTooBig)) }
        // A quote never makes the error larger than 1280 bytes.
        let big = [UInt8(0x60), 0, 0, 0, 0x07, 0xD0, 17, 64] + Array(echo[8..<40]) + [UInt8](repeating: 7, count: 2000)
        big.withUnsafeBytes { #expect(ICMPv6ErrorRules.packet(type: 2, code: 0, parameter: 1280, about: $0).count == 1280) }
    }
}

/// The extension-header chain a forwarded inner IPv6 packet may carry (issue 27, finding 6).
@Suite struct IPv6ExtensionHeaderTests {
    /// An ICMPv6 echo from h1 to h2 behind `headers` (each: next header, then its bytes after it).
    func judge(_ headers: [(type: UInt8, body: [UInt8])]) -> IPv6ExtensionHeaders.Verdict {
        var payload: [UInt8] = []
        for (index, header) in headers.enumerated() {
            let next = index + 1 < headers.count ? headers[index + 1].type : IPv6NextHeader.icmpv6
            payload += [next] + header.body
        }
        payload += [128, 0, 0, 0, 0, 1, 0, 1]
        var packet = [UInt8](repeating: 0, count: 40) + payload
        packet.withUnsafeMutableBytes { buffer in
            IPv6HeaderFields(payloadLength: payload.count, nextHeader: headers.first?.type ?? IPv6NextHeader.icmpv6, hopLimit: 64,
                             source: IPv6Address("2001:db8:1::10")!, destination: IPv6Address("2001:db8:2::10")!).write(into: buffer)
        }
        return packet.withUnsafeBytes { IPv6ExtensionHeaders.judge(try! IPv6PacketView(validating: $0, exactLength: true)) }
    }

    /// Eight bytes of a generic header (length 0) with PadN: destination options or hop-by-hop.
    let options: [UInt8] = [0, 1, 4, 0, 0, 0, 0]
    func routing(type: UInt8) -> [UInt8] { [2, type, 1, 0, 0, 0, 0] + [UInt8](repeating: 0x20, count: 16) }

    @Test func whatSendersUseIsAcceptable() {
        #expect(judge([]) == .acceptable)
        #expect(judge([(IPv6ExtensionHeaders.hopByHop, [0, 5, 2, 0, 0, 1, 0])]) == .acceptable, "a router alert")
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, options), (IPv6ExtensionHeaders.destinationOptions, options)]) == .acceptable)
        #expect(judge([(IPv6ExtensionHeaders.routing, routing(type: 2))]) == .acceptable, "mobile IPv6's type 2")
        #expect(judge([(IPv6ExtensionHeaders.fragment, [0, 0, 1, 0, 0, 0, 7])]) == .acceptable, "a first fragment")
        #expect(judge(Array(repeating: (IPv6ExtensionHeaders.destinationOptions, options), count: 8)) == .acceptable)
    }

    @Test func routingType0ChainsPastTheLimitAndBrokenChainsAreRefused() {
        #expect(judge([(IPv6ExtensionHeaders.routing, routing(type: 0))]) == .routingType0)
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, options), (IPv6ExtensionHeaders.routing, routing(type: 0))]) == .routingType0)
        #expect(judge(Array(repeating: (IPv6ExtensionHeaders.destinationOptions, options), count: 9)) == .overLimit)
        #expect(judge(Array(repeating: (IPv6ExtensionHeaders.destinationOptions, options), count: 50)) == .overLimit)
        let long = [63] + [UInt8](repeating: 0, count: 510)   // a 512-byte header: no room for another
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, long)]) == .acceptable)
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, long), (IPv6ExtensionHeaders.destinationOptions, options)]) == .overLimit)
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, options), (IPv6ExtensionHeaders.hopByHop, options)]) == .malformed,
                "hop-by-hop only first")
        #expect(judge([(IPv6ExtensionHeaders.destinationOptions, [9, 1, 4, 0, 0, 0, 0])]) == .malformed, "a length past the packet")
    }
}
