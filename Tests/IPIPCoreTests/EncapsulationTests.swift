import Testing
@testable import IPIPCore

/// The outer header on its own — written by the encapsulation flow for each kind (plain, FOU, GUE, over
/// an IPv4 or an IPv6 underlay), parsed by the receiving side — and the rules in which the two inner
/// families differ.
@Suite struct EncapsulationTests {
    let local = IPv4Address(198, 51, 100, 37)
    let peer = IPv4Address(203, 0, 113, 86)
    static let local6 = IPv6Address("2001:db8:a::37")!
    static let peer6 = IPv6Address("2001:db8:b::86")!
    static let ports = [FOUPort(port: 5555, payload: .fou(innerProtocol: 4)), FOUPort(port: 5556, payload: .fou(innerProtocol: 41)),
                        FOUPort(port: 6080, payload: .gue)]

    func outer(protocolNumber: UInt8, source: IPv4Address? = nil, destination: IPv4Address? = nil, moreFragments: Bool = false,
               payload: [UInt8] = [UInt8](repeating: 0x45, count: 28)) -> [UInt8] {
        IPv4HeaderFields(tos: 0x02, moreFragments: moreFragments, protocolNumber: protocolNumber,
                         source: source ?? peer, destination: destination ?? local).bytes(payload: payload)
    }

    func parse(_ bytes: [UInt8], local: IPAddress? = nil, checksum: OuterHeaderParser.ChecksumState = .unknown) -> OuterHeaderParser.Parsed {
        var copy = bytes
        let parser = OuterHeaderParser(local: local ?? .v4(self.local), ports: Self.ports)
        return copy.withUnsafeMutableBytes { parser.parse($0, checksum: checksum) }
    }

    /// What `encapsulation` writes around `inner`, as the peer `peer` would send it to us.
    static func wrap(_ inner: [UInt8], _ encapsulation: Encapsulation, limit: UInt8? = nil, hash: UInt32 = 0x1234_5678) -> [UInt8] {
        let limit = limit ?? encapsulation.encapsulationLimit
        let headerLength = encapsulation.headerLength(withEncapsulationLimit: limit != nil)
        var packet = [UInt8](repeating: 0, count: headerLength) + inner
        packet.withUnsafeMutableBytes {
            encapsulation.write(.init(trafficClass: 0xB9, identification: 0x1234, dontFragment: true, hopLimit: 17,
                                      innerIsIPv6: inner[0] >> 4 == 6, flowHash: hash, encapsulationLimit: limit), into: $0)
        }
        return packet
    }

    static let innerIPv4 = IPv4HeaderFields(ttl: 9, protocolNumber: IPProtocolNumber.udp, source: IPv4Address(203, 0, 113, 87),
                                            destination: IPv4Address(203, 0, 113, 20)).bytes(payload: [0, 7, 0, 9, 0, 12, 0, 0, 1, 2, 3, 4])
    static let innerIPv6: [UInt8] = {
        var packet = [UInt8](repeating: 0x5A, count: 52)
        packet.withUnsafeMutableBytes {
            IPv6HeaderFields(payloadLength: 12, nextHeader: IPProtocolNumber.udp, hopLimit: 9, source: IPv6Address("2001:db8:b::87")!,
                             destination: IPv6Address("2001:db8:b::20")!).write(into: $0)
        }
        return packet
    }()

