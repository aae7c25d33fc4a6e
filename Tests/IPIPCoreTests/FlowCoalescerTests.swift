import Testing
@testable import IPIPCore

/// Kernel delivery joins a flow's consecutive TCP segments into one super-packet for the TUN device;
/// what the kernel will cut it into must be exactly what arrived.
@Suite struct FlowCoalescerTests {
    let counters = TunnelCounters(peerNames: ["machine-b"])

    func path() -> DecapsulationPath {
        var config = MachineA.config
        config.tunnel.delivery = .kernel
        return DecapsulationPath(config: config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()],
                                 localNetworks: LocalNetworks(addresses: []))
    }

    /// `count` segments of one flow from the ghost address to host C, `segmentSize` payload bytes each
    /// (the last `lastSize`), cut by `GSOSegmenter` so that their checksums are right; with timestamps.
    static func segments(count: Int, segmentSize: Int = 1400, lastSize: Int? = nil, sequence: UInt32 = 0xFFFF_F000,
                         sourcePort: UInt16 = 40000, psh: Bool = true, ipv6: Bool = false) -> [[UInt8]] {
        let payloadLength = segmentSize * (count - 1) + (lastSize ?? segmentSize)
        var tcp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0x13, 0x88]
        tcp += withUnsafeBytes(of: sequence.bigEndian, Array.init) + [0, 0, 0x30, 0x39]
        tcp += [0x80, psh ? 0x18 : 0x10, 0x01, 0xF5, 0, 0, 0, 0]   // data offset 8 words; ACK (PSH); window
        tcp += [1, 1, 8, 10, 0, 1, 0xE2, 0x40, 0, 0, 0x30, 0x39]   // NOP NOP timestamps
        let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let superPacket = ipv6 ? Self.ipv6Packet(tcp + payload)
            : IPv4HeaderFields(identification: 0x1000, dontFragment: true, protocolNumber: IPProtocolNumber.tcp,
                               source: MachineA.ghost, destination: MachineA.hostC).bytes(payload: tcp + payload)
        return cut(superPacket, segmentSize: segmentSize)
    }

    /// `whole` (TCP or UDP, IPv4 or IPv6) cut by `GSOSegmenter` into packets of `segmentSize` payload bytes,
    /// each with its own lengths, identification or sequence, and checksums.
    static func cut(_ whole: [UInt8], segmentSize: Int) -> [[UInt8]] {
        whole.withUnsafeBytes { bytes in
            let segmenter = GSOSegmenter(superPacket: bytes, segmentSize: segmentSize)!
            var buffer = [UInt8](repeating: 0, count: 65_536)
            return (0..<segmenter.segmentCount).map { index in
                let length = buffer.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                return Array(buffer[0..<length])
            }
        }
    }

    /// TCP over IPv6 from host C's address on B's LAN to A's tunnel address (ECT(0), a flow label).
    static func ipv6Packet(_ tcp: [UInt8]) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: 40 + tcp.count)
        packet.withUnsafeMutableBytes { bytes in
            IPv6HeaderFields(payloadLength: tcp.count, nextHeader: IPProtocolNumber.tcp, hopLimit: 63,
                             source: IPv6Address("2001:db8:b::20")!, destination: IPv6Address("2001:db8:b::87")!).write(into: bytes)
            bytes.setUInt32(0x6020_1234, at: 0)   // traffic class ECT(0), flow label 0x01234
            UnsafeMutableRawBufferPointer(rebasing: bytes[40...]).copyMemory(from: UnsafeRawBufferPointer(start: tcp, count: tcp.count))
        }
        return packet
    }

    func capture(_ path: DecapsulationPath, _ inner: [UInt8], _ sent: SentPackets) {
        ethernetFrame(MachineA.outerFromB(inner)).withUnsafeBytes { path.process(frame: $0, wireLength: $0.count, in: sent.batch, now: 0) }
    }

    /// What the kernel makes of a packet written to the TUN device: the segments it cuts a GSO
    /// super-packet into, or the packet itself.
    static func segmentsTheKernelSees(_ written: [UInt8]) throws -> [[UInt8]] {
        let header = written.withUnsafeBytes { VirtioNetHeader($0) }
        let packet = Array(written[VirtioNetHeader.size...])
        let ip: Int, checksumOffset: Int, transportHeaderLength: Int
        switch header.segmentation {
        case .tcpIPv4: (ip, checksumOffset, transportHeaderLength) = (20, 16, 32)
        case .tcpIPv6: (ip, checksumOffset, transportHeaderLength) = (40, 16, 32)
        case .udp: (ip, checksumOffset, transportHeaderLength) = (packet[0] >> 4 == 6 ? 40 : 20, 6, 8)
        default: return [packet]
        }
        let segmentSize = try #require(header.segmentation.segmentSize)
        #expect(packet[0] >> 4 == (ip == 40 ? 6 : 4))
        #expect(header.checksum?.start == ip && header.checksum?.offset == checksumOffset && header.headersLength == ip + transportHeaderLength)
        return try packet.withUnsafeBytes { bytes in
            let segmenter = try #require(GSOSegmenter(superPacket: bytes, segmentSize: segmentSize))
            var buffer = [UInt8](repeating: 0, count: 65_536)
            return (0..<segmenter.segmentCount).map { index in
                let length = buffer.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                return Array(buffer[0..<length])
            }
        }
    }

    static func withChecksumsRight(_ segment: [UInt8]) -> [UInt8] {
        var fixed = segment
        segment.withUnsafeBytes { bytes in
            _ = fixed.withUnsafeMutableBytes { GSOSegmenter(superPacket: bytes, segmentSize: 65_535)!.write(segment: 0, to: $0.baseAddress!) }
        }
        return fixed
    }

    /// `packet` changed by `change`, its lengths and checksums made right again.
    static func changed(_ packet: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var copy = packet
        change(&copy)
        return withChecksumsRight(copy)
    }

    @Test func aBurstOfOneFlowBecomesOneSuperPacketThatCutsBackIntoIt() throws {
        let segments = Self.segments(count: 20, lastSize: 700)
        let sent = SentPackets(), path = path()
        for segment in segments { capture(path, segment, sent) }
        let written = sent.flush()
        try #require(written.count == 1)
        #expect(written[0].kind == .superPacket(peer: 0, innerLength: segments.map(\.count).reduce(0, +), segments: 20, frames: 20))
        #expect(try Self.segmentsTheKernelSees(written[0].bytes) == segments)
    }

    @Test func aSuperPacketStopsShortOf65000Bytes() throws {
        let segments = Self.segments(count: 60)
        let sent = SentPackets(), path = path()
        for segment in segments { capture(path, segment, sent) }
        let written = sent.flush()
        #expect(written.count == 2 && written.allSatisfy { $0.bytes.count <= FlowCoalescer.largest + VirtioNetHeader.size })
        #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == segments)
    }

    @Test func segmentsThatGROWouldNotJoinGoOnTheirOwn() throws {
        let segments = Self.segments(count: 4, psh: false)
        var corrupt = segments[1]
        corrupt[100] ^= 0x01                          // TCP checksum no longer verifies
        var gap = segments[3]
        gap[27] &+= 1                                 // sequence number one past where the last one ended
        gap = Self.withChecksumsRight(gap)
        var syn = Self.segments(count: 1)[0]
        syn[33] |= 0x02
        syn = Self.withChecksumsRight(syn)
        let otherFlow = Self.segments(count: 1, sourcePort: 40001)[0]
        let sent = SentPackets(), path = path()
        for inner in [segments[0], corrupt, segments[2], gap, syn, otherFlow] { capture(path, inner, sent) }
        let written = sent.flush()
        #expect(written.count == 6)
        #expect(written[0].bytes == [UInt8](repeating: 0, count: 10) + segments[0])
        #expect(written[1].bytes == [UInt8](repeating: 0, count: 10) + corrupt)   // the kernel drops it
        #expect(written[2].kind == .decapsulated(peer: 0, innerLength: segments[2].count, viaTUN: true))
        #expect(written.map(\.kind).allSatisfy { if case .superPacket = $0 { false } else { true } })
        #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == [segments[0], corrupt, segments[2], gap, syn, otherFlow])
    }

    /// A short segment without PSH ends the super-packet as well: one joined after it would be cut
    /// elsewhere than it arrived (1400, 100, 1400 would come out as 1400, 1400, 100).
    @Test func aShortSegmentWithoutPSHEndsTheSuperPacket() throws {
        let first = Self.segments(count: 2, lastSize: 100, psh: false)
        let next = Self.segments(count: 1, sequence: 0xFFFF_F000 &+ 1500, psh: false)
        let sent = SentPackets(), path = path()
        for segment in first + next { capture(path, segment, sent) }
        let written = sent.flush()
        #expect(written.count == 2)
        #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == first + next)
    }

    @Test func theFirstSegmentsChecksumIsCheckedBeforeItIsReplaced() throws {
        var segments = Self.segments(count: 2, psh: false)
        segments[0][60] ^= 0x80
        let sent = SentPackets(), path = path()
        for segment in segments { capture(path, segment, sent) }
        let written = sent.flush()
        #expect(written.count == 2 && written.map { Array($0.bytes[10...]) } == segments)
    }

    @Test func joiningStopsAtABatchBoundaryAndAtTheShortSegment() throws {
        let sent = SentPackets(), path = path()
        let short = Self.segments(count: 3, lastSize: 100)
        for segment in short { capture(path, segment, sent) }
        let more = Self.segments(count: 1, sequence: 0xFFFF_F000 &+ 2900)   // would continue, but the flow ended
        capture(path, more[0], sent)
        var written = sent.flush()
        #expect(written.count == 2 && written[0].kind == .superPacket(peer: 0, innerLength: short.map(\.count).reduce(0, +), segments: 3, frames: 3))
        // After a flush, a continuing segment starts a new super-packet rather than writing into a sent slot.
        let flow = Self.segments(count: 4, psh: false)
        capture(path, flow[0], sent)
        capture(path, flow[1], sent)
        written = sent.flush()
        capture(path, flow[2], sent)
        capture(path, flow[3], sent)
        written += sent.flush()
        #expect(written.map(\.kind) == [.superPacket(peer: 0, innerLength: flow[0].count * 2, segments: 2, frames: 2),
                                        .superPacket(peer: 0, innerLength: flow[0].count * 2, segments: 2, frames: 2)])
        #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == flow)
    }

    /// What the uplink's GRO makes of consecutive `segments` (no IP options): the first one's headers with
    /// lengths for the whole and every segment's PSH and FIN (tcp_gro_receive), the payloads one after
    /// the other, the TCP checksum left partial.
    static func merged(_ segments: [[UInt8]], ipv6: Bool = false) -> (packet: [UInt8], offload: VirtioNetHeader) {
        let ip = ipv6 ? 40 : 20
        let headers = ip + Int(segments[0][ip + 12] >> 4) * 4
        var packet = Array(segments[0][0..<headers]) + segments.flatMap { $0[headers...] }
        packet[ip + 13] |= segments.reduce(0) { $0 | $1[ip + 13] & 0x09 }
        packet.withUnsafeMutableBytes { bytes in
            let transportLength = bytes.count - ip
            let pseudoHeaderSum: UInt32
            if ipv6 {
                bytes.setUInt16(UInt16(transportLength), at: 4)
                pseudoHeaderSum = InternetChecksum.pseudoHeaderSum(ofIPv6: UnsafeRawBufferPointer(bytes), nextHeader: IPProtocolNumber.tcp,
                                                                   transportLength: transportLength)
            } else {
                bytes.setUInt16(UInt16(bytes.count), at: 2)
                IPv4HeaderEditor.recomputeChecksum(bytes)
                pseudoHeaderSum = InternetChecksum.pseudoHeaderSum(ofIPv4: UnsafeRawBufferPointer(bytes), protocol: IPProtocolNumber.tcp,
                                                                   transportLength: transportLength)
            }
            bytes.setUInt16(UInt16(truncatingIfNeeded: pseudoHeaderSum), at: ip + 16)
        }
        let segmentSize = segments[0].count - headers
        return (packet, VirtioNetHeader(checksum: (14 + 20 + ip, 16),
                                        segmentation: ipv6 ? .tcpIPv6(segmentSize: segmentSize) : .tcpIPv4(segmentSize: segmentSize)))
    }

    /// A run the uplink's GRO merged (TCPV4 or TCPV6 in the capture's header), as the capture hands it over.
    func capture(_ path: DecapsulationPath, merged segments: [[UInt8]], ipv6: Bool = false, _ sent: SentPackets) {
        let (packet, offload) = Self.merged(segments, ipv6: ipv6)
        ethernetFrame(MachineA.outerFromB(packet)).withUnsafeBytes {
            path.process(frame: $0, wireLength: $0.count, offload: offload, in: sent.batch, now: 0)
        }
    }

    /// With GRO on the uplink, the capture's burst holds runs the kernel merged (of up to 64 KiB, but often
    /// of a few segments): ipipd joins them, and single segments among them, into one write of up to 64 KiB.
    @Test func runsTheUplinkMergedJoinWithSegmentsIntoOneSuperPacket() throws {
        let segments = Self.segments(count: 20, lastSize: 900)
        let sent = SentPackets(), path = path()
        capture(path, merged: Array(segments[0..<5]), sent)
        capture(path, merged: Array(segments[5..<12]), sent)
        capture(path, segments[12], sent)
        capture(path, merged: Array(segments[13..<20]), sent)
        let written = sent.flush()
        try #require(written.count == 1)
        #expect(written[0].kind == .superPacket(peer: 0, innerLength: segments.map(\.count).reduce(0, +), segments: 20, frames: 4))
        #expect(try Self.segmentsTheKernelSees(written[0].bytes) == segments)
        #expect(counters.uplinkMergedFrames.value == 3 && counters.uplinkMergedSegments.value == 19)
    }

    /// A run of another segment size does not continue the super-packet (the kernel would cut it at the
    /// first one's size); a single segment after a run that ended short does not either.
    @Test func runsOfAnotherSizeOrAfterTheEndGoOnTheirOwn() throws {
        let first = Self.segments(count: 4, segmentSize: 1400, psh: false)
        let other = Self.segments(count: 4, segmentSize: 1000, sequence: 0xFFFF_F000 &+ 5600, psh: false)
        let sent = SentPackets(), path = path()
        capture(path, merged: first, sent)
        capture(path, merged: other, sent)
        let written = sent.flush()
        #expect(written.map(\.kind) == [.superPacket(peer: 0, innerLength: first.map(\.count).reduce(0, +), segments: 4, frames: 1),
                                        .superPacket(peer: 0, innerLength: other.map(\.count).reduce(0, +), segments: 4, frames: 1)])
        #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == first + other)
    }

    // MARK: IPv6 (issue 24): tcp6_gro_receive's rules, TCPV6 super-packets

    @Test func anIPv6BurstOfOneFlowBecomesOneTCPV6SuperPacketThatCutsBackIntoIt() throws {
        let segments = Self.segments(count: 20, lastSize: 700, ipv6: true)
        let sent = SentPackets(), path = path()
        for segment in segments { capture(path, segment, sent) }
        let written = sent.flush()
        try #require(written.count == 1)
        #expect(written[0].kind == .superPacket(peer: 0, innerLength: segments.map(\.count).reduce(0, +), segments: 20, frames: 20))
        #expect(written[0].bytes.withUnsafeBytes { VirtioNetHeader($0) }.segmentation == .tcpIPv6(segmentSize: 1400))
        #expect(try Self.segmentsTheKernelSees(written[0].bytes) == segments)
    }

    /// What GRO would not join in IPv6: another traffic class, flow label or hop limit, a corrupt
    /// checksum, a gap in the sequence; and an IPv4 segment of the same ports never joins an IPv6 flow.
    @Test func ipv6SegmentsThatGROWouldNotJoinGoOnTheirOwn() throws {
        let segments = Self.segments(count: 2, psh: false, ipv6: true)
        func changed(_ change: (inout [UInt8]) -> Void) -> [UInt8] { Self.changed(segments[1], change) }
        var corrupt = segments[1]
        corrupt[120] ^= 0x01
        let refused: [(String, [UInt8])] = [
            ("traffic class", changed { $0[1] ^= 0x10 }), ("flow label", changed { $0[3] ^= 0x01 }), ("hop limit", changed { $0[7] = 62 }),
            ("source", changed { $0[23] ^= 0x01 }), ("destination", changed { $0[39] ^= 0x01 }),
            ("sequence", changed { $0[47] &+= 1 }), ("checksum", corrupt),
            ("family", Self.segments(count: 2, psh: false)[1]),
        ]
        for (what, second) in refused {
            let sent = SentPackets(), path = self.path()
            capture(path, segments[0], sent)
            capture(path, second, sent)
            let written = sent.flush()
            #expect(written.count == 2, "another \(what) joined")
            #expect(try written.map(\.bytes).flatMap(Self.segmentsTheKernelSees) == [segments[0], second], "\(what)")
        }
        // and unchanged, the two join.
        let sent = SentPackets(), path = self.path()
        for segment in segments { capture(path, segment, sent) }
        #expect(sent.flush().count == 1)
    }

    /// IPv6 runs the uplink's GRO merged (TCPV6 in the capture's header) join with single segments too.
    @Test func ipv6RunsTheUplinkMergedJoinWithSegments() throws {
        let segments = Self.segments(count: 12, lastSize: 900, ipv6: true)
        let sent = SentPackets(), path = path()
        capture(path, merged: Array(segments[0..<5]), ipv6: true, sent)
        capture(path, segments[5], sent)
        capture(path, merged: Array(segments[6..<12]), ipv6: true, sent)
        let written = sent.flush()
        try #require(written.count == 1)
        #expect(written[0].kind == .superPacket(peer: 0, innerLength: segments.map(\.count).reduce(0, +), segments: 12, frames: 3))
        #expect(try Self.segmentsTheKernelSees(written[0].bytes) == segments)
    }
}
