import Testing
@testable import IPIPCore

@Suite struct DecapsulationPathTests {
    let counters = TunnelCounters(peerNames: ["machine-b"])
    let state = PeerPathState()

    func path(local: Set<IPv4Address> = [], delivery: GatewayConfig.Delivery = .routed, tunnelMTU: Int = 1480) -> DecapsulationPath {
        var config = MachineA.config
        config.tunnel.delivery = delivery
        return DecapsulationPath(config: config, tunnelMTU: tunnelMTU, counters: counters, paths: [state], localNetworks: LocalNetworks(addresses: local))
    }

    func capture(_ path: DecapsulationPath, _ packet: [UInt8], _ sent: SentPackets, now: Double = 0) {
        ethernetFrame(packet).withUnsafeBytes { path.process(frame: $0, wireLength: $0.count, in: sent.batch, now: now) }
    }

    @Test func aForwardedInnerPacketIsQueuedWithOneTTLLess() throws {
        let sent = SentPackets(), inner = MachineA.inner(length: 200, ttl: 9)
        capture(path(), MachineA.outerFromB(inner), sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .decapsulated(peer: 0, innerLength: 200, viaTUN: false) && packets[0].destination == MachineA.hostC)
        try packets[0].bytes.withUnsafeBytes { bytes in
            let view = try IPv4PacketView(validating: bytes, exactLength: true)
            #expect(view.ttl == 8 && Array(view.payload) == Array(inner[20...]))
        }
    }

