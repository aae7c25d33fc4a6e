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
        #expect(result == .complete(original))
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
        #expect(results.last == .complete(Fixture.bytes("ipip-fragmented-whole")))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    @Test func overlapsDropTheDatagramDuplicatesAreIgnored() throws {
        let pieces = try fragments(datagram(payloadLength: 2000), mtu: 820)
        var reassembler = Reassembler()
        #expect(try add(&reassembler, pieces[0]) == .incomplete)
        #expect(try add(&reassembler, pieces[0]) == .incomplete, "exact duplicate")
        // A forged fragment overlapping the first one's tail.
        var overlapping = pieces[1]
        overlapping.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(IPv4PacketView.flagMoreFragments | UInt16(792 / 8 - 1), at: 6)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        #expect(try add(&reassembler, overlapping) == .dropped(.fragmentOverlap))
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
    }

    @Test func incompleteDatagramsExpireAndMemoryIsCapped() throws {
        var reassembler = Reassembler()
        reassembler.memoryLimit = 3000
        let first = try fragments(datagram(payloadLength: 2000, id: 1), mtu: 1020)
        #expect(try add(&reassembler, first[0], now: 0) == .incomplete)
        let second = try fragments(datagram(payloadLength: 4000, id: 2), mtu: 1500)
        #expect(try add(&reassembler, second[0], now: 0) == .incomplete)
        #expect(try add(&reassembler, second[1], now: 0) == .dropped(.fragmentMemory))
        #expect(reassembler.expire(now: 29) == 0)
        #expect(reassembler.expire(now: 31) == 1)
        #expect(reassembler.pendingCount == 0 && reassembler.memoryInUse == 0)
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
