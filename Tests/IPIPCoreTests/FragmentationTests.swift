import Testing
@testable import IPIPCore

@Suite struct FragmentationTests {
    let source = IPv4Address("203.0.113.86")!, destination = IPv4Address("198.51.100.37")!

    func datagram(payloadLength: Int, id: UInt16 = 7) -> [UInt8] {
        IPv4HeaderFields(identification: id, ttl: 60, protocolNumber: 4, source: source, destination: destination)
            .bytes(payload: (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    }

    func fragments(_ packet: [UInt8], mtu: Int) throws -> [[UInt8]] {
        try packet.withUnsafeBytes { IPv4Fragmenter.fragments(of: try IPv4PacketView(validating: $0), mtu: mtu) }
    }

    func add(_ reassembler: inout Reassembler, _ fragment: [UInt8], now: Double = 0) throws -> Reassembler.Result {
        try fragment.withUnsafeBytes { reassembler.add(try IPv4PacketView(validating: $0), now: now) }
    }

    @Test func fragmentsFitAndReassembleToTheOriginalInAnyOrder() throws {
        let original = datagram(payloadLength: 3000)
        let pieces = try fragments(original, mtu: 1000)
        #expect(pieces.count == 4)
        #expect(pieces.allSatisfy { $0.count <= 1000 })
        for piece in pieces {
            try piece.withUnsafeBytes { _ = try IPv4PacketView(validating: $0, exactLength: true) }
        }
        var reassembler = Reassembler()
        var result = Reassembler.Result.incomplete
        for piece in pieces.reversed() { result = try add(&reassembler, piece) }
        #expect(result == .complete(original, fragments: 4))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    /// scapy's four fragments of one outer packet, in every order that starts with a different piece:
    /// reassembled byte for byte into scapy's whole packet (the header as the first fragment had it, with
    /// flags, offset, length and checksum made whole again).
    @Test(arguments: [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
    func scapyFragmentsReassembleToScapysWholePacket(order: [Int]) throws {
        let pieces = (0..<4).map { Fixture.bytes("ipip-fragment-\($0)") }
        var reassembler = Reassembler()
        var results: [Reassembler.Result] = []
        for index in order { results.append(try add(&reassembler, pieces[index])) }
        #expect(results.dropLast().allSatisfy { $0 == .incomplete })
        #expect(results.last == .complete(Fixture.bytes("ipip-fragmented-whole"), fragments: 4))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    @Test func overlapsDropTheDatagramDuplicatesAreDroppedAlone() throws {
        let pieces = try fragments(datagram(payloadLength: 2000), mtu: 820)
        var reassembler = Reassembler()
        #expect(try add(&reassembler, pieces[0]) == .incomplete)
        #expect(try add(&reassembler, pieces[0]) == .duplicate, "exact duplicate")
        // A forged fragment overlapping the first one's tail.
        var overlapping = pieces[1]
        overlapping.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(IPv4PacketView.flagMoreFragments | UInt16(792 / 8 - 1), at: 6)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        #expect(try add(&reassembler, overlapping) == .dropped(.fragmentOverlap, fragments: 2))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    @Test func incompleteDatagramsExpireAndMemoryIsCapped() throws {
        var reassembler = Reassembler()
        reassembler.limits.memory = 3500
        let first = try fragments(datagram(payloadLength: 2000, id: 1), mtu: 1020)
        #expect(try add(&reassembler, first[0], now: 0) == .incomplete)   // 256 + 64 + 20 + 1000 held
        let second = try fragments(datagram(payloadLength: 4000, id: 2), mtu: 1500)
        #expect(try add(&reassembler, second[0], now: 0) == .incomplete)  // 256 + 64 + 20 + 1480 more
        #expect(try add(&reassembler, second[1], now: 0) == .dropped(.fragmentMemory, fragments: 2))
        #expect(reassembler.expire(now: 29) == 0)
        #expect(reassembler.expire(now: 31) == 1)
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    /// A forged fragment of an outer packet from `source`: `optionsLength` bytes of IP options (NOPs),
    /// `payloadLength` bytes at `offset`.
    func forged(id: UInt16, offset: Int, payloadLength: Int, more: Bool, optionsLength: Int = 0,
                source: IPv4Address? = nil) -> [UInt8] {
        var packet = IPv4HeaderFields(identification: id, moreFragments: more, fragmentOffset: offset, ttl: 60, protocolNumber: 4,
                                      source: source ?? self.source, destination: destination).bytes(payload: [])
        packet += [UInt8](repeating: 1, count: optionsLength) + [UInt8](repeating: 0x66, count: payloadLength)
        packet.withUnsafeMutableBytes { bytes in
            bytes[0] = 0x40 | UInt8((20 + optionsLength) / 4)
            bytes.setUInt16(UInt16(bytes.count), at: 2)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        return packet
    }

    /// The remote crash of issue 14: a first fragment with 40 bytes of options and pieces reaching 65,515
    /// make a datagram of 65,575 bytes, which no IPv4 length field can hold. Each fragment is fine by its
    /// own header; the datagram is dropped as malformed, whichever comes first.
    @Test(arguments: [false, true])
    func aFirstFragmentWithOptionsCannotMakeTheDatagramLongerThan65535(lastFirst: Bool) throws {
        var pieces = [forged(id: 46, offset: 0, payloadLength: 1480, more: true, optionsLength: 40)]
        for index in 1..<44 { pieces.append(forged(id: 46, offset: index * 1480, payloadLength: 1480, more: true)) }
        pieces.append(forged(id: 46, offset: 44 * 1480, payloadLength: 395, more: false))   // ends at 65,515
        if lastFirst { pieces.reverse() }
        var reassembler = Reassembler()
        var results: [Reassembler.Result] = []
        for piece in pieces { results.append(try add(&reassembler, piece)) }
        #expect(!results.contains { if case .complete = $0 { true } else { false } })
        #expect(results.contains { $0 == .dropped(.malformedOuter, fragments: lastFirst ? 45 : 45) }, "\(results.suffix(2))")
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    /// Thousands of tiny fragments of datagrams that never complete: no datagram ever holds more than
    /// `fragmentsPerDatagram` pieces, so each fragment costs a search among at most that many (the
    /// FragmentSmack class; the micro-benchmark measures the cost per fragment).
    @Test func tinyFragmentsAreCappedPerDatagram() throws {
        var reassembler = Reassembler()
        var dropped = 0
        for index in 0..<10_000 {
            // Every other 8-byte slot, out of order, for one ID until it is dropped, then the next.
            let slot = (index * 7919) % 8000 * 2
            let result = try add(&reassembler, forged(id: UInt16(dropped), offset: slot * 8, payloadLength: 8, more: true))
            if case .dropped(.fragmentLimit, let fragments) = result {
                #expect(fragments == 129)
                dropped += 1
            }
            #expect(reassembler.fragmentsHeld <= 128)
        }
        #expect(dropped == 10_000 / 129)
    }

    /// 65 fragments at offset 65,000 once reserved 65 × 64 KiB of zeros and filled the 4 MiB for 30 s;
    /// now each costs what it holds, and a real datagram still gets through.
    @Test func memoryIsChargedForWhatIsHeld() throws {
        var reassembler = Reassembler()
        for id in 0..<65 {
            #expect(try add(&reassembler, forged(id: UInt16(1000 + id), offset: 65_000, payloadLength: 8, more: true)) == .incomplete)
        }
        #expect(reassembler.memoryInUse == 65 * (Reassembler.datagramOverhead + Reassembler.fragmentOverhead + 8))
        let original = datagram(payloadLength: 3000)
        var result = Reassembler.Result.incomplete
        for piece in try fragments(original, mtu: 1000) { result = try add(&reassembler, piece) }
        #expect(result == .complete(original, fragments: 4))
    }

    /// One forged peer fills its share of the reassembly memory; another peer's datagrams still complete.
    @Test func onePeerCannotTakeTheMemoryOfTheOthers() throws {
        var reassembler = Reassembler()
        let attacker = IPv4Address("203.0.113.99")!
        var refused = 0
        for id in 0..<2000 {
            let result = try add(&reassembler, forged(id: UInt16(id), offset: 0, payloadLength: 1480, more: true, source: attacker))
            if case .dropped(.fragmentMemory, _) = result { refused += 1 }
        }
        #expect(refused > 0)
        #expect(reassembler.memoryInUse(bySource: attacker) <= reassembler.limits.memoryPerSource)
        let original = datagram(payloadLength: 3000)
        var result = Reassembler.Result.incomplete
        for piece in try fragments(original, mtu: 1000) { result = try add(&reassembler, piece) }
        #expect(result == .complete(original, fragments: 4))
    }

    @Test func expiryTakesTheOldestFirstAndForgetsWhatCompleted() throws {
        var reassembler = Reassembler()
        for id in 0..<3000 {
            // Datagrams that start and complete at once leave nothing for expiry to find.
            for piece in try fragments(datagram(payloadLength: 100, id: UInt16(id)), mtu: 60) {
                _ = try add(&reassembler, piece, now: Double(id) / 100)
            }
        }
        #expect(try add(&reassembler, forged(id: 9999, offset: 8, payloadLength: 8, more: true), now: 30) == .incomplete)
        #expect(reassembler.expire(now: 45) == 0 && reassembler.pendingCount == 1)
        #expect(reassembler.expire(now: 60) == 1 && reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    @Test func copiedOptionsRepeatOthersStayInTheFirstFragment() {
        // Options: NOP, a copied option (type 0x94 router alert, length 4), end of list.
        var header = IPv4HeaderFields(protocolNumber: 17, source: source, destination: destination).bytes(payload: [])
        header += [0x01, 0x94, 0x04, 0x00, 0x00, 0x07, 0x04, 0x00]   // NOP, RA(4), record-route stub (not copied)
        header[0] = 0x47
        let later = IPv4Fragmenter.headerForLaterFragments(header)
        #expect(later.count == 24 && Array(later[20..<24]) == [0x94, 0x04, 0x00, 0x00] && later[0] == 0x46)
    }
}
