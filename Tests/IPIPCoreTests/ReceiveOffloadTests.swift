import Testing
@testable import IPIPCore

/// Frames the uplink's GRO merged before the capture took them (a "super-packet": one outer header, one
/// inner header, many segments), with the virtio-net header the kernel puts before them: decapsulated
/// whole for the TUN device (kernel delivery), cut back into the sender's segments (routed delivery), and
/// dropped when the header does not describe the packet. The merged frame is built as GRO leaves it from
/// scapy's segments (fixtures tcp-segment-0…2, cut at 1200 from tcp-super-packet).
@Suite struct ReceiveOffloadTests {
    let counters = TunnelCounters(peerNames: ["machine-b"])

    func path(delivery: GatewayConfig.Delivery) -> DecapsulationPath {
        var config = MachineA.config
        config.tunnel.delivery = delivery
        return DecapsulationPath(config: config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()],
                                 localNetworks: LocalNetworks())
    }

    /// The inner super-packet as GRO leaves it: lengths for the whole, the TCP checksum field holding the
    /// pseudo-header's sum (CHECKSUM_PARTIAL).
    static func mergedTCP() -> [UInt8] {
        var packet = Fixture.bytes("tcp-super-packet")
        packet.withUnsafeMutableBytes { bytes in
            let pseudo = InternetChecksum.pseudoHeaderSum(ofIPv4: UnsafeRawBufferPointer(bytes), protocol: IPProtocolNumber.tcp,
                                                          transportLength: bytes.count - 20)
            bytes.setUInt16(UInt16(truncatingIfNeeded: pseudo), at: 36)
        }
        return packet
    }

    /// What the kernel says of it: NEEDS_CSUM from the inner TCP header (Ethernet 14 + outer 20 + inner 20), TCPV4, 1200.
    static let mergedHeader = VirtioNetHeader(checksum: (54, 16), segmentation: .tcpIPv4(segmentSize: 1200))

    func capture(_ path: DecapsulationPath, _ outer: [UInt8], _ header: VirtioNetHeader, _ sent: SentPackets) {
        ethernetFrame(outer).withUnsafeBytes { path.process(frame: $0, wireLength: $0.count, offload: header, in: sent.batch, now: 0) }
    }

    func accounted() -> Bool {
        let capture = counters.capture
        return capture.frames.value == capture.delivered.value + capture.dropped.value
    }

    @Test func kernelDeliveryWritesTheMergedFrameWholeForTheKernelToCut() throws {
        let sent = SentPackets(), merged = Self.mergedTCP()
        capture(path(delivery: .kernel), MachineA.outerFromB(merged, dontFragment: true), Self.mergedHeader, sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        let segments = (0..<3).map { Fixture.bytes("tcp-segment-\($0)") }
        #expect(packets[0].kind == .superPacket(peer: 0, innerLength: segments.map(\.count).reduce(0, +), segments: 3, frames: 1))
        try packets[0].bytes.withUnsafeBytes { bytes in
            let header = VirtioNetHeader(bytes)
            #expect(header == VirtioNetHeader(checksum: (20, 16), segmentation: .tcpIPv4(segmentSize: 1200)))
            #expect(header.headersLength == 52)
            // What the kernel's GSO makes of it is what the sender sent.
            let inner = UnsafeRawBufferPointer(rebasing: bytes[VirtioNetHeader.size...])
            let segmenter = try #require(GSOSegmenter(superPacket: inner, segmentSize: 1200))
            var buffer = [UInt8](repeating: 0, count: 1400)
            let cut = (0..<segmenter.segmentCount).map { index in
                let length = buffer.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                return Array(buffer[0..<length])
            }
            #expect(cut == segments)
        }
        #expect(counters.uplinkMergedFrames.value == 1 && counters.uplinkMergedSegments.value == 3)
        #expect(counters.capture.frames.value == 1)
    }

    @Test func routedDeliveryCutsTheMergedFrameIntoTheSendersSegments() throws {
        let sent = SentPackets(), merged = Self.mergedTCP()
        capture(path(delivery: .routed), MachineA.outerFromB(merged, dontFragment: true), Self.mergedHeader, sent)
        let packets = sent.flush()
        // Each as the sender sent it, one hop further: TTL 62, the header checksum made anew.
        let expected = (0..<3).map { index -> [UInt8] in
            var segment = Fixture.bytes("tcp-segment-\(index)")
            segment.withUnsafeMutableBytes { IPv4HeaderEditor.decrementTTL($0) }
            return segment
        }
        #expect(packets.map(\.bytes) == expected)
        #expect(packets.map(\.kind) == [.decapsulated(peer: 0, innerLength: expected[0].count, viaTUN: false),
                                        .decapsulatedPiece(peer: 0, innerLength: expected[1].count),
                                        .decapsulatedPiece(peer: 0, innerLength: expected[2].count)])
        #expect(packets.allSatisfy { $0.destination == MachineA.ghost })
    }

    /// As the kernel's forwarding treats a GSO packet whose segments do not fit: one "fragmentation needed"
    /// for the frame, counted once.
    @Test func segmentsTooBigForTheEgressGetOneFragmentationNeeded() throws {
        let sent = SentPackets(), path = path(delivery: .routed)
        // A route longer than the tunneled 203.0.113.0/24 takes the ghost's address out of the tunnel.
        path.egressMTUs = PrefixTable([(IPv4Prefix("203.0.113.80/28")!, 1000)], uniquingPrefixesWith: { $1 })
        capture(path, MachineA.outerFromB(Self.mergedTCP(), dontFragment: true), Self.mergedHeader, sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .icmpError(peer: 0) && packets[0].destination == IPv4Address("203.0.113.20")!)
        #expect(packets[0].bytes[20] == ICMPType.destinationUnreachable && packets[0].bytes[21] == ICMPUnreachableCode.fragmentationNeeded)
        #expect(counters.peers[0].drops.value(.tooBig) == 1 && accounted())
    }

    @Test func anIPv6SuperPacketInProtocol41GoesToTheTUNDeviceWhole() throws {
        let source = IPv6Address("2001:db8:b::20")!, destination = IPv6Address("2001:db8:b::87")!
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var inner = [UInt8](repeating: 0, count: 40 + 20 + payload.count)
        inner.withUnsafeMutableBytes { bytes in
            IPv6HeaderFields(payloadLength: 20 + payload.count, nextHeader: IPProtocolNumber.tcp, hopLimit: 64,
                             source: source, destination: destination).write(into: bytes)
            bytes.setUInt32(40000 << 16 | 5201, at: 40)   // ports
            bytes.setUInt32(1000, at: 44)                  // sequence
            bytes[52] = 5 << 4                             // data offset: 20 bytes
            bytes[53] = 0x10                               // ACK
            bytes.setUInt16(500, at: 54)
            UnsafeMutableRawBufferPointer(rebasing: bytes[60...]).copyMemory(from: UnsafeRawBufferPointer(start: payload, count: payload.count))
        }
        let outer = IPv4HeaderFields(identification: 9, dontFragment: true, ttl: 64, protocolNumber: IPProtocolNumber.ipv6,
                                     source: MachineA.peerB, destination: MachineA.local).bytes(payload: inner)
        let sent = SentPackets()
        capture(path(delivery: .routed), outer, VirtioNetHeader(checksum: (74, 16), segmentation: .tcpIPv6(segmentSize: 1440)), sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(packets[0].kind == .superPacket(peer: 0, innerLength: inner.count + 2 * 60, segments: 3, frames: 1))
        packets[0].bytes.withUnsafeBytes { bytes in
            #expect(VirtioNetHeader(bytes) == VirtioNetHeader(checksum: (40, 16), segmentation: .tcpIPv6(segmentSize: 1440)))
            let packet = UnsafeRawBufferPointer(rebasing: bytes[VirtioNetHeader.size...])
            let pseudo = InternetChecksum.pseudoHeaderSum(ofIPv6: packet, nextHeader: IPProtocolNumber.tcp, transportLength: 20 + payload.count)
            #expect(packet.uint16(at: 56) == UInt16(pseudo) && Array(packet[60...]) == payload)
        }
    }

    /// The checksum a local sender left to the NIC (a frame from a veth) is completed: the packet leaves whole.
    @Test func aPartialChecksumOfASinglePacketIsCompleted() throws {
        let sent = SentPackets()
        let partial = Fixture.bytes("udp-checksum-partial")
        capture(path(delivery: .kernel), MachineA.outerFromB(partial), VirtioNetHeader(checksum: (54, 6), segmentation: .none), sent)
        let packets = sent.flush()
        try #require(packets.count == 1)
        #expect(Array(packets[0].bytes[VirtioNetHeader.size...]) == Fixture.bytes("udp-checksum-complete"))
    }

    /// Headers that do not describe their packet: what a forger next to the uplink (a container on a veth)
    /// could hand the kernel. Each is dropped, counted once, and nothing is delivered.
    @Test(arguments: [
        VirtioNetHeader(checksum: (54, 16), segmentation: .tcpIPv6(segmentSize: 1200)),   // the wrong family
        VirtioNetHeader(checksum: (54, 16), segmentation: .udp(segmentSize: 1200)),       // the wrong transport
        VirtioNetHeader(checksum: (60, 16), segmentation: .tcpIPv4(segmentSize: 1200)),   // not where TCP starts
        VirtioNetHeader(checksum: (54, 6), segmentation: .tcpIPv4(segmentSize: 1200)),    // not TCP's checksum
        VirtioNetHeader(checksum: (54, 16), segmentation: .tcpIPv4(segmentSize: 0)),      // no segment size
        VirtioNetHeader(checksum: nil, segmentation: .unsupported(3)),                    // UFO
        VirtioNetHeader(checksum: (4000, 16), segmentation: .none),                       // beyond the packet
    ])
    func aHeaderThatDoesNotFitItsPacketIsDropped(header: VirtioNetHeader) {
        let sent = SentPackets()
        capture(path(delivery: .kernel), MachineA.outerFromB(Self.mergedTCP(), dontFragment: true), header, sent)
        #expect(sent.flush().isEmpty)
        #expect(counters.peers[0].drops.value(.unsupportedOffload) == 1 && accounted())
    }

    /// A merged frame is checked like one packet: from a stranger, or with a source its peer may not use,
    /// it is dropped once, for that reason.
    @Test func aMergedFrameIsCheckedOnceLikeAnyPacket() {
        let sent = SentPackets(), path = path(delivery: .kernel)
        let stranger = IPv4HeaderFields(dontFragment: true, protocolNumber: IPProtocolNumber.ipip, source: IPv4Address("192.0.2.66")!,
                                        destination: MachineA.local).bytes(payload: Self.mergedTCP())
        capture(path, stranger, Self.mergedHeader, sent)
        var forged = Self.mergedTCP()
        forged.withUnsafeMutableBytes {
            $0.setUInt32(IPv4Address("198.18.0.1")!.value, at: 12)   // outside B's accept-sources
            IPv4HeaderEditor.recomputeChecksum($0)
        }
        capture(path, MachineA.outerFromB(forged, dontFragment: true), Self.mergedHeader, sent)
        #expect(sent.flush().isEmpty)
        #expect(counters.drops.value(.unknownPeer) == 1 && counters.peers[0].drops.value(.sourceNotAllowed) == 1)
        #expect(counters.uplinkMergedFrames.value == 0 && accounted())
    }

    /// GRO merges no fragments: an outer fragment that claims to be merged is nobody's.
    @Test func aFragmentMarkedAsMergedIsDropped() throws {
        let sent = SentPackets()
        let pieces = try MachineA.outerFromB(Self.mergedTCP()).withUnsafeBytes {
            IPv4Fragmenter.fragments(of: try IPv4PacketView(validating: $0), mtu: 1500)
        }
        capture(path(delivery: .kernel), pieces[0], Self.mergedHeader, sent)
        #expect(sent.flush().isEmpty && counters.peers[0].drops.value(.unsupportedOffload) == 1 && accounted())
    }

    @Test func theVirtioHeaderRoundTripsEveryKind() {
        for header in [VirtioNetHeader(checksum: (34, 16), segmentation: .tcpIPv6(segmentSize: 1428), headersLength: 72,
                                       congestionWindowReduced: true),
                       VirtioNetHeader(checksum: (28, 6), segmentation: .udp(segmentSize: 1200), dataValid: true),
                       VirtioNetHeader(checksum: nil, segmentation: .none, dataValid: true)] {
            var bytes = [UInt8](repeating: 0xEE, count: VirtioNetHeader.size)
            bytes.withUnsafeMutableBytes { header.write(to: $0) }
            #expect(bytes.withUnsafeBytes { VirtioNetHeader($0) } == header)
        }
        // GSO_ECN is a flag on the type byte, DATA_VALID one on the flags.
        let parsed = [UInt8]([2, 0x81, 0, 0, 0xA8, 5, 0, 0, 0, 0]).withUnsafeBytes { VirtioNetHeader($0) }
        #expect(parsed.segmentation == .tcpIPv4(segmentSize: 1448) && parsed.congestionWindowReduced && parsed.dataValid && parsed.checksum == nil)
    }

    /// UDP datagrams merged by the uplink's UDP GRO forwarding (rx-udp-gro-forwarding), cut back for the routed delivery.
    @Test func mergedUDPDatagramsAreCutIntoDatagrams() throws {
        let datagrams = (0..<3).map { index in
            IPv4HeaderFields(identification: UInt16(0x100 + index), dontFragment: true, ttl: 63, protocolNumber: IPProtocolNumber.udp,
                             source: IPv4Address("203.0.113.20")!, destination: MachineA.ghost)
                .bytes(payload: [0x0F, 0xA0, 0x13, 0x88, 0x04, 0xB8, 0, 0] + [UInt8](repeating: UInt8(index), count: 1200))
        }.map { datagram -> [UInt8] in
            var datagram = datagram
            datagram.withUnsafeMutableBytes { TransportLayout($0)!.completeChecksum($0) }
            return datagram
        }
        // Merged: the first datagram's headers, the lengths for the whole, the payloads one after the other.
        var merged = Array(datagrams[0][0..<28]) + datagrams.flatMap { $0[28...] }
        merged.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(UInt16(bytes.count), at: 2)
            bytes.setUInt16(UInt16(bytes.count - 20), at: 24)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        let sent = SentPackets()
        capture(path(delivery: .routed), MachineA.outerFromB(merged, dontFragment: true),
                VirtioNetHeader(checksum: (54, 6), segmentation: .udp(segmentSize: 1200)), sent)
        let packets = sent.flush()
        let expected = datagrams.map { datagram -> [UInt8] in
            var datagram = datagram
            datagram.withUnsafeMutableBytes { IPv4HeaderEditor.decrementTTL($0) }
            return datagram
        }
        #expect(packets.map(\.bytes) == expected)
    }
}
