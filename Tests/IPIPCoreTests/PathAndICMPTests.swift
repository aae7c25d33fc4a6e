import Testing
@testable import IPIPCore

/// Path MTU, ICMP errors, fragmentation and reassembly: the RFC 2003 §4 / RFC 1122 machinery.
@Suite struct PathAndICMPTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let local = IPv4Address("198.51.100.37")!
    let peerB = IPv4Address("203.0.113.86")!

    func inner(length: Int, dontFragment: Bool, protocolNumber: UInt8 = 17) -> [UInt8] {
        IPv4HeaderFields(dontFragment: dontFragment, ttl: 64, protocolNumber: protocolNumber,
                         source: IPv4Address("203.0.113.87")!, destination: IPv4Address("203.0.113.20")!)
            .bytes(payload: [UInt8](repeating: 0xAB, count: length - 20))
    }

    func verdict(_ packet: [UInt8], _ encapsulator: inout Encapsulator, now: Double = 0) -> Encapsulator.Verdict {
        var buffer = [UInt8](repeating: 0, count: Encapsulator.headroom) + packet
        return buffer.withUnsafeMutableBytes { encapsulator.encapsulate($0, innerLength: packet.count, now: now) }
    }

    @Test func tooBigWithDFAsksForFragmentationNeededWithoutDFFragments() {
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1380)
        #expect(verdict(inner(length: 1380, dontFragment: true), &encapsulator) != .tooBig(peer: 0, mtu: 1380))
        #expect(verdict(inner(length: 1381, dontFragment: true), &encapsulator) == .tooBig(peer: 0, mtu: 1380))
        #expect(verdict(inner(length: 1381, dontFragment: false), &encapsulator) == .fragment(peer: 0, mtu: 1380))
    }

    @Test func learnedPathMTULowersTheLimitUntilItExpires() {
        let path = PeerPathState()
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480, paths: [path])
        #expect(path.learnPathMTU(outerMTU: 1400, now: 10, ceiling: 1480) == 1380)
        #expect(path.learnPathMTU(outerMTU: 1450, now: 10, ceiling: 1480) == nil, "a higher report does not raise it")
        #expect(verdict(inner(length: 1400, dontFragment: true), &encapsulator, now: 11) == .tooBig(peer: 0, mtu: 1380))
        let expired = 10 + PeerPathState.pathMTUExpirySeconds + 1
        if case .send = verdict(inner(length: 1400, dontFragment: true), &encapsulator, now: expired) {} else {
            Issue.record("the learned MTU did not expire")
        }
    }

    @Test func errorWindowNotifiesOneSenderPerReportedErrorFor30Seconds() {
        let path = PeerPathState()
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480, paths: [path])
        path.noteError(now: 100)
        path.noteError(now: 100)
        let packet = inner(length: 100, dontFragment: false)
        func notified(at now: Double) -> Bool {
            if case let .send(_, _, notify) = verdict(packet, &encapsulator, now: now) { return notify }
            return false
        }
        #expect(notified(at: 101) && notified(at: 102))
        #expect(!notified(at: 103), "two errors, two notices")
        path.noteError(now: 200)
        #expect(!notified(at: 231), "the window closed after 30 s")
    }

    @Test func ourOwnOuterPacketComingBackIsALoop() {
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480)
        let ownOuter = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipip, source: local, destination: peerB)
            .bytes(payload: inner(length: 60, dontFragment: false))
        #expect(verdict(ownOuter, &encapsulator) == .drop(.loop, peer: 0))
        // A protocol-41 packet of ours (IPv6 inside) coming back the same way.
        let ownSixInFour = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipv6, source: local, destination: peerB)
            .bytes(payload: Fixture.bytes("ipv6-icmpv6-echo"))
        #expect(verdict(ownSixInFour, &encapsulator) == .drop(.loop, peer: 0))
        let path = PeerPathState()
        path.setLooping(true)
        var guarded = Encapsulator(config: machineA, tunnelMTU: 1480, paths: [path])
        #expect(verdict(inner(length: 60, dontFragment: false), &guarded) == .drop(.loop, peer: 0))
    }

    @Test func icmpAboutOuterPacketsIsClassifiedLikeIpipErr() {
        func classify(_ name: String, inherit: Bool = true) -> OuterICMP {
            Fixture.bytes(name).withUnsafeBytes { classifyOuterICMP($0, local: local, peer: peerB, ttlInherited: inherit) }
        }
        // scapy's frag-needed from the router quotes an outer packet A → B, protocol 4, MTU 1380.
        let quoted: [UInt8] = [0x45, 0x00, 0x05, 0xC8, 0, 0, 0, 0]   // the first 8 bytes of the inner packet it quotes
        #expect(classify("icmp-frag-needed") == .fragmentationNeeded(
            peer: 0, outerMTU: 1380, quote: OuterPacketQuote(identification: 1, outerLength: 1500,
                                                             innerSample: quoted.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })))
        func build(type: UInt8, code: UInt8, quotedDestination: IPv4Address, quotedProtocol: UInt8 = 4, quotedBytes: Int = 8) -> [UInt8] {
            let quoted = IPv4HeaderFields(protocolNumber: quotedProtocol, source: local, destination: quotedDestination)
                .bytes(payload: [UInt8](repeating: 0, count: quotedBytes))
            let message = quoted.withUnsafeBytes {
                type == ICMPType.timeExceeded ? ICMPBuilder.timeExceeded(original: $0)
                    : ICMPBuilder.destinationUnreachable(code: code, original: $0)
            }
            return IPv4HeaderFields(protocolNumber: 1, source: IPv4Address("198.51.100.1")!, destination: local).bytes(payload: message)
        }
        func classify(_ packet: [UInt8], inherit: Bool = true) -> OuterICMP {
            packet.withUnsafeBytes { classifyOuterICMP($0, local: local, peer: peerB, ttlInherited: inherit) }
        }
        let zeros = OuterPacketQuote(identification: 0, outerLength: 28, innerSample: 0)
        #expect(classify(build(type: 3, code: 1, quotedDestination: peerB)) == .peerError(peer: 0, quote: zeros))
        #expect(classify(build(type: 3, code: 1, quotedDestination: peerB, quotedBytes: 4)) == .unverifiable(peer: 0),
                "RFC 792's 8 bytes after the header are what tells our packets apart")
        #expect(classify(build(type: 3, code: 5, quotedDestination: peerB, quotedBytes: 4)) == .ignore, "ignored whatever it quotes")
        #expect(classify(build(type: 3, code: 5, quotedDestination: peerB)) == .ignore)
        #expect(classify(build(type: 11, code: 0, quotedDestination: peerB)) == .ignore, "TTL inherited: not ours to relay")
        #expect(classify(build(type: 11, code: 0, quotedDestination: peerB), inherit: false) == .peerError(peer: 0, quote: zeros))
        #expect(classify(build(type: 3, code: 1, quotedDestination: IPv4Address("192.0.2.1")!)) == .ignore, "not about a peer")
        #expect(classify(build(type: 3, code: 1, quotedDestination: peerB, quotedProtocol: 17)) == .ignore, "not a tunnel packet")
    }

    @Test func neverAnErrorAboutAnErrorABroadcastOrALaterFragment() {
        func may(_ packet: [UInt8]) -> Bool { packet.withUnsafeBytes { ICMPErrorRules.mayReport(on: $0) } }
        #expect(may(inner(length: 64, dontFragment: true)))
        #expect(!may(Fixture.bytes("icmp-time-exceeded")), "ICMP error")
        #expect(may(Fixture.bytes("icmp-echo-reply")), "an echo is not an error")
        #expect(!may(Fixture.bytes("ipv4-fragment")), "non-first fragment")
        let broadcast = IPv4HeaderFields(protocolNumber: 17, source: local, destination: .broadcast).bytes(payload: [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(!may(broadcast))
        let multicast = IPv4HeaderFields(protocolNumber: 17, source: local, destination: IPv4Address("224.0.0.1")!).bytes(payload: [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(!may(multicast))
        let fromNobody = IPv4HeaderFields(protocolNumber: 17, source: .any, destination: local).bytes(payload: [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(!may(fromNobody))
    }

    /// The error goes to the original's source and quotes as much of it as fits in 576 bytes (RFC 1812
    /// §4.3.2.3, as Linux's icmp_send does): 548 bytes after its own 20 + 8.
    @Test func errorPacketsGoToTheOriginalSourceQuotingAsMuchAsFitsIn576Bytes() throws {
        let original = inner(length: 1400, dontFragment: true)
        let error = original.withUnsafeBytes {
            ICMPErrorRules.packet(type: 3, code: 4, nextHopMTU: 1380, about: $0)
        }
        try error.withUnsafeBytes { bytes in
            let ip = try IPv4PacketView(validating: bytes, exactLength: true)
            #expect(ip.destination == IPv4Address("203.0.113.87") && ip.source == .any)
            let icmp = try ICMPMessageView(validating: ip.payload)
            #expect(icmp.type == 3 && icmp.code == 4 && icmp.nextHopMTU == 1380)
            #expect(Array(icmp.body) == Array(original[0..<548]))
            #expect(bytes.count == 576)
        }
    }

    @Test func rateLimiterAllowsABurstPerDestinationThenTheRate() {
        var limiter = ICMPRateLimiter<IPv4Address>()
        let a = IPv4Address("192.0.2.10")!, b = IPv4Address("192.0.2.11")!
        let allowed = (0..<20).filter { _ in limiter.allow(to: a, now: 5) }.count
        #expect(allowed == 10)
        let otherDestination = limiter.allow(to: b, now: 5)
        let tooSoon = limiter.allow(to: a, now: 5.05)
        let later = limiter.allow(to: a, now: 5.2)
        #expect(otherDestination, "per destination")
        #expect(!tooSoon)
        #expect(later)
    }

    /// One sender spoofing thousands of sources exhausts the global budget of time-exceeded and
    /// host-unreachable errors; "fragmentation needed" (ICMPv6: "packet too big") has budgets of its own
    /// (Linux never limits it globally), so path-MTU discovery keeps working for everyone. Both families.
    func aFloodOfOtherErrorsDoesNotStarvePathMTU<Address: Hashable & Sendable>(_ address: (UInt32) -> Address) {
        var limiter = ICMPRateLimiter<Address>()
        var allowed = 0
        for index in 0..<5000 where limiter.allow(to: address(UInt32(index) + 1), kind: .other, now: 9) {
            allowed += 1
        }
        #expect(allowed == 1000, "the global cap on other errors")
        let pathMTU = (0..<20).filter { _ in limiter.allow(to: address(0), kind: .pathMTU, now: 9) }.count
        #expect(pathMTU == 10, "its own per-destination burst, untouched by the flood")
    }

    @Test func aFloodOfOtherErrorsDoesNotStarveFragmentationNeeded() {
        aFloodOfOtherErrorsDoesNotStarvePathMTU { IPv4Address(UInt32(0xC612_0000) + $0) }
    }

    @Test func aFloodOfOtherErrorsDoesNotStarvePacketTooBig() {
        aFloodOfOtherErrorsDoesNotStarvePathMTU { IPv6Address(high: 0x2001_0DB8_0002_0000, low: UInt64($0)) }
    }

    /// What a router's error must quote: one of the IDs this peer's own counter gave out in the last
    /// few seconds — exactly those, across the wrap at 65,536, and no others — with the length and the
    /// inner packet's first 8 bytes that went with it.
    @Test func onlyPacketsSentToThePeerLatelyAreRecognized() {
        let path = PeerPathState(firstIdentification: 65_530), other = PeerPathState(firstIdentification: 200)
        let inner = MachineA.inner(length: 64)
        func quote(_ identification: UInt16, length: Int = 84, inner: [UInt8] = inner) -> OuterPacketQuote {
            inner.withUnsafeBytes { OuterPacketQuote(identification: identification, outerLength: UInt16(length),
                                                     innerSample: $0.loadUnaligned(as: UInt64.self)) }
        }
        let sent = (0..<10).map { step in
            inner.withUnsafeBytes { path.takeIdentification(now: 100 + Double(step) * 0.1, outerLength: 84, inner: $0) }
        }
        #expect(sent.first == 65_530 && sent.contains(1) && !sent.contains(0), "wraps past 0: \(sent)")
        _ = inner.withUnsafeBytes { other.takeIdentification(now: 100, outerLength: 84, inner: $0) }
        #expect(sent.allSatisfy { path.sentRecently(quote($0), now: 101) })
        #expect(!path.sentRecently(quote(200), now: 101), "another peer's ID")
        #expect(!path.sentRecently(quote(65_529), now: 101) && !path.sentRecently(quote(6), now: 101))
        #expect(!path.sentRecently(quote(65_530), now: 105), "too long ago")
        #expect(!path.sentRecently(quote(65_530, length: 1500), now: 101), "another length")
        var otherInnerID = inner
        otherInnerID[5] ^= 1
        #expect(!path.sentRecently(quote(65_530, inner: otherInnerID), now: 101), "another inner packet")
    }

    /// A forged quote's header length is read from its own IHL: one that claims more header than was
    /// quoted (options), or less than 20 bytes, gives no quote to match.
    @Test func aQuoteMustHoldItsWholeHeaderAnd8BytesMore() {
        var quoted = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipip, source: local, destination: peerB)
            .bytes(payload: [UInt8](repeating: 0x45, count: 8))
        #expect(quoted.withUnsafeBytes { OuterPacketQuote(quoted: $0) }?.innerSample == 0x4545_4545_4545_4545)
        quoted[0] = 0x4F   // 60 bytes of header claimed, 28 quoted
        #expect(quoted.withUnsafeBytes { OuterPacketQuote(quoted: $0) } == nil)
        quoted[0] = 0x46   // 24 bytes of header: 4 left after it
        #expect(quoted.withUnsafeBytes { OuterPacketQuote(quoted: $0) } == nil)
        quoted[0] = 0x44   // shorter than any IPv4 header
        #expect(quoted.withUnsafeBytes { OuterPacketQuote(quoted: $0) } == nil)
    }

    /// The record of sent packets is a window, not a history: a report that comes back after 128 more
    /// packets of its size class went to the peer is not believed; small packets do not push out the
    /// large ones that path MTU reports are about.
    @Test func theRecordKeepsTheLast128PacketsOfEachSizeClass() {
        let path = PeerPathState(firstIdentification: 1000)
        let large = MachineA.inner(length: 1480), small = MachineA.inner(length: 60)
        func send(_ inner: [UInt8]) -> OuterPacketQuote {
            inner.withUnsafeBytes {
                let identification = path.takeIdentification(now: 10, outerLength: 20 + inner.count, inner: $0)
                return OuterPacketQuote(identification: identification, outerLength: UInt16(20 + inner.count),
                                        innerSample: $0.loadUnaligned(as: UInt64.self))
            }
        }
        let first = send(large)
        for _ in 0..<1000 { _ = send(small) }
        #expect(path.sentRecently(first, now: 10), "1,000 small packets later, the large one is still on record")
        for _ in 0..<127 { _ = send(large) }
        #expect(path.sentRecently(first, now: 10))
        _ = send(large)
        #expect(!path.sentRecently(first, now: 10), "its slot went to the 128th large packet after it")
    }

    /// 20 reports about a peer at once, then 10 a second: a spray gets that many looks, a router's
    /// reports after it are looked at again.
    @Test func reportsAboutAPeerAreLookedAtWithinABudget() {
        let path = PeerPathState()
        let burst = (0..<1000).filter { _ in path.takeReportBudget(now: 50) }.count
        #expect(burst == 20)
        let halfASecond = (0..<1000).filter { _ in path.takeReportBudget(now: 50.5) }.count
        #expect(halfASecond == 5)
        #expect(!path.takeReportBudget(now: 50.55))
        let later = (0..<1000).filter { _ in path.takeReportBudget(now: 100) }.count
        #expect(later == 20, "full again, never more than the burst")
    }
}
