import Testing
@testable import IPIPCore

@Suite struct EncapsulationPathTests {
    let counters = TunnelCounters(peerNames: ["machine-b"])
    let state = PeerPathState(firstIdentification: 100)

    func path(tunnelMTU: Int = 1480) -> EncapsulationPath {
        EncapsulationPath(config: MachineA.config, tunnelMTU: tunnelMTU, counters: counters, paths: [state])
    }

    /// Puts a TUN read (virtio header + packet) into the batch's next slot, as the loop reads it.
    func read(_ packet: [UInt8], virtio: [UInt8] = [UInt8](repeating: 0, count: 10), into batch: PacketBatch) -> Int {
        let slot = batch.nextSlot
        (virtio + packet).withUnsafeBytes {
            UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset...]).copyMemory(from: $0)
        }
        return virtio.count + packet.count
    }

    func process(_ path: EncapsulationPath, _ packet: [UInt8], virtio: [UInt8] = [UInt8](repeating: 0, count: 10),
                 _ sent: SentPackets, now: Double = 0) {
        let length = read(packet, virtio: virtio, into: sent.batch)
        path.process(readLength: length, in: sent.batch, now: now)
    }

    @Test func anInnerPacketIsWrappedForItsPeer() throws {
        let sent = SentPackets(), inner = MachineA.inner(length: 100)
        process(path(), inner, sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .encapsulated(peer: 0, innerLength: 100) && packets[0].destination == MachineA.peerB)
        try packets[0].bytes.withUnsafeBytes { bytes in
            let outer = try IPv4PacketView(validating: bytes, exactLength: true)
            #expect(outer.protocolNumber == 4 && outer.source == MachineA.local && outer.destination == MachineA.peerB)
            #expect(Array(outer.payload) == inner)
        }
    }

    @Test func aTSOSuperPacketLeavesAsSegmentsEachWrapped() throws {
        // scapy's 3000-byte super-packet, cut with MSS 1200 (flags NEEDS_CSUM, type TCPV4, hdr_len 64,
        // gso_size 1200, csum_start 20, csum_offset 16: little-endian, as the kernel writes them).
        let virtio: [UInt8] = [1, 1, 64, 0, 0xB0, 0x04, 20, 0, 16, 0]
        let sent = SentPackets()
        process(path(), Fixture.bytes("tcp-super-packet"), virtio: virtio, sent)
        let packets = sent.flush()
        try #require(packets.count == 3)
        for (index, packet) in packets.enumerated() {
            #expect(Array(packet.bytes[20...]) == Fixture.bytes("tcp-segment-\(index)"), "segment \(index)")
        }
        #expect(counters.tcpPacketsSegmented.value == 1)
    }

    @Test func segmentsBeyondOneBatchAreSentInOrder() throws {
        // 100 segments of 100 bytes: the batch fills once and is sent in the middle of the super-packet.
        var superPacket = Array(Fixture.bytes("tcp-super-packet")[0..<52]) + [UInt8](repeating: 0x5A, count: 100 * 100)
        superPacket.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(UInt16(bytes.count), at: 2)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        let sent = SentPackets()
        process(path(), superPacket, virtio: [1, 1, 52, 0, 100, 0, 20, 0, 16, 0], sent)
        let packets = sent.flush()
        #expect(sent.fullBatches == 1 && packets.count == 100)
        let sequences = packets.map { UInt32(bigEndian: $0.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 40 + 4, as: UInt32.self) }) }
        #expect(sequences == (0..<100).map { 1000 + UInt32($0) * 100 })
    }

    @Test func tooBigWithDFIsAnsweredWithFragmentationNeeded() throws {
        let sent = SentPackets(), inner = MachineA.inner(length: 1400, dontFragment: true)
        process(path(tunnelMTU: 1380), inner, sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .icmpError(peer: 0) && packets[0].destination == MachineA.ghost)
        try packets[0].bytes.withUnsafeBytes { bytes in
            let ip = try IPv4PacketView(validating: bytes, exactLength: true)
            #expect(ip.protocolNumber == IPProtocolNumber.icmp && ip.destination == MachineA.ghost)
            let icmp = try ICMPMessageView(validating: ip.payload)
            #expect(icmp.type == 3 && icmp.code == 4 && icmp.nextHopMTU == 1380)
            #expect(Array(icmp.body.prefix(28)) == Array(inner[0..<28]))
        }
        #expect(counters.peers[0].drops.value(.tooBig) == 1)
    }

    @Test func tooBigWithoutDFIsFragmentedAndEachPieceWrapped() throws {
        let sent = SentPackets(), inner = MachineA.inner(length: 3000)
        process(path(tunnelMTU: 1380), inner, sent)
        let packets = sent.flush()
        #expect(packets.count == 3 && packets.allSatisfy { $0.bytes.count <= 1400 })
        var reassembler = Reassembler()
        var result = Reassembler.Result.incomplete
        for packet in packets.reversed() {
            result = try Array(packet.bytes[20...]).withUnsafeBytes { reassembler.add(try IPv4PacketView(validating: $0), now: 0) }
        }
        #expect(result == .complete(inner, fragments: 3))
        #expect(counters.peers[0].fragmented.value == 1)
    }

    @Test func sendersToAnUnreachablePeerAreToldWhileThePacketsStillGo() throws {
        state.noteError(now: 0)
        let sent = SentPackets()
        process(path(), MachineA.inner(length: 64), sent, now: 1)
        let packets = sent.flush()
        #expect(packets.map(\.kind) == [.encapsulated(peer: 0, innerLength: 64), .icmpError(peer: 0)])
        #expect(packets[1].bytes[20] == 3 && packets[1].bytes[21] == 1, "host unreachable")
    }

    @Test func icmpErrorsAreRateLimitedPerDestination() {
        let sent = SentPackets(), path = path(tunnelMTU: 1380)
        for _ in 0..<30 { process(path, MachineA.inner(length: 1400, dontFragment: true), sent, now: 5) }
        #expect(sent.flush().count == 10)
        #expect(counters.icmpRateLimited.value == 20)
    }

    @Test func unreadableReadsAreDropped() {
        let sent = SentPackets(), path = path()
        process(path, [], virtio: [0, 0, 0], sent)                               // shorter than a virtio header
        process(path, MachineA.inner(length: 64), virtio: [0, 9, 0, 0, 0, 0, 0, 0, 0, 0], sent)   // unknown GSO type
        process(path, MachineA.inner(length: 64), virtio: [1, 0, 0, 0, 0, 0, 200, 0, 0, 0], sent) // checksum beyond it
        #expect(sent.flush().isEmpty)
        #expect(counters.drops.value(.malformedInner) == 3)
    }
}
