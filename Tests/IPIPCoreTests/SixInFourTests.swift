import Testing
@testable import IPIPCore

/// Protocol 41 (RFC 4213) through the encapsulator and decapsulator: machine A's config (IPv6 routes
/// 2001:db8:b::/64 to machine B) and machine B's (2001:db8:b::87/128 to machine A).
@Suite struct SixInFourTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let machineB = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config!

    func encapsulate(_ inner: [UInt8], _ encapsulator: inout Encapsulator, now: Double = 0) -> (Encapsulator.Verdict, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: Encapsulator.headroom) + inner
        let verdict = buffer.withUnsafeMutableBytes { encapsulator.encapsulate($0, innerLength: inner.count, now: now) }
        if case let .send(range, _, _) = verdict { return (verdict, Array(buffer[range])) }
        return (verdict, [])
    }

    /// scapy's inner echo C → ghost (hop limit 63, ECT(0)), as B's kernel hands it to the TUN.
    var echo: [UInt8] { Fixture.bytes("ipv6-icmpv6-echo") }

    /// B wraps it exactly as scapy's 6in4 packet: protocol 41, TTL = hop limit, DSCP 0 with the ECN
    /// copied, DF; the inner packet untouched.
    @Test func machineBWrapsAsScapy() throws {
        var encapsulator = Encapsulator(config: machineB, tunnelMTU: 1480, paths: [PeerPathState(firstIdentification: 0x0100)])
        let (verdict, bytes) = encapsulate(echo, &encapsulator)
        let start = Encapsulator.headroom - 20
        #expect(verdict == .send(packet: start..<(start + 20 + echo.count), peer: 0, notifyUnreachable: false))
        #expect(bytes == Fixture.bytes("sit-encapsulated-echo"))
    }

    @Test func outerHeaderFollowsTheOptionsAndCEBecomesECT0() throws {
        var config = machineB
        config.tunnel.ttl = .fixed(200)
        config.tunnel.tos = .inherit
        var encapsulator = Encapsulator(config: config, tunnelMTU: 1480)
        var marked = echo
        marked[0] = 0x6E          // traffic class 0xE3: DSCP 56, CE
        marked[1] = 0x31
        let (_, bytes) = encapsulate(marked, &encapsulator)
        try bytes.withUnsafeBytes { buffer in
            let outer = try IPv4PacketView(validating: buffer, exactLength: true)
            #expect(outer.protocolNumber == IPProtocolNumber.ipv6 && outer.ttl == 200 && outer.tos == 0xE2 && outer.dontFragment)
        }
        #expect(Array(bytes[20...]) == marked, "the inner packet is not touched")
    }

    /// Never fragmented: bigger than the path → "packet too big" with the path's inner MTU, but never
    /// below 1280; under 1280 + 20 the outer packet goes without DF instead (sit's rule).
    @Test func tooBigIsAnsweredAndTheMinimumMTUHolds() {
        let path = PeerPathState()
        var encapsulator = Encapsulator(config: machineB, tunnelMTU: 1480, paths: [path])
        path.learnPathMTU(outerMTU: 1400, now: 0, ceiling: 1480)
        let big = [UInt8(0x60), 0, 0, 0, 0x05, 0x50, 17, 64] + Array(echo[8..<40]) + [UInt8](repeating: 0, count: 1360)
        #expect(encapsulate(big, &encapsulator).0 == .tooBig(peer: 0, mtu: 1380))
        path.learnPathMTU(outerMTU: 600, now: 0, ceiling: 1480)
        let fits = [UInt8(0x60), 0, 0, 0, 0x04, 0xD8, 17, 64] + Array(echo[8..<40]) + [UInt8](repeating: 0, count: 1240)
        let (verdict, bytes) = encapsulate(fits, &encapsulator)
        guard case .send = verdict else { Issue.record("a 1280-byte packet must go: \(verdict)"); return }
        #expect(bytes[6] & 0x40 == 0, "no DF under a path of less than 1300")
        #expect(encapsulate(big, &encapsulator).0 == .tooBig(peer: 0, mtu: 1280))
    }

    @Test func dropsWhatHasNoIPv6Route() {
        var encapsulator = Encapsulator(config: machineB, tunnelMTU: 1480)
        var elsewhere = echo
        elsewhere[25] = 0x0C      // 200c:db8:b::87: no route
        #expect(encapsulate(elsewhere, &encapsulator).0 == .drop(.noRoute, peer: nil))
        var truncated = echo
        truncated[5] &+= 1        // payload length one more than the bytes
        #expect(encapsulate(truncated, &encapsulator).0 == .drop(.malformedInner, peer: nil))
    }

    /// A decapsulates scapy's packet (B → A, protocol 41) to the TUN device in both delivery modes.
    @Test(arguments: [GatewayConfig.Delivery.kernel, .routed])
    func machineADeliversToTheTUN(delivery: GatewayConfig.Delivery) {
        var config = machineA
        config.tunnel.delivery = delivery
        let decapsulator = Decapsulator(config: config, localNetworks: LocalNetworks())
        var packet = Fixture.bytes("sit-encapsulated-echo")
        // B's endpoint sends what lies behind it (2001:db8:b::/64): C's echo to the ghost is accepted.
        let verdict = packet.withUnsafeMutableBytes { decapsulator.decapsulate($0) }
        #expect(verdict == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        #expect(Array(packet[20...]) == echo, "hop limit untouched: the kernel's forwarding decrements it")
    }

    func verdict(_ inner: [UInt8], outerTOS: UInt8 = 0) -> Decapsulator.Verdict {
        let decapsulator = Decapsulator(config: machineA, localNetworks: LocalNetworks())
        var packet = IPv4HeaderFields(tos: outerTOS, protocolNumber: IPProtocolNumber.ipv6, source: IPv4Address("203.0.113.86")!,
                                      destination: IPv4Address("198.51.100.37")!).bytes(payload: inner)
        return packet.withUnsafeMutableBytes { decapsulator.decapsulate($0) }
    }

    func with(_ bytes: [UInt8], _ edits: [Int: UInt8]) -> [UInt8] {
        var copy = bytes
        for (index, value) in edits { copy[index] = value }
        return copy
    }

    @Test func hostileInnerPacketsAreDropped() {
        #expect(verdict(Array(echo[0..<39])) == .drop(.malformedInner, peer: 0))
        #expect(verdict(echo + [0]) == .drop(.malformedInner, peer: 0))
        #expect(verdict(Fixture.bytes("ipv4-icmp-echo")) == .drop(.malformedInner, peer: 0))
        #expect(verdict(with(echo, [8: 0x20, 9: 0x01, 10: 0x0D, 11: 0xB9, 12: 0, 13: 0x0C])) == .drop(.sourceNotAllowed, peer: 0))   // 2001:db9:c::…
        #expect(verdict(with(echo, Dictionary(uniqueKeysWithValues: (8..<24).map { ($0, 0) }))) == .drop(.martianSource, peer: 0))   // ::
        #expect(verdict(with(echo, [8: 0xFF, 9: 0x02])) == .drop(.martianSource, peer: 0))                  // multicast source
        // From machine A's own ghost address, which lies inside the /64 B's side sends from.
        let own = Decapsulator(config: machineA, localNetworks: LocalNetworks(addresses6: [IPv6Address("2001:db8:b::20")!]))
        var fromSelf = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipv6, source: IPv4Address("203.0.113.86")!,
                                        destination: IPv4Address("198.51.100.37")!).bytes(payload: echo)
        #expect(fromSelf.withUnsafeMutableBytes { own.decapsulate($0) } == .drop(.martianSource, peer: 0))
        #expect(verdict(with(echo, [24: 0xFF, 25: 0x02])) == .drop(.martianDestination, peer: 0))          // multicast destination
        // RFC 6040: CE over Not-ECT is dropped; CE over ECT(0) marks the inner packet CE.
        #expect(verdict(with(echo, [1: 0x00]), outerTOS: 0x03) == .drop(.ecnNotECT, peer: 0))
        let decapsulator = Decapsulator(config: machineA, localNetworks: LocalNetworks())
        var packet = IPv4HeaderFields(tos: 0x03, protocolNumber: IPProtocolNumber.ipv6, source: IPv4Address("203.0.113.86")!,
                                      destination: IPv4Address("198.51.100.37")!).bytes(payload: echo)
        #expect(packet.withUnsafeMutableBytes { decapsulator.decapsulate($0) } == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        #expect(packet[21] & 0x30 == 0x30, "inner ECN is CE")
    }

    /// Router errors about our protocol-41 packets that quote the inner IPv6 header are relayed to its
    /// source (RFC 4213 §3.4); without the inner header they open the error window as for IPv4.
    @Test func routerErrorsAboutProtocol41QuoteTheIPv6Sender() {
        let outer = Fixture.bytes("sit-encapsulated-echo")   // B → A: as if A had sent it, A's config reversed
        func classify(_ quote: [UInt8], type: UInt8 = 3, code: UInt8 = 1) -> OuterICMP {
            let icmp = ICMPBuilder.message(type: type, code: code, restOfHeader: 0, body: quote)
            let packet = IPv4HeaderFields(protocolNumber: IPProtocolNumber.icmp, source: IPv4Address("198.51.100.1")!,
                                          destination: IPv4Address("203.0.113.86")!).bytes(payload: icmp)
            return packet.withUnsafeBytes {
                classifyOuterICMP($0, local: IPv4Address("203.0.113.86")!, peer: IPv4Address("198.51.100.37")!, ttlInherited: true)
            }
        }
        let quote = OuterPacketQuote(identification: 0x0100, outerLength: UInt16(outer.count),
                                     innerSample: outer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 20, as: UInt64.self) })
        // The quoted inner packet lies behind the ICMP packet's header (20), the ICMP header (8) and the quoted outer one (20).
        let inner = 48..<(48 + outer.count - 20)
        #expect(classify(outer) == .relayToIPv6Source(peer: 0, quote: quote, timeExceeded: false, inner: inner))
        #expect(classify(outer, type: 11, code: 0) == .relayToIPv6Source(peer: 0, quote: quote, timeExceeded: true, inner: inner))
        #expect(classify(Array(outer[0..<28])) == .peerError(peer: 0, quote: quote))
        #expect(classify(Array(outer[0..<27])) == .unverifiable(peer: 0), "less than 8 bytes after the outer header")
        #expect(classify(Array(outer[0..<28]), type: 11, code: 0) == .ignore, "inherited TTL: the sender's own business")
    }
}

