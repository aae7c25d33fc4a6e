import Testing
@testable import IPIPCore

/// Checksum completion and TCP segmentation for packets the kernel hands to a TUN device with
/// offloads on, against packets and segments made by scapy.
@Suite struct OffloadTests {
    @Test func virtioHeaderFieldsAreLittleEndian() {
        // flags NEEDS_CSUM, gso TCPV4, hdr_len 66, gso_size 1448, csum_start 20, csum_offset 16
        let bytes: [UInt8] = [1, 1, 66, 0, 0xA8, 0x05, 20, 0, 16, 0]
        let header = bytes.withUnsafeBytes { VirtioNetHeader($0) }
        #expect(header == VirtioNetHeader(checksum: (20, 16), segmentation: .tcpIPv4(segmentSize: 1448)))
        let plain = [UInt8](repeating: 0, count: 10).withUnsafeBytes { VirtioNetHeader($0) }
        #expect(plain == VirtioNetHeader(checksum: nil, segmentation: .none))
        let udp: [UInt8] = [0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(udp.withUnsafeBytes { VirtioNetHeader($0) }.segmentation == .unsupported(3))
    }

    @Test func aPartialUDPChecksumIsCompleted() {
        var packet = Fixture.bytes("udp-checksum-partial")
        #expect(packet != Fixture.bytes("udp-checksum-complete"))
        #expect(packet.withUnsafeMutableBytes { ChecksumOffload.complete($0, start: 20, offset: 6) })
        #expect(packet == Fixture.bytes("udp-checksum-complete"))
    }

    @Test func checksumPositionsOutsideThePacketAreRefused() {
        var packet = Fixture.bytes("udp-checksum-partial")
        let original = packet, count = packet.count
        #expect(!packet.withUnsafeMutableBytes { ChecksumOffload.complete($0, start: 20, offset: count - 21) })
        #expect(!packet.withUnsafeMutableBytes { ChecksumOffload.complete($0, start: count, offset: 0) })
        #expect(packet == original)
    }

    @Test func aTSOPacketIsCutLikeTheKernelWould() {
        let superPacket = Fixture.bytes("tcp-super-packet")
        var segments: [[UInt8]] = []
        superPacket.withUnsafeBytes { bytes in
            guard let segmenter = GSOSegmenter(superPacket: bytes, segmentSize: 1200) else { return }
            #expect(segmenter.segmentCount == 3)
            var buffer = [UInt8](repeating: 0xEE, count: 2000)
            for index in 0..<segmenter.segmentCount {
                let length = buffer.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                segments.append(Array(buffer[0..<length]))
            }
        }
        #expect(segments == (0..<3).map { Fixture.bytes("tcp-segment-\($0)") })
    }

    /// TSO6: scapy's IPv6 super-packet cut at MSS 1200 is scapy's three segments, byte for byte (payload
    /// lengths, sequence numbers, FIN and PSH on the last, checksums over the IPv6 pseudo-header).
    @Test func aTSO6PacketIsCutLikeTheKernelWould() throws {
        let superPacket = Fixture.bytes("tcp6-super-packet")
        let segments = try superPacket.withUnsafeBytes { bytes in
            let segmenter = try #require(GSOSegmenter(superPacket: bytes, segmentSize: 1200))
            #expect(segmenter.segmentCount == 3)
            var buffer = [UInt8](repeating: 0xEE, count: 2000)
            return (0..<segmenter.segmentCount).map { index in
                let length = buffer.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                return Array(buffer[0..<length])
            }
        }
        #expect(segments == (0..<3).map { Fixture.bytes("tcp6-segment-\($0)") })
    }

    /// What the encapsulation path does with a TSO6 read: three outer packets, each one of scapy's
    /// segments behind protocol 41; a TCPV6 header on an IPv4 packet (or the reverse) is dropped.
    @Test func theEncapsulationPathCutsATSO6ReadAndRefusesAMismatchedKind() throws {
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let path = EncapsulationPath(config: MachineA.config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()])
        func read(_ packet: [UInt8], _ header: VirtioNetHeader) -> [[UInt8]] {
            let sent = SentPackets()
            let slot = sent.batch.nextSlot
            header.write(to: UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset..<PacketSlot.innerOffset]))
            packet.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset...]).copyMemory(from: $0) }
            path.process(readLength: VirtioNetHeader.size + packet.count, in: sent.batch, now: 0)
            return sent.flush().map(\.bytes)
        }
        let outer = read(Fixture.bytes("tcp6-super-packet"), VirtioNetHeader(checksum: (40, 16), segmentation: .tcpIPv6(segmentSize: 1200)))
        #expect(outer.count == 3 && outer.allSatisfy { $0[9] == IPProtocolNumber.ipv6 })
        #expect(outer.map { Array($0[20...]) } == (0..<3).map { Fixture.bytes("tcp6-segment-\($0)") })
        #expect(counters.tcpPacketsSegmented.value == 1)
        #expect(read(Fixture.bytes("tcp-super-packet"), VirtioNetHeader(checksum: (20, 16), segmentation: .tcpIPv6(segmentSize: 1200))).isEmpty)
        #expect(read(Fixture.bytes("tcp6-super-packet"), VirtioNetHeader(checksum: (40, 16), segmentation: .tcpIPv4(segmentSize: 1200))).isEmpty)
        #expect(counters.drops.value(.malformedInner) == 2)
    }

    @Test func aPacketWithinOneSegmentComesOutWithItsChecksumsRight() {
        let segment = Fixture.bytes("tcp-segment-2")
        var damaged = segment
        damaged[10] ^= 0xFF   // IP header checksum
        damaged[36] ^= 0xFF   // TCP checksum
        var out = [UInt8](repeating: 0, count: segment.count)
        damaged.withUnsafeBytes { bytes in
            let segmenter = GSOSegmenter(superPacket: bytes, segmentSize: 1448)!
            #expect(segmenter.segmentCount == 1)
            #expect(out.withUnsafeMutableBytes { segmenter.write(segment: 0, to: $0.baseAddress!) } == segment.count)
        }
        #expect(out == segment)
    }

    @Test func notTCPNorUDPOrTooShortIsRefused() {
        Fixture.bytes("ipv4-icmp-echo").withUnsafeBytes { #expect(GSOSegmenter(superPacket: $0, segmentSize: 1200) == nil) }
        Fixture.bytes("tcp-super-packet").withUnsafeBytes { bytes in
            #expect(GSOSegmenter(superPacket: UnsafeRawBufferPointer(rebasing: bytes[0..<30]), segmentSize: 1200) == nil)
            #expect(GSOSegmenter(superPacket: bytes, segmentSize: 0) == nil)
        }
    }
}