    @Test(arguments: [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
    func outerFragmentsInAnyOrderAreDeliveredOnce(order: [Int]) throws {
        // Host C lies in A's tunneled prefix: the tunnel MTU is set above the packet so it goes whole.
        let sent = SentPackets(), path = path(tunnelMTU: 9000), inner = MachineA.inner(length: 1800)
        let pieces = try MachineA.outerFromB(inner).withUnsafeBytes { IPv4Fragmenter.fragments(of: try IPv4PacketView(validating: $0), mtu: 500) }
        try #require(pieces.count == 4)
        for index in order { capture(path, pieces[index], sent) }
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(Array(packets[0].bytes[20...]) == Array(inner[20...]))
        #expect(path.pendingReassemblies == 0)
    }

    /// A packet whose destination lies in a tunneled prefix (a hub passing it from peer to peer) leaves
    /// through the tunnel: the tunnel MTU applies when that prefix is the longest match, whatever the
    /// route watcher published for the other routes.
    @Test func aPacketBackIntoTheTunnelIsCutToTheTunnelMTU() throws {
        let sent = SentPackets(), path = path(), inner = MachineA.inner(length: 1800)
        path.egressMTUs = PrefixTable([(IPv4Prefix("0.0.0.0/0")!, 9000), (IPv4Prefix("203.0.112.0/23")!, 9000)], uniquingPrefixesWith: { $1 })
        capture(path, MachineA.outerFromB(inner), sent)
        let packets = sent.flush()
        #expect(packets.count == 2 && packets.allSatisfy { $0.bytes.count <= 1480 }, "\(packets.map(\.bytes.count))")
        // A longer route outside the tunnel wins, with its own MTU.
        let sentOutside = SentPackets(), outside = self.path()
        outside.egressMTUs = PrefixTable([(IPv4Prefix("203.0.113.0/25")!, 9000)], uniquingPrefixesWith: { $1 })
        capture(outside, MachineA.outerFromB(inner), sentOutside)
        #expect(sentOutside.flush().count == 1)
    }

    @Test func anExpiringInnerPacketIsAnsweredWithTimeExceeded() throws {
        let sent = SentPackets(), inner = MachineA.inner(length: 64, ttl: 1)
        capture(path(), MachineA.outerFromB(inner), sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .icmpError(peer: 0) && packets[0].destination == MachineA.ghost)
        #expect(packets[0].bytes[20] == ICMPType.timeExceeded && Array(packets[0].bytes[28..<56]) == Array(inner[0..<28]))
        #expect(counters.peers[0].drops.value(.ttlExpired) == 1)
    }

    @Test func aRoutersFragmentationNeededLowersThePeersPathMTU() {
        let sent = SentPackets(), path = path()
        var events: [PacketPathEvent] = []
        path.report = { events.append($0) }
        state.noteSent(Fixture.quote(inReport: "icmp-frag-needed"), now: 2)   // the outer packet the fixture quotes went to B
        capture(path, Fixture.bytes("icmp-frag-needed"), sent, now: 3)
        #expect(sent.flush().isEmpty)
        #expect(events == [.pathMTULowered(peer: 0, mtu: 1360)])
        #expect(state.currentMTU(now: 4) == 1360)
    }

    /// A report about an outer packet we never sent (or not lately) is anyone's forgery: ignored, counted.
    @Test(arguments: [nil, 0.0] as [Double?])
    func aFragmentationNeededQuotingAPacketWeDidNotSendLatelyIsNotBelieved(sentAt: Double?) {
        let sent = SentPackets(), path = path()
        var events: [PacketPathEvent] = []
        path.report = { events.append($0) }
        if let sentAt { state.noteSent(Fixture.quote(inReport: "icmp-frag-needed"), now: sentAt) }
        capture(path, Fixture.bytes("icmp-frag-needed"), sent, now: 30)
        #expect(events.isEmpty && state.currentMTU(now: 31) == nil)
        #expect(counters.peers[0].drops.value(.icmpUnverified) == 1)
    }

    /// Linux floors learned path MTUs at min_pmtu (552): a report of 68 cannot shrink the tunnel to nothing.
    @Test func aReportedPathMTUIsFlooredAtMinPMTU() throws {
        let sent = SentPackets(), path = path()
        var report = Fixture.bytes("icmp-frag-needed")
        report.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(68, at: 20 + 6)                            // next-hop MTU
            bytes.setUInt16(0, at: 20 + 2)
            bytes.setUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: bytes[20...])), at: 20 + 2)
        }
        state.noteSent(Fixture.quote(inReport: "icmp-frag-needed"), now: 2)
        capture(path, report, sent, now: 3)
        #expect(state.currentMTU(now: 4) == 552 - 20)
    }

    /// A report from a stranger to A about an outer packet A → B with `identification`, quoting `inner`.
    func report(type: UInt8, code: UInt8, nextHopMTU: Int = 0, identification: UInt16, inner: [UInt8]) -> [UInt8] {
        let outer = IPv4HeaderFields(identification: identification, dontFragment: true, protocolNumber: IPProtocolNumber.ipip,
                                     source: MachineA.local, destination: MachineA.peerB).bytes(payload: inner)
        let message = outer.withUnsafeBytes {
            type == ICMPType.timeExceeded ? ICMPBuilder.timeExceeded(original: $0)
                : ICMPBuilder.destinationUnreachable(code: code, nextHopMTU: nextHopMTU, original: $0)
        }
        return IPv4HeaderFields(protocolNumber: IPProtocolNumber.icmp, source: IPv4Address("198.51.100.99")!, destination: MachineA.local)
            .bytes(payload: message)
    }

    /// 60 pings (84-byte outer packets, each inner ID its own), recorded as sent to B through `peer`.
    @discardableResult
    func sendPings(through peer: PeerPathState, now: Double) -> [[UInt8]] {
        let pings = (0..<60).map { MachineA.inner(length: 64, dontFragment: true, identification: 0x3000 + UInt16($0)) }
        for ping in pings { _ = ping.withUnsafeBytes { peer.takeIdentification(now: now, outerLength: 84, inner: $0) } }
        return pings
    }

    /// Issue 27, finding 8: 65,536 forged "fragmentation needed, MTU 68" reports in 0.7 s, one per outer ID,
    /// quoting the right length and a guess at the inner packet, while the peer carries pings; then 131,073
    /// forged "unreachable" the same way. None is believed; past the budget, none is even looked at.
    @Test func aSprayOfForgedReportsOverEveryIDMovesNothing() {
        let sent = SentPackets(), path = path()
        var events: [PacketPathEvent] = []
        path.report = { events.append($0) }
        sendPings(through: state, now: 2)
        let guess = MachineA.inner(length: 64, dontFragment: true, identification: 1)
        for identification in 0...UInt16.max {
            capture(path, report(type: 3, code: 4, nextHopMTU: 68, identification: identification, inner: guess), sent,
                    now: 2.5 + 0.7 * Double(identification) / 65_536)
        }
        for index in 0..<131_073 {
            capture(path, report(type: 3, code: index % 2 == 0 ? 1 : 3, identification: UInt16(truncatingIfNeeded: index / 2), inner: guess),
                    sent, now: 3.2 + 1.4 * Double(index) / 131_073)
        }
        #expect(events.isEmpty, "\(events.prefix(3))")
        #expect(state.currentMTU(now: 5) == nil && !state.isInErrorWindow(now: 5) && !state.takeError(now: 5))
        let drops = counters.peers[0].drops
        #expect(drops.value(.icmpUnverified) + drops.value(.icmpOverBudget) == 65_536 + 131_073)
        #expect(drops.value(.icmpUnverified) <= 20 + 22, "the burst, then 10 a second for 2.1 s: \(drops.value(.icmpUnverified))")
        #expect(sent.flush().isEmpty)
    }

    /// Even a forger who knows the inner packets exactly (their length, inner IDs and all) gets no more
    /// than the budget's looks at the IDs in flight: 20 of 65,536 in this spray, none of them one of the
    /// peer's. The same quote from the router on the path, once the spray is over, is believed.
    @Test func aForgerWhoGuessesTheInnerPacketStillGetsOnlyTheBudget() {
        let sent = SentPackets(), path = path()
        let peerState = PeerPathState(firstIdentification: 40_000)
        path.reconfigure(MachineA.config, counters: counters, paths: [peerState])
        let pings = sendPings(through: peerState, now: 2)
        for identification in 0...UInt16.max {
            let ping = pings[Int(identification &- 40_000) % 60]   // the inner packet sent with that ID, had it been one of them
            capture(path, report(type: 3, code: 1, identification: identification, inner: ping), sent, now: 2.5)
        }
        #expect(!peerState.isInErrorWindow(now: 3) && counters.peers[0].drops.value(.icmpUnverified) == 20)
        capture(path, report(type: 3, code: 1, identification: 40_007, inner: pings[7]), sent, now: 4.5)
        #expect(peerState.isInErrorWindow(now: 4.6), "the router's own report, looked at once the budget has refilled")
    }

    /// A router reports a packet that did not fit the next hop: a report of an MTU the quoted packet fits is a forgery.
    @Test func aFragmentationNeededAboutAPacketThatFitsIsNotBelieved() {
        let sent = SentPackets(), path = path()
        let peerState = PeerPathState(firstIdentification: 500)
        path.reconfigure(MachineA.config, counters: counters, paths: [peerState])
        let big = MachineA.inner(length: 1400, dontFragment: true)
        _ = big.withUnsafeBytes { peerState.takeIdentification(now: 2, outerLength: 1420, inner: $0) }
        capture(path, report(type: 3, code: 4, nextHopMTU: 1420, identification: 500, inner: big), sent, now: 2.1)
        #expect(peerState.currentMTU(now: 3) == nil && counters.peers[0].drops.value(.icmpUnverified) == 1)
        capture(path, report(type: 3, code: 4, nextHopMTU: 1400, identification: 500, inner: big), sent, now: 2.2)
        #expect(peerState.currentMTU(now: 3) == 1380)
    }

    @Test func truncatedAndForeignFramesAreCounted() {
        let sent = SentPackets(), path = path()
        let frame = ethernetFrame(MachineA.outerFromB(MachineA.inner(length: 64)))
        frame.withUnsafeBytes { path.process(frame: UnsafeRawBufferPointer(rebasing: $0[0..<60]), wireLength: $0.count, in: sent.batch, now: 0) }
        let notIPv4 = EthernetBuilder.frame(destination: .broadcast, source: MachineA.peerB.asMACForTests, etherType: EtherType.arp, payload: [0, 1])
        notIPv4.withUnsafeBytes { path.process(frame: $0, wireLength: $0.count, in: sent.batch, now: 0) }
        #expect(sent.flush().isEmpty)
        #expect(counters.drops.value(.truncatedCapture) == 1 && counters.drops.value(.malformedOuter) == 1)
    }

    /// Every frame ends up somewhere the counters show: dropped (by reason), delivered, acted on, held
    /// for reassembly, or folded into a reassembled datagram.
    @Test func everyCapturedFrameIsAccountedFor() throws {
        let sent = SentPackets(), path = path()
        let inner = MachineA.inner(length: 1800)
        let pieces = try MachineA.outerFromB(inner, identification: 77).withUnsafeBytes {
            IPv4Fragmenter.fragments(of: try IPv4PacketView(validating: $0), mtu: 500)
        }
        let held = try MachineA.outerFromB(MachineA.inner(length: 1800), identification: 78).withUnsafeBytes {
            IPv4Fragmenter.fragments(of: try IPv4PacketView(validating: $0), mtu: 500)
        }
        var frames: [[UInt8]] = [pieces[0], pieces[1], pieces[1], pieces[2], pieces[3]]   // a datagram, with a duplicate
        frames += [held[0], held[2]]                                        // two pieces of one that never completes
        frames += [MachineA.outerFromB(MachineA.inner(length: 60)), MachineA.outerFromB(MachineA.inner(length: 60, ttl: 1))]
        frames += [Fixture.bytes("icmp-frag-needed"), Array(repeating: 0x45, count: 30)]   // an ICMP report, garbage
        state.noteSent(Fixture.quote(inReport: "icmp-frag-needed"), now: 0)
        for frame in frames { capture(path, frame, sent) }
        let delivered = sent.flush().filter { if case .decapsulated = $0.kind { true } else { false } }.count
        let capture = counters.capture
        #expect(capture.frames.value == UInt64(frames.count))
        #expect(delivered == 2 && capture.fragmentsHeld.value == 2 && capture.datagramsReassembled.value == 1)
        let outcomes = capture.dropped.value + UInt64(delivered) + capture.icmpActedOn.value + capture.fragmentsHeld.value
            + capture.fragmentsReassembled.value - capture.datagramsReassembled.value
        #expect(outcomes == capture.frames.value, "frames \(capture.frames.value), outcomes \(outcomes)")
        path.expire(now: 100)
        #expect(capture.fragmentsHeld.value == 0 && capture.dropped.value == 5, "duplicate, TTL, garbage, and the two held pieces")
    }
}
