import Foundation
import Testing
@testable import IPIPCore

/// FOU, GUE and an IPv6 underlay (issue 25) through the encapsulator and decapsulator, against packets
/// scapy built as Linux sends them (`Fixtures/make_fixtures.py`): the seed's machines A and B over each
/// encapsulation, from `config/machine-{a,b}-{fou,ip6tnl}.yaml`.
@Suite struct UDPAndIPv6UnderlayTests {
    static func load(_ name: String, _ edit: (String) -> String = { $0 }) -> GatewayConfig {
        let result = ConfigLoader.load(yaml: edit(Repository.text("config/\(name)")), file: name)
        guard let config = result.config else { preconditionFailure("\(name): \(result.errors.map(\.description))") }
        return config
    }

    static let machineAFOU = load("machine-a-fou.yaml")
    static let machineBFOU = load("machine-b-fou.yaml")
    static let machineA6 = load("machine-a-ip6tnl.yaml")
    static let machineB6 = load("machine-b-ip6tnl.yaml")
    /// B with a fixed source port, as the fixtures were built.
    static let machineBFixedPort = load("machine-b-fou.yaml") { $0.replacingOccurrences(of: "sport: auto", with: "sport: 4242") }
    static let machineBGUE = load("machine-b-fou.yaml") {
        $0.replacingOccurrences(of: "type: fou, dport: 5555, dport6: 5556, sport: auto", with: "type: gue, dport: 6080, sport: 4242")
            .replacingOccurrences(of: "  - {port: 5555, ipproto: 4}", with: "  - {port: 6080, gue: yes}")
            .replacingOccurrences(of: "  - {port: 5556, ipproto: 41}\n", with: "")
    }