    /// Every kind, as the peer writes it to us, and what it must parse to.
    static func kinds(towards local: IPAddress, from peer: IPAddress) -> [(name: String, encapsulation: Encapsulation, arrival: OuterHeaderParser.Arrival)] {
        let endpoints: Encapsulation.Endpoints = switch (local, peer) {
        case let (.v4(local), .v4(peer)): .ipv4(local: peer, remote: local)
        case let (.v6(local), .v6(peer)): .ipv6(local: peer, remote: local)
        default: preconditionFailure("one family")
        }
        let fou = UDPEncapsulation(kind: .fou, destinationPort: 5555, destinationPort6: 5556)
        let gue = UDPEncapsulation(kind: .gue, destinationPort: 6080, sourcePort: .fixed(4242), checksum: true)
        var kinds: [(String, Encapsulation, OuterHeaderParser.Arrival)] = [
            ("plain", Encapsulation(endpoints: endpoints), .plain),
            ("fou", Encapsulation(endpoints: endpoints, udp: fou), .fou),
            ("fou with checksum", Encapsulation(endpoints: endpoints, udp: fou, udpChecksum: true), .fou),
            ("gue", Encapsulation(endpoints: endpoints, udp: gue), .gue),
        ]
        if local.isIPv6 {
            kinds += [("plain, encaplimit 4", Encapsulation(endpoints: endpoints, encapsulationLimit: 4), .plain),
                      ("fou, encaplimit 0", Encapsulation(endpoints: endpoints, udp: fou, encapsulationLimit: 0), .fou),
                      ("gue, encaplimit 4, no checksum", Encapsulation(endpoints: endpoints, udp: gue, encapsulationLimit: 4, udpChecksum: false), .gue)]
        }
        return kinds
    }

    @Test(arguments: [false, true])
    func everyKindParsesBackToItsFieldsForBothFamilies(ipv6Underlay: Bool) throws {
        let us: IPAddress = ipv6Underlay ? .v6(Self.local6) : .v4(local)
        let them: IPAddress = ipv6Underlay ? .v6(Self.peer6) : .v4(peer)
        for (name, encapsulation, arrival) in Self.kinds(towards: us, from: them) {
            for inner in [Self.innerIPv4, Self.innerIPv6] {
                let packet = Self.wrap(inner, encapsulation)
                #expect(packet.count == encapsulation.overhead + inner.count, "\(name)")
                guard case let .tunnelled(source, range, family, ecn, parsedArrival) = parse(packet, local: us) else {
                    Issue.record("\(name): \(parse(packet, local: us))")
                    continue
                }
                #expect(source == them && Array(packet[range]) == inner && parsedArrival == arrival && ecn == .ect1, "\(name)")
                #expect(family == (inner[0] >> 4 == 6 ? .ipv6 : .ipv4), "\(name)")
                // The header's own fields, as a dissector reads them.
                if ipv6Underlay {
                    #expect(packet[0] >> 4 == 6 && packet[7] == 17 && Int(packet[4]) << 8 | Int(packet[5]) == packet.count - 40, "\(name)")
                    #expect(UInt32(packet[1] & 0x0F) << 16 | UInt32(packet[2]) << 8 | UInt32(packet[3]) == FlowHash.flowLabel(0x1234_5678))
                } else {
                    let view = try packet.withUnsafeBytes { try IPv4PacketView(validating: $0, exactLength: true) }
                    #expect(view.tos == 0xB9 && view.identification == 0x1234 && view.dontFragment && view.ttl == 17, "\(name)")
                }
            }
        }
    }

