import Testing
@testable import IPIPCore

@Suite struct ProxyARPTests {
    let ghost = IPv4Address("203.0.113.87")!
    let hostC = IPv4Address("203.0.113.20")!
    let macB = MACAddress("02:00:00:00:00:86")!
    let macC = MACAddress("02:00:00:00:00:20")!
    let macD = MACAddress("02:00:00:00:00:30")!

    func responder(_ configure: (inout ProxyARPResponder.Options) -> Void = { _ in }) -> ProxyARPResponder {
        var options = ProxyARPResponder.Options()
        configure(&options)
        var responder = ProxyARPResponder(interfaceMAC: macB, options: options)
        responder.add(ghost, mac: nil, now: 0)
        return responder
    }

    func handle(_ responder: inout ProxyARPResponder, _ frame: [UInt8], at now: Double = 1) -> ProxyARPResponder.Decision {
        frame.withUnsafeBytes { responder.handle($0, now: now) }
    }

    @Test func answersARequestForTheGhostUnicastWithTheInterfaceMAC() {
        var r = responder()
        // The reply to scapy's request must be byte-for-byte scapy's reply.
        #expect(handle(&r, Fixture.bytes("arp-request")) == .reply(ghost: ghost, frame: Fixture.bytes("arp-reply")))
    }

    @Test func configuredMACIsUsedInReplies() {
        var r = ProxyARPResponder(interfaceMAC: macB)
        let custom = MACAddress("02:aa:00:00:00:01")!
        r.add(ghost, mac: custom, now: 0)
        guard case let .reply(_, frame) = handle(&r, Fixture.bytes("arp-request")) else {
            Issue.record("no reply")
            return
        }
        frame.withUnsafeBytes { bytes in
            #expect(bytes.macAddress(at: 6) == custom)
            #expect(bytes.macAddress(at: 14 + 8) == custom)
        }
    }