    /// Runs `encapsulator` on `inner` as the TUN device would deliver it; returns the verdict and the packet.
    func encapsulate(_ inner: [UInt8], _ encapsulator: inout Encapsulator, now: Double = 0) -> (Encapsulator.Verdict, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: Encapsulator.headroom) + inner
        let verdict = buffer.withUnsafeMutableBytes { encapsulator.encapsulate($0, innerLength: inner.count, now: now) }
        switch verdict {
        case let .send(range, _, _), let .sendInFragments(range, _, _, _): return (verdict, Array(buffer[range]))
        default: return (verdict, [])
        }
    }

    /// The flow label of an IPv6 packet, and the packet with it zeroed (the sender's hash: scapy wrote 0).
    func withoutFlowLabel(_ packet: [UInt8]) -> (label: UInt32, rest: [UInt8]) {
        var copy = packet
        let label = UInt32(copy[1] & 0x0F) << 16 | UInt32(copy[2]) << 8 | UInt32(copy[3])
        copy[1] &= 0xF0
        copy[2] = 0
        copy[3] = 0
        return (label, copy)
    }

    // MARK: - What B sends, as Linux sends it

    @Test func machineBWrapsFOUAsScapyBuildsIt() {
        var encapsulator = Encapsulator(config: Self.machineBFixedPort, tunnelMTU: 1472, paths: [PeerPathState(firstIdentification: 0x0100)])
        #expect(encapsulate(Fixture.bytes("ipv4-icmp-echo"), &encapsulator).1 == Fixture.bytes("fou-encapsulated-echo"))
        var checksummed = Self.machineBFixedPort
        checksummed.peers[0].encapsulation?.checksum = true
        var withChecksum = Encapsulator(config: checksummed, tunnelMTU: 1472, paths: [PeerPathState(firstIdentification: 0x0100)])
        #expect(encapsulate(Fixture.bytes("ipv4-icmp-echo"), &withChecksum).1 == Fixture.bytes("fou-encapsulated-echo-csum"))
    }

    @Test func machineBWrapsGUEAsScapyBuildsIt() {
        var encapsulator = Encapsulator(config: Self.machineBGUE, tunnelMTU: 1468, paths: [PeerPathState(firstIdentification: 0x0100)])
        #expect(encapsulate(Fixture.bytes("ipv6-icmpv6-echo"), &encapsulator).1 == Fixture.bytes("gue-encapsulated-echo6"))
    }

    /// ip6tnl's outer header: the hop limit and traffic class from the inner packet (inherit, tos 0 with the
    /// ECN copied), the encapsulation limit 4 with its PadN, next header 4; with `encaplimit: none`, none.
    @Test func machineBWrapsIPv6UnderlayAsScapyBuildsIt() {
        var encapsulator = Encapsulator(config: Self.machineB6, tunnelMTU: 1452)
        let (_, outer) = encapsulate(Fixture.bytes("ipv4-icmp-echo"), &encapsulator)
        let (label, rest) = withoutFlowLabel(outer)
        #expect(rest == Fixture.bytes("ip6tnl-encapsulated-echo"))
        #expect(label != 0, "the flow label is the inner flow's hash")
        var noLimit = Self.machineB6
        noLimit.tunnel.encapsulationLimit = nil
        var plain = Encapsulator(config: noLimit, tunnelMTU: 1460)
        #expect(withoutFlowLabel(encapsulate(Fixture.bytes("ipv6-icmpv6-echo"), &plain).1).rest == Fixture.bytes("ip6tnl-encapsulated-echo6-nolimit"))
        // FOU over IPv6: a UDP checksum by default (encap-udp6-csum), which scapy computes the same.
        var fou6 = Self.machineB6
        fou6.peers[0].encapsulation = UDPEncapsulation(kind: .fou, destinationPort: 5555, sourcePort: .fixed(4242))
        var overUDP = Encapsulator(config: fou6, tunnelMTU: 1444)
        #expect(withoutFlowLabel(encapsulate(Fixture.bytes("ipv4-icmp-echo"), &overUDP).1).rest == Fixture.bytes("fou6-encapsulated-echo"))
    }

    // MARK: - What A accepts

    func decapsulate(_ packet: [UInt8], _ config: GatewayConfig) -> (Decapsulator.Verdict, [UInt8]) {
        var copy = packet
        let decapsulator = Decapsulator(config: config, localNetworks: LocalNetworks())
        let verdict = copy.withUnsafeMutableBytes { decapsulator.decapsulate($0) }
        if case let .deliver(_, inner, _) = verdict { return (verdict, Array(copy[inner])) }
        return (verdict, [])
    }

    @Test func machineATakesWhatLinuxSendsOfEachKind() {
        var gueA = Self.machineAFOU
        gueA.fouPorts = [FOUPort(port: 6080, payload: .gue)]
        gueA.peers[0].encapsulation = UDPEncapsulation(kind: .gue, destinationPort: 6080)
        var fou6A = Self.machineA6
        fou6A.fouPorts = [FOUPort(port: 5555, payload: .fou(innerProtocol: 4))]
        fou6A.peers[0].encapsulation = UDPEncapsulation(kind: .fou, destinationPort: 5555)
        let cases: [(String, GatewayConfig, String)] = [
            ("fou-encapsulated-echo", Self.machineAFOU, "ipv4-icmp-echo"),
            ("fou-encapsulated-echo-csum", Self.machineAFOU, "ipv4-icmp-echo"),
            ("gue-encapsulated-echo6", gueA, "ipv6-icmpv6-echo"),
            ("ip6tnl-encapsulated-echo", Self.machineA6, "ipv4-icmp-echo"),
            ("ip6tnl-encapsulated-echo6-nolimit", Self.machineA6, "ipv6-icmpv6-echo"),
            ("fou6-encapsulated-echo", fou6A, "ipv4-icmp-echo"),
        ]
        for (name, config, inner) in cases {
            let (verdict, delivered) = decapsulate(Fixture.bytes(name), config)
            #expect(verdict == .deliver(peer: 0, inner: (Fixture.bytes(name).count - Fixture.bytes(inner).count)..<Fixture.bytes(name).count,
                                        route: .tun), "\(name): \(verdict)")
            #expect(delivered == Fixture.bytes(inner), "\(name)")
        }
    }

    /// A peer's packets arrive as its `encap` says: plain packets from a FOU peer, FOU from a plain one,
    /// and an IPv6 packet on the port that takes IPv4 are refused, counted against the peer.
    @Test func aPeersPacketsMustArriveInItsEncapsulation() {
        let plainFromB = MachineA.outerFromB(Fixture.bytes("ipv4-icmp-echo"))
        #expect(decapsulate(plainFromB, Self.machineAFOU).0 == .drop(.encapsulationMismatch, peer: 0))
        #expect(decapsulate(Fixture.bytes("fou-encapsulated-echo"), MachineA.config).0 == .drop(.notForUs, peer: nil),
                "a config without the port takes nothing on it")
        var listening = MachineA.config
        listening.fouPorts = Self.machineAFOU.fouPorts
        #expect(decapsulate(Fixture.bytes("fou-encapsulated-echo"), listening).0 == .drop(.encapsulationMismatch, peer: 0))
        // IPv6 inside, sent to the port that takes IPv4 (the sender's encap-dport is the other one's).
        var wrongPort = Fixture.bytes("gue-encapsulated-echo6")
        wrongPort.removeSubrange(28..<32)   // no GUE header: FOU
        wrongPort[22] = 0x15; wrongPort[23] = 0xB3   // to 5555, ipproto 4
        wrongPort[24] = 0; wrongPort[25] = UInt8(wrongPort.count - 20)
        wrongPort[2] = 0; wrongPort[3] = UInt8(wrongPort.count)
        wrongPort.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }
        #expect(decapsulate(wrongPort, Self.machineAFOU).0 == .drop(.encapsulationMismatch, peer: 0))
    }

    // MARK: - MTU, fragments and reports, each with its overhead

    @Test func eachPeersMTUIsTheUplinksLessItsOwnOuterHeader() {
        for (config, overhead) in [(MachineA.config, 20), (Self.machineAFOU, 28), (Self.machineBGUE, 32), (Self.machineA6, 48)] {
            let encapsulator = Encapsulator(config: config, tunnelMTU: 1500, uplinkMTU: 1500)
            #expect(encapsulator.mtu(toPeer: 0, now: 0) == 1500 - overhead, "\(config.encapsulations[0].summary)")
            #expect(config.encapsulations[0].overhead == overhead)
            let path = PeerPathState()
            #expect(path.learnPathMTU(outerMTU: 1400, now: 0, ceiling: 1500 - overhead, overhead: overhead) == 1400 - overhead)
        }
        var noLimit = Self.machineA6
        noLimit.tunnel.encapsulationLimit = nil
        #expect(Encapsulator(config: noLimit, tunnelMTU: 1500, uplinkMTU: 1500).mtu(toPeer: 0, now: 0) == 1460)
    }

    /// An IPv6 inner packet within the least MTU on an IPv6 path the outer packet does not fit (a path of
    /// 1280): sent in outer fragments (RFC 2473 §7.1) that the peer's reassembly puts back whole.
    @Test func anIPv6PacketWithinTheLeastMTUCrossesASmallIPv6PathInOuterFragments() throws {
        let path = PeerPathState()
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let encapsulation = EncapsulationPath(config: Self.machineA6, tunnelMTU: 1452, uplinkMTU: 1500, counters: counters, paths: [path])
        path.learnPathMTU(outerMTU: 1000, now: 0, ceiling: 1452, floor: 1280, overhead: 48)
        #expect(encapsulation.encapsulator.mtu(toPeer: 0, now: 1) == 1232)
        var inner = [UInt8](repeating: 0x61, count: 1280)
        inner.withUnsafeMutableBytes {
            IPv6HeaderFields(payloadLength: 1240, nextHeader: IPProtocolNumber.udp, hopLimit: 64, source: IPv6Address("2001:db8:b::87")!,
                             destination: IPv6Address("2001:db8:b::20")!).write(into: $0)
        }
        let sent = SentPackets()
        let slot = sent.batch.nextSlot
        inner.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset...]).copyMemory(from: $0) }
        slot.storeBytes(of: 0, toByteOffset: PacketSlot.virtioHeaderOffset, as: UInt64.self)
        slot.storeBytes(of: 0, toByteOffset: PacketSlot.virtioHeaderOffset + 8, as: UInt16.self)
        encapsulation.process(readLength: VirtioNetHeader.size + inner.count, in: sent.batch, now: 1)
        let packets = sent.flush()
        try #require(packets.count == 2, "\(packets.map(\.kind))")
        let endpointB = IPAddress.v6(IPv6Address("2001:db8:b::86")!)
        #expect(packets.allSatisfy { $0.bytes.count <= 1280 && $0.address == endpointB })
        #expect(packets.map(\.kind) == [.encapsulatedFragment(peer: 0, innerLength: 1280, first: true),
                                        .encapsulatedFragment(peer: 0, innerLength: 1280, first: false)])
        var reassembler = Reassembler()
        var whole: [UInt8] = []
        for packet in packets {
            let result = packet.bytes.withUnsafeBytes { reassembler.add(Reassembler.Fragment(ipv6: $0)!, now: 1) }
            if case let .complete(datagram, _) = result { whole = datagram }
        }
        try #require(whole.count == 1280 + 48)
        #expect(Array(whole[48...]) == inner && whole[6] == 60 && whole[40] == IPProtocolNumber.ipv6 && whole[44] == 4)
    }

    @Test(arguments: [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
    func outerIPv6FragmentsAreReassembledInAnyOrder(order: [Int]) {
        var reassembler = Reassembler()
        var results: [Reassembler.Result] = []
        for index in order {
            let fragment = Fixture.bytes("ip6tnl-fragment-\(index)")
            results.append(fragment.withUnsafeBytes { reassembler.add(Reassembler.Fragment(ipv6: $0)!, now: 0) })
        }
        #expect(results.last == .complete(Fixture.bytes("ip6tnl-fragmented-whole"), fragments: 3))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    /// Overlaps drop the datagram (RFC 5722), a duplicate alone; memory is charged per IPv6 source.
    @Test func overlappingIPv6FragmentsDropTheDatagram() {
        var reassembler = Reassembler()
        let first = Fixture.bytes("ip6tnl-fragment-0")
        #expect(first.withUnsafeBytes { reassembler.add(Reassembler.Fragment(ipv6: $0)!, now: 0) } == .incomplete)
        #expect(reassembler.memoryInUse(bySource: IPv6Address("2001:db8:b::86")!) > 0)
        #expect(first.withUnsafeBytes { reassembler.add(Reassembler.Fragment(ipv6: $0)!, now: 0) } == .duplicate)
        var overlapping = Fixture.bytes("ip6tnl-fragment-1")
        overlapping[42] = 0; overlapping[43] = 0x41   // offset 8: inside the first piece, MF set
        #expect(overlapping.withUnsafeBytes { reassembler.add(Reassembler.Fragment(ipv6: $0)!, now: 0) } == .dropped(.fragmentOverlap, fragments: 2))
        #expect(reassembler.memoryInUse == 0)
        // A Fragment header behind a header that is not in the unfragmentable part's chain is no fragment here.
        var notAFragment = first
        notAFragment[6] = 17
        #expect(notAFragment.withUnsafeBytes { Reassembler.Fragment(ipv6: $0) } == nil)
    }

    /// A router's "packet too big" about an outer ip6tnl packet A sent (quoting it as RFC 4443 does) is
    /// believed by what it quotes — no IP ID over IPv6: the length and the inner packet's header and
    /// transport bytes — and lowers the path MTU by the outer header's 48 bytes; a forged one is not.
    @Test func packetTooBigAboutAnOuterIPv6PacketLowersThatPeersMTU() throws {
        let report = Fixture.bytes("icmpv6-packet-too-big-outer")
        let peers = OuterPeers(config: Self.machineA6)
        let verdict = report.withUnsafeBytes { OuterICMP.classify($0, messageAt: 40, peers: peers, ttlInherited: true) }
        guard case let .fragmentationNeeded(peer, mtu, quote) = verdict else {
            Issue.record("not classified: \(verdict)")
            return
        }
        #expect(peer == 0 && mtu == 1300 && quote.identification == nil && quote.outerLength == 40 + 8 + 1352 + 28)
        // What A's encapsulator noted when it sent that packet.
        let path = PeerPathState()
        let sentInner = Array(report[(48 + 40 + 8)...])   // the quoted outer packet's inner part, as far as quoted
        // The ICMP echo (8 + 1352 bytes) behind A's inner IPv4 header, as far as quoted, the rest as scapy filled it.
        let echo = Array(sentInner[20...]) + [UInt8](repeating: 0x68, count: 1360 - (sentInner.count - 20))
        let whole = IPv4HeaderFields(identification: 0x4242, ttl: 63, protocolNumber: IPProtocolNumber.icmp, source: IPv4Address("203.0.113.87")!,
                                     destination: IPv4Address("203.0.113.20")!).bytes(payload: echo)
        whole.withUnsafeBytes { path.noteSent(outerLength: 48 + whole.count, inner: $0) }
        #expect(path.sentRecently(quote, now: 0))
        /// The report edited, its ICMPv6 checksum made right again.
        func edited(_ edit: (inout [UInt8]) -> Void) -> OuterICMP {
            var copy = report
            edit(&copy)
            copy[42] = 0; copy[43] = 0
            let checksum = copy.withUnsafeBytes { InternetChecksum.computeIPv6Upper($0, nextHeader: IPv6NextHeader.icmpv6) }
            copy[42] = UInt8(checksum >> 8); copy[43] = UInt8(checksum & 0xFF)
            return copy.withUnsafeBytes { OuterICMP.classify($0, messageAt: 40, peers: peers, ttlInherited: true) }
        }
        guard case let .fragmentationNeeded(_, _, forgedQuote) = edited({ $0[48 + 48 + 20 + 6] ^= 1 }) else {   // another sequence number
            Issue.record("a report with a good checksum is classified")
            return
        }
        #expect(!path.sentRecently(forgedQuote, now: 0), "a report about a packet not sent is not believed")
        // Below 1280, a report still sets no less (RFC 8201).
        #expect(edited({ $0[44] = 0; $0[45] = 0; $0[46] = 0x01; $0[47] = 0x00 }) == .fragmentationNeeded(peer: 0, outerMTU: 1280, quote: quote))
        // A checksum that does not verify: ignored.
        var corrupt = report
        corrupt[43] ^= 1
        #expect(corrupt.withUnsafeBytes { OuterICMP.classify($0, messageAt: 40, peers: peers, ttlInherited: true) } == .ignore)
    }

    /// Other routers' errors about an outer ip6tnl packet A sent (RFC 2473 §8.1, as ip6_tnl_err): about one
    /// carrying IPv6, "address unreachable" and "hop limit exceeded" are relayed to the inner source (the
    /// quoted inner packet's range handed on); about one carrying IPv4, unreachable opens the peer's error
    /// window. Each quote is one A's path state recognises, so only reports about packets A sent act.
    @Test func otherRouterErrorsAboutOuterIPv6PacketsAreRelayedOrRemembered() throws {
        let peers = OuterPeers(config: Self.machineA6)
        func classify(_ name: String) -> OuterICMP {
            Fixture.bytes(name).withUnsafeBytes { OuterICMP.classify($0, messageAt: 40, peers: peers, ttlInherited: true) }
        }
        let unreachable = Fixture.bytes("icmpv6-unreachable-outer6")
        // The quoted outer packet: IPv6 (40) + encapsulation limit (8), then A's inner IPv6 packet.
        let innerStart = 40 + 8 + 40 + 8
        let sentInner = Array(unreachable[innerStart...])
        let path = PeerPathState()
        sentInner.withUnsafeBytes { path.noteSent(outerLength: 48 + sentInner.count, inner: $0) }
        guard case let .relayToIPv6Source(peer, quote, timeExceeded, inner) = classify("icmpv6-unreachable-outer6") else {
            Issue.record("address unreachable about IPv6 inside: \(classify("icmpv6-unreachable-outer6"))")
            return
        }
        #expect(peer == 0 && !timeExceeded && inner == innerStart..<unreachable.count && quote.identification == nil)
        #expect(path.sentRecently(quote, now: 0), "the quote is of a packet A sent")
        guard case let .relayToIPv6Source(_, _, timeExceeded: expired, _) = classify("icmpv6-time-exceeded-outer6") else {
            Issue.record("hop limit exceeded about IPv6 inside: \(classify("icmpv6-time-exceeded-outer6"))")
            return
        }
        #expect(expired)
        guard case .peerError(peer: 0, quote: let quote4) = classify("icmpv6-unreachable-outer4") else {
            Issue.record("address unreachable about IPv4 inside: \(classify("icmpv6-unreachable-outer4"))")
            return
        }
        #expect(!path.sentRecently(quote4, now: 0), "a packet A did not send is not believed")
    }

    /// "Fragmentation needed" about a FOU packet quotes its UDP header: the peer is told by it, the inner
    /// packet behind it is what the quote samples.
    @Test func fragmentationNeededAboutAFOUPacketQuotesTheInnerBehindTheUDPHeader() {
        let sentByA = Fixture.bytes("fou-encapsulated-echo").withUnsafeBytes { bytes -> [UInt8] in
            // The fixture is B → A; as A → B: swap the addresses.
            var packet = Array(bytes)
            packet.replaceSubrange(12..<16, with: [198, 51, 100, 37])
            packet.replaceSubrange(16..<20, with: [203, 0, 113, 86])
            return packet
        }
        // As a router quotes it (RFC 1812: as much as fits in 576 bytes).
        let report = sentByA.withUnsafeBytes { ICMPErrorRules.packet(type: 3, code: 4, nextHopMTU: 1400, about: $0) }
        let peers = OuterPeers(config: Self.machineAFOU)
        let verdict = report.withUnsafeBytes { OuterICMP.classify($0, messageAt: 20, peers: peers, ttlInherited: true) }
        let inner = Fixture.bytes("ipv4-icmp-echo")
        let expected = OuterPacketQuote(identification: 0x0100, outerLength: UInt16(sentByA.count),
                                        innerSample: inner.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        #expect(verdict == .fragmentationNeeded(peer: 0, outerMTU: 1400, quote: expected))
        // Quoting only the UDP header (RFC 792's 8 bytes) tells nothing.
        let short = sentByA.withUnsafeBytes { ICMPBuilder.destinationUnreachable(code: 4, nextHopMTU: 1400, original: UnsafeRawBufferPointer(rebasing: $0[0..<28])) }
        let shortReport = IPv4HeaderFields(protocolNumber: IPProtocolNumber.icmp, source: IPv4Address("198.51.100.1")!, destination: MachineA.local)
            .bytes(payload: short)
        #expect(shortReport.withUnsafeBytes { OuterICMP.classify($0, messageAt: 20, peers: peers, ttlInherited: true) } == .unverifiable(peer: 0))
    }

    // MARK: - The encapsulation limit, loops

    /// RFC 2473 §4.1.1 as ip6tnl applies it: an inner IPv6 packet's own limit, less one, goes in the outer
    /// header; a limit of 0 is refused with a parameter problem pointing at it.
    @Test func anInnerEncapsulationLimitIsHonoured() throws {
        func innerWithLimit(_ limit: UInt8) -> [UInt8] {
            var packet = [UInt8](repeating: 0, count: 40 + 8 + 8)
            packet.withUnsafeMutableBytes {
                IPv6HeaderFields(payloadLength: 16, nextHeader: IPv6ExtensionHeaders.destinationOptions, hopLimit: 64,
                                 source: IPv6Address("2001:db8:b::87")!, destination: IPv6Address("2001:db8:b::20")!).write(into: $0)
            }
            packet.replaceSubrange(40..<48, with: [IPProtocolNumber.udp, 0, 4, 1, limit, 1, 1, 0])
            packet.replaceSubrange(48..<56, with: [0, 7, 0, 9, 0, 8, 0, 0])
            return packet
        }
        var encapsulator = Encapsulator(config: Self.machineA6, tunnelMTU: 1452)
        let (_, outer) = encapsulate(innerWithLimit(3), &encapsulator)
        #expect(outer[6] == 60 && outer[44] == 2, "3 − 1")
        #expect(encapsulate(innerWithLimit(0), &encapsulator).0 == .encapsulationLimitReached(peer: 0, pointer: 44))
        // With encaplimit none, an inner limit still sets one (and takes 8 bytes more of the MTU).
        var noLimit = Self.machineA6
        noLimit.tunnel.encapsulationLimit = nil
        var plain = Encapsulator(config: noLimit, tunnelMTU: 1460)
        #expect(encapsulate(innerWithLimit(1), &plain).1[44] == 0)
        // Over IPv4 (sit), the option is none of the tunnel's business.
        var sit = Encapsulator(config: MachineA.config, tunnelMTU: 1480)
        guard case .send = encapsulate(innerWithLimit(0), &sit).0 else {
            Issue.record("sit does not look at the encapsulation limit")
            return
        }
        // The path answers with the parameter problem.
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let path = EncapsulationPath(config: Self.machineA6, tunnelMTU: 1452, counters: counters, paths: [PeerPathState()])
        let sent = SentPackets()
        let inner = innerWithLimit(0)
        let slot = sent.batch.nextSlot
        UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset..<PacketSlot.innerOffset]).initializeMemory(as: UInt8.self, repeating: 0)
        inner.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset...]).copyMemory(from: $0) }
        path.process(readLength: VirtioNetHeader.size + inner.count, in: sent.batch, now: 0)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .icmpv6Error(peer: 0) && packets[0].bytes[40] == 4 && packets[0].bytes[41] == 0
                && packets[0].bytes[44...47] == [0, 0, 0, 44])
        #expect(counters.peers[0].drops.value(.encapsulationLimit) == 1)
    }

    /// A FOU packet of this gateway's own read back from the TUN device is a loop; its other UDP is not.
    @Test func ourOwnFOUPacketComingBackIsALoop() {
        var encapsulator = Encapsulator(config: Self.machineAFOU, tunnelMTU: 1472)
        let ownFOU = Fixture.bytes("fou-encapsulated-echo").withUnsafeBytes { bytes -> [UInt8] in
            var packet = Array(bytes)
            packet.replaceSubrange(12..<16, with: [198, 51, 100, 37])
            packet.replaceSubrange(16..<20, with: [203, 0, 113, 86])
            packet.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }
            return packet
        }
        #expect(encapsulate(ownFOU, &encapsulator).0 == .drop(.loop, peer: 0))
        var dns = ownFOU
        dns[22] = 0; dns[23] = 53   // the gateway's own DNS query into the tunnel
        guard case .send = encapsulate(dns, &encapsulator).0 else {
            Issue.record("UDP of the gateway's own to another port is no loop")
            return
        }
    }

    // MARK: - The config

    @Test func theExampleConfigsLoadAndSayWhatTheyCarry() {
        #expect(Self.machineAFOU.peers[0].encapsulation == UDPEncapsulation(kind: .fou, destinationPort: 5555, destinationPort6: 5556))
        #expect(Self.machineAFOU.fouPorts == [FOUPort(port: 5555, payload: .fou(innerProtocol: 4)), FOUPort(port: 5556, payload: .fou(innerProtocol: 41))])
        #expect(Self.machineA6.uplink.address == IPAddress("2001:db8:a::37")! && Self.machineA6.peers[0].remote == IPAddress("2001:db8:b::86")!)
        #expect(Self.machineA6.tunnel.encapsulationLimit == 4)
        #expect(Self.machineA6.endpointsNeedingPins.map(\.name) == ["machine-b"], "B's endpoint lies inside 2001:db8:b::/64")
    }

    @Test func encapsulationMistakesAreNamedWithTheirLines() {
        func errors(_ yaml: String) -> [String] {
            ConfigLoader.load(yaml: yaml, file: "gw.yaml").diagnostics.filter { $0.severity == .error }.map { "\($0.line ?? 0) \($0.key)" }
        }
        func warnings(_ yaml: String) -> [String] {
            ConfigLoader.load(yaml: yaml, file: "gw.yaml").diagnostics.filter { $0.severity == .warning }.map(\.key)
        }
        let uplink = "uplink: {interface: eth0, address: 198.51.100.37}\n"
        #expect(errors(uplink + "peers:\n  - {name: b, remote: \"2001:db8::1\", routes: [192.0.2.0/24]}\n") == ["3 peers[0].remote"],
                "an endpoint of the other family")
        #expect(errors(uplink + "peers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24], encap: {type: fou, dport: 5555}}\n")
                == ["3 peers[0].encap.type"], "FOU with no port to receive it on")
        #expect(errors(uplink + "fou: [{port: 5555, ipproto: 4}, {port: 5556, ipproto: 41}]\npeers:\n"
                       + "  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24, \"2001:db8::/64\"], encap: {type: fou, dport: 5555}}\n")
                == ["4 peers[0].encap.dport"], "FOU with IPv6 routes and no dport6")
        #expect(errors(uplink + "fou: [{port: 5555, ipproto: 4}, {port: 5555, gue: yes}]\npeers:\n"
                       + "  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24], encap: {type: fou, dport: 5555}}\n")
                == ["2 fou[1].port"], "one port listed twice")
        #expect(errors(uplink + "fou: [{port: 6080, gue: yes, ipproto: 4}, {port: 7, ipproto: 6}, {port: 0, ipproto: 4}, {port: 9}]\n"
                       + "peers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24], encap: {type: gue, dport: 6080, dport6: 6081}}\n")
                == ["2 fou[0].ipproto", "2 fou[1].ipproto", "2 fou[2].port", "2 fou[3].ipproto", "4 peers[0].encap.dport6"])
        #expect(errors(uplink + "peers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24], encap: {type: none, dport: 5555}}\n")
                == ["3 peers[0].encap.dport"])
        #expect(errors(uplink + "peers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24], encap: {type: vxlan, dport: 4789}}\n")
                == ["3 peers[0].encap.type"])
        #expect(errors("uplink: {interface: eth0, address: \"2001:db8:a::37\", standby-when-absent: yes}\n"
                       + "peers:\n  - {name: b, remote: \"2001:db8:b::86\", routes: [192.0.2.0/24]}\n") == ["1 uplink.standby-when-absent"])
        #expect(warnings(uplink + "tunnel: {encaplimit: 4}\npeers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24]}\n")
                == ["tunnel.encaplimit"], "the encapsulation limit is IPv6's")
        #expect(warnings(uplink + "fou: [{port: 5555, ipproto: 4}]\npeers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24]}\n")
                == ["fou[0].port"], "a port no peer sends to")
    }

    /// A reload that changes the ports needs a restart; one that changes a peer's encapsulation forgets
    /// what was learned of its path.
    @Test func reloadsTellPortsFromEncapsulations() {
        var moved = Self.machineAFOU
        moved.fouPorts[0].port = 5557
        #expect(ConfigDiff(from: Self.machineAFOU, to: moved).needsRestart.contains { $0.hasPrefix("fou") })
        var gue = Self.machineAFOU
        gue.peers[0].encapsulation?.kind = .gue
        #expect(ConfigDiff(from: Self.machineAFOU, to: gue).endpointsChanged == ["machine-b"])
    }

    // MARK: - The plan

    @Test func thePlanClaimsThePortsAndSaysEachPeersOuterHeader() {
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [MachineA.local])],
                                routes: [IPAddress("203.0.113.86")!: .init(interface: "eth0", gateway: IPv4Address("198.51.100.1")!)])
        let plan = KernelPlan(config: Self.machineAFOU, facts: facts)
        #expect(plan.problems.isEmpty && plan.tunnelMTU == 1472)
        for change: KernelChange in [.claimUDPPort(FOUPort(port: 5555, payload: .fou(innerProtocol: 4)), address: .v4(MachineA.local)),
                                     .claimUDPPort(FOUPort(port: 5556, payload: .fou(innerProtocol: 41)), address: .v4(MachineA.local)),
                                     .capture(interface: "eth0", filter: CaptureFilter.tunnel(local: .v4(MachineA.local), ipv6: true, ports: [5555, 5556]))] {
            #expect(plan.changes.contains(change), "\(change)")
        }
        #expect(plan.notes.contains { $0.contains("peer machine-b: outer header fou over IPv4 (encap-dport 5555, IPv6 inside: 5556") })
        var busy = facts
        busy.udpPortsInUse = [5555: "socket inode 4242 on every address"]
        #expect(KernelPlan(config: Self.machineAFOU, facts: busy).problems
                == [.udpPortInUse(port: 5555, address: .v4(MachineA.local), holder: "socket inode 4242 on every address")])
    }

    @Test func anIPv6UnderlayIsPlannedInItsFamily() {
        let local = IPv6Address("2001:db8:a::37")!
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses6: [local])],
                                routes: [IPAddress("2001:db8:b::86")!: .init(interface: "eth0", gateway: IPAddress("2001:db8:a::1")!)])
        let plan = KernelPlan(config: Self.machineA6, facts: facts)
        #expect(plan.problems.isEmpty && plan.tunnelMTU == 1452, "\(plan.problems)")
        let pin = KernelChange.pinEndpoint(peer: "machine-b", endpoint: IPAddress("2001:db8:b::86")!, interface: "eth0",
                                           gateway: IPAddress("2001:db8:a::1")!)
        #expect(pin.description.hasPrefix("ip -6 route add 2001:db8:b::86/128 via 2001:db8:a::1 dev eth0"))
        for change: KernelChange in [pin, .claimProtocol(IPProtocolNumber.ipip, ipv6: true), .claimProtocol(IPProtocolNumber.ipv6, ipv6: true),
                                     .openRawSockets(reinjectionMark: nil, outerIPv6: true)] {
            #expect(plan.changes.contains(change), "\(change)")
        }
        #expect(plan.changes.contains(.consumeAfterCapture(interface: "eth0", local: .v6(local), ports: [])))
        var absent = facts
        absent.interfaces["eth0"]!.addresses6 = []
        #expect(KernelPlan(config: Self.machineA6, facts: absent).problems.contains(.uplinkAddressNotAssigned(address: .v6(local), interface: "eth0")))
    }
}