    /// What ip6tnl writes in front of the inner packet: a Destination Options header with the limit and a PadN.
    @Test func theEncapsulationLimitIsLaidOutAsIp6tnlSendsIt() {
        let encapsulation = Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6), encapsulationLimit: 4)
        let packet = Self.wrap(Self.innerIPv4, encapsulation)
        #expect(packet[6] == 60)
        #expect(Array(packet[40..<48]) == [4, 0, 4, 1, 4, 1, 1, 0])
        let udp = Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6),
                                udp: UDPEncapsulation(kind: .fou, destinationPort: 5555), encapsulationLimit: 3)
        let overUDP = Self.wrap(Self.innerIPv4, udp)
        #expect(overUDP[6] == 60 && overUDP[40] == 17 && overUDP[44] == 3 && overUDP.count == 40 + 8 + 8 + Self.innerIPv4.count)
        #expect(encapsulation.overhead == 48 && udp.overhead == 56)
        #expect(Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6)).overhead == 40)
    }

    @Test func overheadsAreWhatTheIssueSaysEachKindTakes() {
        let endpoints = Encapsulation.Endpoints.ipv4(local: local, remote: peer)
        #expect(Encapsulation(endpoints: endpoints).overhead == 20)
        #expect(Encapsulation(endpoints: endpoints, udp: UDPEncapsulation(kind: .fou, destinationPort: 1)).overhead == 28)
        #expect(Encapsulation(endpoints: endpoints, udp: UDPEncapsulation(kind: .gue, destinationPort: 1)).overhead == 32)
        // An IPv4 underlay sends no encapsulation limit, whatever the tunnel says.
        #expect(Encapsulation(endpoints: endpoints, encapsulationLimit: 4).overhead == 20)
    }

    /// The UDP checksum: over IPv4 none by default (noencap-csum), over IPv6 one (encap-udp6-csum); a
    /// written one verifies with the pseudo-header.
    @Test func udpChecksumsFollowIproute2sDefaultsAndVerify() {
        let fou = UDPEncapsulation(kind: .fou, destinationPort: 5555)
        let over4 = Self.wrap(Self.innerIPv4, Encapsulation(endpoints: .ipv4(local: peer, remote: local), udp: fou))
        #expect(over4[26] == 0 && over4[27] == 0)
        let over6 = Self.wrap(Self.innerIPv4, Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6), udp: fou))
        #expect(over6[46] != 0 || over6[47] != 0)
        for packet in [over6, Self.wrap(Self.innerIPv6, Encapsulation(endpoints: .ipv4(local: peer, remote: local), udp: fou, udpChecksum: true))] {
            packet.withUnsafeBytes { bytes in
                let ipv6 = bytes[0] >> 4 == 6
                let offset = ipv6 ? 40 : 20
                let length = bytes.count - offset
                let pseudo = ipv6 ? InternetChecksum.pseudoHeaderSum(ofIPv6: bytes, nextHeader: 17, transportLength: length)
                                  : InternetChecksum.pseudoHeaderSum(ofIPv4: bytes, protocol: 17, transportLength: length)
                #expect(InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: bytes[offset...]), initial: pseudo) == 0xFFFF)
            }
        }
    }

    /// `encap-sport auto`: one port per flow, spread over the kernel's local port range.
    @Test func sourcePortsFollowTheFlowHashOrTheFixedPort() {
        let auto = Encapsulation(endpoints: .ipv4(local: peer, remote: local), udp: UDPEncapsulation(kind: .fou, destinationPort: 5555))
        let ports = Set((0..<64).map { hash in Self.wrap(Self.innerIPv4, auto, hash: UInt32(hash) &* 0x9E37_79B9) }.map { UInt16($0[20]) << 8 | UInt16($0[21]) })
        #expect(ports.count > 50 && ports.allSatisfy { FlowHash.sourcePorts.contains($0) })
        let fixed = Encapsulation(endpoints: .ipv4(local: peer, remote: local),
                                  udp: UDPEncapsulation(kind: .fou, destinationPort: 5555, sourcePort: .fixed(5555)))
        #expect(Self.wrap(Self.innerIPv4, fixed)[20...21] == [0x15, 0xB3])
        // FOU names no protocol: IPv6 inner packets go to the port that takes IPv6.
        let dual = Encapsulation(endpoints: .ipv4(local: peer, remote: local),
                                 udp: UDPEncapsulation(kind: .fou, destinationPort: 5555, destinationPort6: 5556))
        #expect(Self.wrap(Self.innerIPv6, dual)[22...23] == [0x15, 0xB4] && Self.wrap(Self.innerIPv4, dual)[22...23] == [0x15, 0xB3])
    }

    @Test func theFlowHashKeepsAFlowAndItsFragmentsTogether() {
        let hash = FlowHash(key0: 1, key1: 2)
        func udp(sourcePort: UInt16, fragmentOffset: Int = 0, moreFragments: Bool = false) -> UInt32 {
            let packet = IPv4HeaderFields(moreFragments: moreFragments, fragmentOffset: fragmentOffset, protocolNumber: IPProtocolNumber.udp,
                                          source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2))
                .bytes(payload: [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0, 53, 0, 8, 0, 0])
            return packet.withUnsafeBytes { hash.hash($0) }
        }
        #expect(udp(sourcePort: 1000) != udp(sourcePort: 1001))
        // Fragments are hashed without ports: the first and the later ones agree whatever their bytes there.
        #expect(udp(sourcePort: 1000, moreFragments: true) == udp(sourcePort: 2000, fragmentOffset: 16))
        // Another key, another spread: a sender cannot aim its flows at one path.
        let other = FlowHash(key0: 3, key1: 4)
        let packet = Self.innerIPv6
        #expect(packet.withUnsafeBytes { hash.hash($0) } != packet.withUnsafeBytes { other.hash($0) })
    }

    @Test func parseSortsWhatIsNotATunnelledPacket() {
        guard case .fragment(let source) = parse(outer(protocolNumber: IPProtocolNumber.ipip, moreFragments: true)) else {
            Issue.record("a fragment is to be reassembled")
            return
        }
        #expect(source == .v4(peer))
        guard case .icmp(message: 20) = parse(outer(protocolNumber: IPProtocolNumber.icmp)) else {
            Issue.record("ICMP goes to the outer-ICMP classifier")
            return
        }
        guard case .invalid(.notForUs, _) = parse(outer(protocolNumber: IPProtocolNumber.ipip, destination: IPv4Address(198, 51, 100, 38))),
              case .invalid(.malformedOuter, _) = parse(outer(protocolNumber: 47)),
              case .invalid(.malformedOuter, nil) = parse(Array(outer(protocolNumber: IPProtocolNumber.ipip)[0..<19])) else {
            Issue.record("another destination, another protocol and a short header are refused")
            return
        }
        var badChecksum = outer(protocolNumber: IPProtocolNumber.ipip)
        badChecksum[10] ^= 0xFF
        guard case .invalid(.malformedOuter, _) = parse(badChecksum) else {
            Issue.record("a bad header checksum is refused")
            return
        }
    }

    /// Hostile UDP: short, with lengths that lie, to a port not listed, with a checksum that does not verify.
    @Test func hostileUDPIsRefusedForWhatItIs() {
        let fou = Encapsulation(endpoints: .ipv4(local: peer, remote: local), udp: UDPEncapsulation(kind: .fou, destinationPort: 5555),
                                udpChecksum: true)
        let good = Self.wrap(Self.innerIPv4, fou)
        func edited(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var packet = good
            edit(&packet)
            // The IPv4 header's checksum made right again: only the UDP layer is wrong.
            packet.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }
            return packet
        }
        let cases: [(String, [UInt8], DropReason)] = [
            ("a UDP header cut short", edited { $0 = Array($0[0..<26]); $0[2] = 0; $0[3] = 26 }, .malformedOuter),
            ("a UDP length beyond the packet", edited { $0[24] = 0xFF }, .malformedOuter),
            ("a UDP length below its header", edited { $0[24] = 0; $0[25] = 7 }, .malformedOuter),
            ("a port nothing listens on", edited { $0[22] = 0x13; $0[23] = 0x88 }, .notForUs),
            ("a checksum that does not verify", edited { $0[27] ^= 1 }, .malformedOuter),
        ]
        for (name, packet, reason) in cases {
            guard case .invalid(let found, let source) = parse(packet) else {
                Issue.record("\(name) was taken: \(parse(packet))")
                continue
            }
            #expect(found == reason, "\(name)")
            // The peer is known, for its counters — but a packet to a port not ours is no peer's traffic to us.
            #expect(source == (reason == .notForUs ? nil : .v4(peer)), "\(name)")
        }
        // A checksum the kernel verified is not computed again; one left partial is completed.
        var zeroed = good
        zeroed[26] = 0x12
        guard case .tunnelled = parse(zeroed, checksum: .verified) else {
            Issue.record("a checksum the kernel verified is taken as verified")
            return
        }
    }

    /// GUE headers Linux's gue_udp_recv refuses are refused; its variant 1 (direct IP) is taken.
    @Test func gueHeadersAreTakenAsLinuxTakesThem() {
        let gue = Encapsulation(endpoints: .ipv4(local: peer, remote: local), udp: UDPEncapsulation(kind: .gue, destinationPort: 6080))
        let good = Self.wrap(Self.innerIPv4, gue)
        func variant(_ edit: (inout [UInt8]) -> Void) -> OuterHeaderParser.Parsed {
            var packet = good
            edit(&packet)
            return parse(packet)
        }
        for (name, result) in [("version 2", variant { $0[28] = 0x80 }), ("version 3", variant { $0[28] = 0xC0 }),
                               ("a control message", variant { $0[28] = 0x20 }), ("an unknown flag", variant { $0[31] = 0x02 }),
                               ("an unknown inner protocol", variant { $0[29] = 47 }),
                               ("the private flag without its field", variant { $0[31] = 0x01 })] {
            guard case .invalid(.unsupportedGUE, _) = result else {
                Issue.record("\(name): \(result)")
                continue
            }
        }
        // Hlen words beyond the packet.
        guard case .invalid(.malformedOuter, _) = variant({ $0[28] = 0x1F }) else {
            Issue.record("optional fields beyond the datagram are malformed")
            return
        }
        // The private flag with a field of no flags, as a sender may write it: 4 bytes of options.
        var withPrivate = good
        withPrivate.insert(contentsOf: [0, 0, 0, 0], at: 32)
        withPrivate[28] = 0x01
        withPrivate[31] = 0x01
        withPrivate[24] = 0; withPrivate[25] = UInt8(withPrivate.count - 20)
        withPrivate[2] = UInt8(withPrivate.count >> 8); withPrivate[3] = UInt8(withPrivate.count & 0xFF)
        withPrivate.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }
        guard case let .tunnelled(_, range, .ipv4, _, .gue) = parse(withPrivate), range.lowerBound == 36 else {
            Issue.record("the private flag without private flags: \(parse(withPrivate))")
            return
        }
        // Variant 1: the inner IPv4 header right behind the UDP header.
        let direct = Self.wrap(Self.innerIPv4, Encapsulation(endpoints: .ipv4(local: peer, remote: local),
                                                             udp: UDPEncapsulation(kind: .fou, destinationPort: 6080)))
        guard case let .tunnelled(_, range, .ipv4, _, .gue) = parse(direct), range.lowerBound == 28 else {
            Issue.record("GUE variant 1: \(parse(direct))")
            return
        }
    }

    /// The IPv6 underlay's extension headers: what ip6tnl sends is taken, an encapsulation limit of 0
    /// included (it limits the next entry point, not this exit); a routing header in use, an option that must
    /// not be skipped, a chain too long or a Hop-by-Hop header out of place are not.
    @Test func ipv6OuterExtensionHeadersAreWalkedAndJudged() {
        let us = IPAddress.v6(Self.local6)
        let plain = Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6), encapsulationLimit: 0)
        guard case .tunnelled(_, _, .ipv4, _, .plain) = parse(Self.wrap(Self.innerIPv4, plain), local: us) else {
            Issue.record("an encapsulation limit of 0 arriving here is taken")
            return
        }
        /// The plain packet with `headers` (each: next header byte filled in here) between the fixed header and the inner packet.
        func chain(_ headers: [[UInt8]]) -> [UInt8] {
            var packet = Self.wrap(Self.innerIPv4, Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6)))
            let inner = Array(packet[40...])
            var next = packet[6]
            var body: [UInt8] = []
            for header in headers.reversed() {
                var header = header
                header[0] = next
                next = header.removeLast()   // each header's own type, carried as its last element
                body = header + body
            }
            packet = Array(packet[0..<40]) + body + inner
            packet[6] = next
            packet[4] = UInt8((packet.count - 40) >> 8)
            packet[5] = UInt8((packet.count - 40) & 0xFF)
            return packet
        }
        let skippable: [UInt8] = [0, 0, 0x1E, 4, 0, 0, 0, 0, 60]          // option 0x1E (action 00): skipped
        let mustDiscard: [UInt8] = [0, 0, 0x5E, 4, 0, 0, 0, 0, 60]        // option 0x5E (action 01): discard
        let dirtyPadding: [UInt8] = [0, 0, 1, 4, 0, 1, 0, 0, 60]          // PadN with a non-zero byte
        let routingUsed: [UInt8] = [0, 0, 4, 1, 0, 0, 0, 0, 43]           // segments left 1
        let routingDone: [UInt8] = [0, 0, 4, 0, 0, 0, 0, 0, 43]           // segments left 0
        let hopByHop: [UInt8] = [0, 0, 1, 4, 0, 0, 0, 0, 0]
        let cases: [(String, [[UInt8]], DropReason?)] = [
            ("a skippable option", [skippable], nil),
            ("a routing header with no segments left", [routingDone], nil),
            ("Hop-by-Hop first, then Destination Options", [hopByHop, skippable], nil),
            ("an option to be discarded", [mustDiscard], .outerOptions),
            ("padding that is not zeros", [dirtyPadding], .outerOptions),
            ("a routing header in use", [routingUsed], .outerOptions),
            ("nine headers", Array(repeating: skippable, count: 9), .outerOptions),
            ("Hop-by-Hop after another header", [skippable, hopByHop], .malformedOuter),
        ]
        for (name, headers, reason) in cases {
            let result = parse(chain(headers), local: us)
            switch (result, reason) {
            case (.tunnelled(_, _, .ipv4, _, .plain), nil): continue
            case let (.invalid(found, source), expected?): #expect(found == expected && source == .v6(Self.peer6), "\(name): \(found)")
            default: Issue.record("\(name): \(result)")
            }
        }
        // A chain that runs past the packet.
        var cut = chain([skippable])
        cut[41] = 9
        guard case .invalid(.malformedOuter, _) = parse(cut, local: us) else {
            Issue.record("a header longer than the packet is malformed")
            return
        }
    }

    @Test func ipv6UnderlayFragmentsAndICMPv6AreSortedOut() {
        let us = IPAddress.v6(Self.local6)
        var fragment = Self.wrap(Self.innerIPv4, Encapsulation(endpoints: .ipv6(local: Self.peer6, remote: Self.local6)))
        fragment.insert(contentsOf: [4, 0, 0, 1, 0, 0, 0, 7], at: 40)
        fragment[6] = 44
        fragment[5] &+= 8
        guard case .fragment(.v6(Self.peer6)) = parse(fragment, local: us) else {
            Issue.record("an IPv6 fragment is to be reassembled: \(parse(fragment, local: us))")
            return
        }
        var icmp = Self.innerIPv6
        icmp.withUnsafeMutableBytes {
            IPv6HeaderFields(payloadLength: 12, nextHeader: IPv6NextHeader.icmpv6, hopLimit: 64, source: IPv6Address("2001:db8:1::1")!,
                             destination: Self.local6).write(into: $0)
        }
        guard case .icmp(message: 40) = parse(icmp, local: us) else {
            Issue.record("ICMPv6 to us goes to the classifier")
            return
        }
        // An IPv4 packet at an IPv6 underlay, and the other way round.
        guard case .invalid(.malformedOuter, _) = parse(Self.innerIPv4, local: us),
              case .invalid(.malformedOuter, _) = parse(Self.innerIPv6) else {
            Issue.record("a packet of the other family than the underlay's is malformed")
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
        #expect(TunnelICMPError.parameterProblem(pointer: 44).icmpv6 == (4, 0, 44))
    }
}