    /// No reply to where no host can be (issue 27, finding 2): a group or all-zero sender MAC, in the
    /// frame or in the ARP packet, would make ipipd a reflector; a martian sender address is no host's.
    @Test func requestsFromGroupMACsOrMartianSendersAreNotAnswered() {
        var r = responder()
        let multicast = MACAddress("01:00:5e:00:00:01")!
        for mac in [MACAddress.broadcast, multicast, .zero] {
            #expect(handle(&r, ARPBuilder.request(from: mac, senderAddress: hostC, asking: ghost)) == .ignore(.invalidSender, ghost: ghost), "\(mac)")
            var forged = ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost)
            forged.withUnsafeMutableBytes { $0.setMACAddress(mac, at: 14 + 8) }   // the ARP sender hardware address only
            #expect(handle(&r, forged) == .ignore(.invalidSender, ghost: ghost), "\(mac) in the ARP packet")
        }
        for martian in ["127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1", "0.1.2.3"] {
            let request = ARPBuilder.request(from: macC, senderAddress: IPv4Address(martian)!, asking: ghost)
            #expect(handle(&r, request) == .ignore(.invalidSender, ghost: ghost), "\(martian)")
        }
        guard case .reply = handle(&r, ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost)) else {
            Issue.record("a valid request after them is not answered")
            return
        }
    }

    @Test func ignoresWhatALANAdminWouldWantIgnored() {
        var r = responder()
        #expect(handle(&r, Fixture.bytes("arp-probe")) == .ignore(.probe, ghost: ghost))
        #expect(handle(&r, Fixture.bytes("arp-bad-hwtype")) == .ignore(.malformed, ghost: nil))
        #expect(handle(&r, Array(Fixture.bytes("arp-request").prefix(40))) == .ignore(.malformed, ghost: nil))
        let forOther = ARPBuilder.request(from: macC, senderAddress: hostC, asking: IPv4Address("203.0.113.99")!)
        #expect(handle(&r, forOther) == .ignore(.notAGhost, ghost: nil))
        let own = ARPBuilder.request(from: macB, senderAddress: IPv4Address("203.0.113.86")!, asking: ghost)
        #expect(handle(&r, own) == .ignore(.ownFrame, ghost: nil))
        // Our own announcement, seen again, is neither a conflict nor a question.
        #expect(handle(&r, ARPBuilder.announcement(mac: macB, address: ghost)) == .ignore(.ownFrame, ghost: nil))
    }

    @Test func probesAreAnsweredWhenConfiguredByBroadcast() {
        var r = responder { $0.answerProbes = true }
        guard case let .reply(_, frame) = handle(&r, Fixture.bytes("arp-probe")) else {
            Issue.record("no reply to the probe")
            return
        }
        #expect(Array(frame.prefix(6)) == MACAddress.broadcast.array)
    }

    /// A machine claiming the ghost address is a conflict; defending (the default), ipipd announces the
    /// ghost again to put its MAC back in the LAN's caches, at most once per 10 s (RFC 5227 §2.4(c)).
    @Test func anotherMachineClaimingTheGhostIsAConflictAndDefended() {
        var r = responder()
        let claim = ARPBuilder.announcement(mac: macD, address: ghost)
        #expect(handle(&r, claim, at: 5) == .conflict(ghost: ghost, mac: macD, sender: ghost,
                                                   defense: ARPBuilder.announcement(mac: macB, address: ghost)))
        let reply = ARPBuilder.reply(mac: macD, address: ghost, toMAC: macC, toAddress: hostC)
        #expect(handle(&r, reply, at: 5.3) == .conflict(ghost: ghost, mac: macD, sender: ghost, defense: nil), "within 0.5 s")
        // A claim every second is answered every time (issue 27, finding 3: once per 10 s let it win).
        if case .conflict(_, _, _, let defense) = handle(&r, claim, at: 6) { #expect(defense != nil) } else { Issue.record("no conflict") }
        // Defending (the default): requests are still answered.
        guard case .reply = handle(&r, Fixture.bytes("arp-request")) else {
            Issue.record("stopped answering while defending")
            return
        }
    }

    @Test func yieldingStopsAnsweringWhileTheConflictLasts() {
        var r = responder { $0.yieldOnConflict = true; $0.conflictHoldSeconds = 30 }
        _ = handle(&r, ARPBuilder.announcement(mac: macD, address: ghost), at: 10)
        #expect(handle(&r, Fixture.bytes("arp-request"), at: 20) == .ignore(.yielding, ghost: ghost))
        #expect(r.isYielding(ghost, now: 39.9))
        guard case .reply = handle(&r, Fixture.bytes("arp-request"), at: 41) else {
            Issue.record("did not resume after the conflict ended")
            return
        }
    }

    @Test func repliesAreRateLimitedPerRequester() {
        var r = responder { $0.repliesPerSecond = 1; $0.replyBurst = 3 }
        let request = Fixture.bytes("arp-request")
        var answered = 0
        for _ in 0..<10 { if case .reply = handle(&r, request, at: 5) { answered += 1 } }
        #expect(answered == 3)
        #expect(handle(&r, request, at: 5) == .ignore(.rateLimited, ghost: ghost))
        // Another requester has its own bucket; and tokens come back with time.
        let fromD = ARPBuilder.request(from: macD, senderAddress: IPv4Address("203.0.113.30")!, asking: ghost)
        guard case .reply = handle(&r, fromD, at: 5), case .reply = handle(&r, request, at: 6.1) else {
            Issue.record("rate limit is not per requester or does not refill")
            return
        }
    }

    /// Requests from 10,000 forged MACs at once: the table of requesters stays bounded, and the replies
    /// stop at the interface's total burst however many MACs there are.
    @Test func aFloodFromForgedMACsIsCappedInAllAndTheTableStaysBounded() {
        var r = responder { _ in }
        var answered = 0
        for index in 0..<10_000 {
            let mac = MACAddress(value: 0x0200_0000_0000 | UInt64(index + 1))
            let request = ARPBuilder.request(from: mac, senderAddress: IPv4Address(UInt32(0xCB00_7100) + UInt32(index % 200 + 1)), asking: ghost)
            if case .reply = handle(&r, request, at: 7) { answered += 1 }
        }
        #expect(answered == Int(ProxyARPResponder.Options().totalReplyBurst))
        #expect(r.trackedRequesters <= 2 * ProxyARPResponder.maximumTrackedRequesters)
    }

    /// Issue 27, finding 4: a flood of requests from new MACs took the replies of the LAN's hosts
    /// (40–65 % answered). A host answered before the flood draws on a budget of its own: every one of
    /// its requests is answered during a flood of 2,000 requests a second from 10,000 MACs, while the
    /// flood still gets no more than the global cap.
    @Test func aHostKnownBeforeAFloodIsStillAnsweredDuringIt() {
        var r = responder { _ in }
        let request = ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost)
        guard case .reply = handle(&r, request, at: 0), case .reply = handle(&r, request, at: 6) else {
            Issue.record("C is not answered before the flood")
            return
        }
        #expect(r.table.establishedRequesters == 1, "answered at 0 and asking again 6 s later: established")
        var answered = (c: 0, flood: 0)
        for index in 0..<10_000 {
            let now = 7 + Double(index) / 2000
            let mac = MACAddress(value: 0x0200_0000_0000 | UInt64(index + 1))
            if case .reply = handle(&r, ARPBuilder.request(from: mac, senderAddress: IPv4Address(UInt32(0xCB00_7164)), asking: ghost), at: now) {
                answered.flood += 1
            }
            if index % 500 == 0, case .reply = handle(&r, request, at: now) { answered.c += 1 }
        }
        #expect(answered.c == 20, "C answered \(answered.c) of 20 during the flood")
        #expect(answered.flood <= 500 + 5 * 500 + 1, "the flood got \(answered.flood) replies in 5 s")
        #expect(r.table.establishedRequesters == 1, "the flood established none of its MACs")
    }

    @Test func announcesTwiceTwoSecondsApart() {
        var r = ProxyARPResponder(interfaceMAC: macB)
        r.add(ghost, mac: nil, now: 100)
        let first = r.dueAnnouncements(now: 100)
        #expect(first.count == 1 && first[0].frame == ARPBuilder.announcement(mac: macB, address: ghost))
        #expect(r.dueAnnouncements(now: 101.9).isEmpty)
        #expect(r.dueAnnouncements(now: 102).count == 1)
        #expect(r.dueAnnouncements(now: 200).isEmpty)
    }

    /// Issue 27, finding 11: requests tagged for VLAN 42 got tagged replies on an untagged interface.
    /// A tagged frame belongs to another VLAN: neither answered nor a claim (a VLAN's ghosts would be
    /// configured on its own interface, eth0.42, where the kernel hands the frames over untagged).
    @Test func taggedFramesOfAnotherVLANAreNeitherAnsweredNorClaims() {
        var r = responder()
        #expect(handle(&r, ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost, vlanID: 42)) == .ignore(.otherVLAN, ghost: nil))
        #expect(handle(&r, ARPBuilder.announcement(mac: macD, address: ghost, vlanID: 42)) == .ignore(.otherVLAN, ghost: nil))
        guard case .reply = handle(&r, ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost)) else {
            Issue.record("the untagged request is not answered")
            return
        }
    }
}