/// Neighbor Discovery: scapy's messages parsed, ipipd's advertisements byte for byte, and what the
/// proxy answers (RFC 4861 §7.1.1, §7.2.4, §7.2.8).
@Suite struct ProxyNDPTests {
    let ghost = IPv6Address("2001:db8:b::87")!
    let macB = MACAddress("02:00:00:00:00:86")!
    let macC = MACAddress("02:00:00:00:00:20")!

    @Test func parsesScapysSolicitations() throws {
        try Fixture.bytes("ndp-ns").withUnsafeBytes { frame in
            let message = try NDPMessageView(validating: UnsafeRawBufferPointer(rebasing: frame[14...]))
            #expect(message.isSolicitation && message.target == ghost && message.linkLayerAddress == macC)
            #expect(message.source == IPv6Address("2001:db8:b::20") && message.destination == ghost.solicitedNode)
        }
        try Fixture.bytes("ndp-ns-dad").withUnsafeBytes { frame in
            let message = try NDPMessageView(validating: UnsafeRawBufferPointer(rebasing: frame[14...]))
            #expect(message.source.isUnspecified && message.linkLayerAddress == nil)
        }
    }

    @Test func refusesWhatRFC4861Refuses() {
        func refusal(_ edit: (inout [UInt8]) -> Void) -> NDPParseError? {
            var frame = Fixture.bytes("ndp-ns")
            edit(&frame)
            return frame.withUnsafeBytes { buffer -> NDPParseError? in
                do throws(NDPParseError) {
                    _ = try NDPMessageView(validating: UnsafeRawBufferPointer(rebasing: buffer[14...]))
                    return nil
                } catch { return error }
            }
        }
        #expect(refusal { $0[14 + 7] = 64 } == .hopLimit)
        #expect(refusal { $0[14 + 40 + 2] ^= 0xFF } == .badChecksum)
        #expect(refusal { $0[14 + 40 + 1] = 1 } == .badChecksum, "the code is covered by the checksum, checked first")
        #expect(refusal { $0[14 + 40 + 25] = 0 } == .badChecksum)
        #expect(refusal { $0[14 + 40 + 8] = 0xFF } != nil, "a multicast target")
        #expect(refusal { $0[14 + 40] = 128 } == .notNDP)
        // A multicast source (ff02::1, found by the fuzzer: the answer went to all nodes with Solicited set).
        #expect(refusal { $0[14 + 8] = 0xFF } == .multicastSource)
        // ::1 and an IPv4-mapped source (issue 27, finding 2): never on a link.
        #expect(refusal { frame in frame.withUnsafeMutableBytes { $0.setIPv6Address(.loopback, at: 14 + 8) } } == .martianSource)
        #expect(refusal { frame in frame.withUnsafeMutableBytes { $0.setIPv6Address(IPv6Address(high: 0, low: 0xFFFF_CB00_7114), at: 14 + 8) } } == .martianSource)
        #expect(refusal { _ in } == nil)
    }

    @Test func advertisementsMatchScapy() {
        #expect(NDPBuilder.advertisement(target: ghost, mac: macB, to: IPv6Address("2001:db8:b::20")!, destinationMAC: macC,
                                         solicited: true, override: false) == Fixture.bytes("ndp-na-solicited"))
        #expect(NDPBuilder.announcement(target: ghost, mac: macB) == Fixture.bytes("ndp-na-unsolicited"))
    }

    func responder(_ options: ProxyARPResponder.Options = .init()) -> ProxyNDPResponder {
        var responder = ProxyNDPResponder(interfaceMAC: macB, options: options)
        responder.add(ghost, mac: nil, now: 0)
        return responder
    }

    func handle(_ frame: [UInt8], _ responder: inout ProxyNDPResponder, now: Double = 1) -> ProxyNDPResponder.Decision {
        frame.withUnsafeBytes { responder.handle($0, now: now) }
    }

    /// No advertisement to a group or all-zero link-layer address (issue 27, finding 2: an option of
    /// ff:ff:ff:ff:ff:ff made ipipd a reflector), whether the option or the frame names it.
    @Test func solicitationsNamingAGroupLinkLayerAddressAreNotAnswered() {
        var proxy = responder()
        for mac in [MACAddress.broadcast, MACAddress("33:33:00:00:00:01")!, .zero] {
            var option = Fixture.bytes("ndp-ns")
            option.withUnsafeMutableBytes { frame in
                frame.setMACAddress(mac, at: 14 + 40 + 26)
                frame.setUInt16(0, at: 14 + 40 + 2)
                let packet = UnsafeMutableRawBufferPointer(rebasing: frame[14...])
                frame.setUInt16(InternetChecksum.computeIPv6Upper(UnsafeRawBufferPointer(packet), nextHeader: IPv6NextHeader.icmpv6), at: 14 + 40 + 2)
            }
            #expect(handle(option, &proxy) == .ignore(.invalidSender, ghost: ghost), "\(mac) in the option")
            var frame = Fixture.bytes("ndp-ns")
            frame.withUnsafeMutableBytes { $0.setMACAddress(mac, at: 6) }
            #expect(handle(frame, &proxy) == .ignore(.invalidSender, ghost: ghost), "\(mac) as the frame's source")
        }
        #expect(handle(Fixture.bytes("ndp-ns"), &proxy) == .reply(ghost: ghost, frame: Fixture.bytes("ndp-na-solicited")))
    }

    /// Issue 27, finding 11: a solicitation tagged for another VLAN is not answered.
    @Test func aSolicitationTaggedForAnotherVLANIsNotAnswered() {
        var proxy = responder()
        let untagged = Fixture.bytes("ndp-ns")
        let tagged = Array(untagged[0..<12]) + [0x81, 0x00, 0x00, 42] + Array(untagged[12...])
        #expect(handle(tagged, &proxy) == .ignore(.otherVLAN, ghost: nil))
        #expect(handle(untagged, &proxy) == .reply(ghost: ghost, frame: Fixture.bytes("ndp-na-solicited")))
    }

    @Test func answersASolicitationAndIgnoresDADUnlessAskedTo() {
        var proxy = responder()
        #expect(handle(Fixture.bytes("ndp-ns"), &proxy) == .reply(ghost: ghost, frame: Fixture.bytes("ndp-na-solicited")))
        #expect(handle(Fixture.bytes("ndp-ns-dad"), &proxy) == .ignore(.probe, ghost: ghost))
        var options = ProxyARPResponder.Options()
        options.answerProbes = true
        var defending = responder(options)
        guard case let .reply(_, answer) = handle(Fixture.bytes("ndp-ns-dad"), &defending) else {
            Issue.record("a DAD probe must be answered with answer-probes")
            return
        }
        // To all nodes, Solicited clear (§7.2.4), Override clear (a proxy, §7.2.8).
        #expect(Array(answer[0..<6]) == [0x33, 0x33, 0, 0, 0, 1] && answer[14 + 40 + 4] == 0)
        // Scheduled at start: two unsolicited advertisements, 2 s apart, Override set.
        #expect(proxy.dueAnnouncements(now: 0).map(\.frame) == [Fixture.bytes("ndp-na-unsolicited")])
        #expect(proxy.dueAnnouncements(now: 2).count == 1 && proxy.dueAnnouncements(now: 10).isEmpty)
    }

    @Test func anotherNodeAdvertisingTheGhostIsAConflictAndOurOwnFramesAreNot() {
        var proxy = responder()
        let claim = NDPBuilder.announcement(target: ghost, mac: MACAddress("02:00:00:00:00:30")!)
        guard case let .conflict(address, mac, defense) = handle(claim, &proxy) else {
            Issue.record("a claim must be a conflict")
            return
        }
        #expect(address == ghost && mac == MACAddress("02:00:00:00:00:30") && defense == NDPBuilder.announcement(target: ghost, mac: macB))
        // Within the defend interval (0.5 s): counted, not defended again; a second later, defended again.
        #expect(handle(claim, &proxy, now: 1.2) == .conflict(ghost: ghost, mac: MACAddress("02:00:00:00:00:30")!, defense: nil))
        #expect(handle(claim, &proxy, now: 2) == .conflict(ghost: ghost, mac: MACAddress("02:00:00:00:00:30")!,
                                                          defense: NDPBuilder.announcement(target: ghost, mac: macB)))
        #expect(handle(NDPBuilder.announcement(target: ghost, mac: macB), &proxy) == .ignore(.ownFrame, ghost: nil))
    }

    /// Becoming an HA pair's active box, or a reload adding a ghost, announces it again.
    @Test func activationAndReloadsAnnounce() throws {
        var proxy = responder()
        proxy.cancelAnnouncements()
        #expect(proxy.dueAnnouncements(now: 100).isEmpty)
        proxy.announceAll(now: 100)
        #expect(proxy.dueAnnouncements(now: 100).count == 1 && proxy.dueAnnouncements(now: 102).count == 1)
        let config = try #require(ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config)
        var moved = config
        moved.ghostHosts = moved.ghostHosts.filter { !$0.address.isIPv6 } + [.init(address: IPv6Address("2001:db8:b::88")!, interface: "eth0", mac: nil)]
        moved.peers[0].routes = moved.peers[0].routes.filter { !$0.isIPv6 } + [IPPrefix("2001:db8:b::88/128")!]
        let started = ProxyNDPResponder(interface: "eth0", mac: macB, config: config, now: 0, announce: false)
        var reloaded = started.reconfigured(for: moved, interface: "eth0", previous: config, now: 50)
        #expect(Array(reloaded.ghosts.keys) == [IPv6Address("2001:db8:b::88")!])
        #expect(reloaded.dueAnnouncements(now: 50).map(\.ghost) == [IPv6Address("2001:db8:b::88")!])
        var kept = started.reconfigured(for: config, interface: "eth0", previous: config, now: 50)
        #expect(kept.dueAnnouncements(now: 60).isEmpty, "a ghost that stays is not announced again")
    }

    @Test func requestersAreRateLimited() {
        var proxy = responder()
        let answered = (0..<40).filter { index in
            if case .reply = handle(Fixture.bytes("ndp-ns"), &proxy, now: 1 + Double(index) * 0.001) { true } else { false }
        }
        #expect(answered.count == 10, "the burst of one requester")
        var other = Fixture.bytes("ndp-ns")
        other[11] = 0x21        // another requester's frame source: a fresh bucket
        #expect({ if case .reply = handle(other, &proxy, now: 1.05) { true } else { false } }())
    }
}
