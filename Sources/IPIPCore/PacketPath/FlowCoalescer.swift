/// Joins consecutive packets of one flow, decapsulated in one burst, into one super-packet for the TUN
/// device: what the kernel's GRO does for a NIC, and wireguard-go for its TUN writes. The kernel takes it
/// as one packet (IFF_VNET_HDR: TCPV4, TCPV6 or UDP_L4, NEEDS_CSUM) and forwards it whole, cutting it
/// again only where the next hop needs segments — one write and one pass through the receive and
/// forwarding path per super-packet instead of per packet.
///
/// **TCP segments**, arriving one per frame (an uplink without GRO) or already merged by the uplink's GRO
/// into runs, which it joins into longer ones. Only what Linux's tcp4_gro_receive and tcp6_gro_receive
/// would join is joined: IPv4 without options, not fragmented, same addresses, TOS and TTL, DF set (or
/// consecutive IDs); IPv6 with TCP right behind its header, same addresses, traffic class, flow label and
/// hop limit; TCP with the same ports, acknowledgement, window and options, the next segment's sequence
/// where the last one ended, flags ACK alone (PSH may end the super-packet), segments of the first one's
/// size (the last may be shorter and ends it).
///
/// **UDP datagrams** (as Linux's UDP GRO for forwarding, which ends in the same UDP_L4 packet): the same
/// network header rules, and for IPv4 always consecutive identifications — the kernel numbers the
/// datagrams it cuts from the first one's ID upwards, so the LAN sees exactly the IDs the sender sent;
/// the same ports, a UDP length that is the datagram's, a checksum (IPv4's "none" is not joined: the
/// kernel would give each datagram one), datagrams of the first one's size (the last may be shorter and
/// ends it), at most `maximumDatagrams`.
///
/// Like GRO, it joins only packets whose checksum verified: the super-packet's checksum is made anew, so
/// a corrupt packet joined would be delivered as sound. ipipd verifies a packet's checksum itself unless
/// the kernel did (a run its GRO merged, or a frame it marked DATA_VALID); one that does not verify goes
/// on its own, and the kernel drops it.
struct FlowCoalescer {
    /// The super-packet being built, in the batch's last entry.
    private struct Open {
        var index: Int
        var flushes: Int
        var peer: Int
        var segmentSize: Int
        var isIPv6: Bool
        var isUDP: Bool
        var headersLength: Int
        var nextSequence: UInt32
        var nextIdentification: UInt16
        var segments: Int
        /// Captured frames in it: the capture's accounting counts these.
        var frames: Int
        /// The segments' lengths as their sender sent them, headers included: what the counters count.
        var sentLength: Int
        /// A segment shorter than `segmentSize`, or PSH, ended it.
        var ended: Bool
        /// The first frame's checksum needs no check of ipipd's before it is replaced.
        var firstVerified: Bool
    }

    private var open: Open?
    static let largest = 65_000
    /// Linux's UDP_GRO_CNT_MAX: a UDP super-packet holds at most this many datagrams.
    static let maximumDatagrams = 64

    private static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    /// What a decapsulated TCP or UDP packet (IPv4 or IPv6) holds, when it is one that can be joined at
    /// all: one segment or datagram, or a run of `segments` TCP segments the uplink merged.
    struct Arrival {
        let packet: UnsafeRawBufferPointer
        let isIPv6: Bool
        let isUDP: Bool
        /// Where the transport header starts: 20 (IPv4 without options) or 40 (IPv6).
        let transport: Int
        let transportHeaderLength: Int
        let segments: Int
        /// Its payload for one segment; the run's segment size for a merged one.
        let segmentSize: Int
        /// The kernel verified its checksums.
        let verified: Bool
        var headersLength: Int { transport + transportHeaderLength }
        var payloadLength: Int { packet.count - headersLength }
        /// TCP's sequence number (for UDP, its length and checksum: never compared).
        var sequence: UInt32 { packet.uint32(at: transport + 4) }
        var flags: UInt8 { isUDP ? 0 : packet[transport + 13] }
        /// Where its checksum field is, from the transport header.
        var checksumOffset: Int { isUDP ? 6 : 16 }
        /// The bytes as their sender sent them: each segment with its headers.
        var sentLength: Int { packet.count + (segments - 1) * headersLength }
        /// Its last segment is shorter than the others, or it carries PSH: nothing may follow it.
        var ends: Bool { payloadLength < segments * segmentSize || flags & FlowCoalescer.psh != 0 }

        /// `merged`: what the uplink's GRO made of it (nil: one packet as it was on the wire);
        /// `verified`: the kernel checked its checksum (DATA_VALID, or a merged run).
        init?(_ packet: UnsafeRawBufferPointer, merged: SuperPacket?, verified: Bool) {
            guard packet.count >= 29 else { return nil }
            let transportProtocol: UInt8
            if packet[0] == 0x45 {
                // IPv4 without options, not a fragment.
                guard packet.uint16(at: 6) & 0x3FFF == 0 else { return nil }
                transportProtocol = packet[9]
                isIPv6 = false
                transport = 20
            } else {
                // IPv6 with nothing between its header and the transport's.
                guard packet[0] >> 4 == 6, packet.count >= 49 else { return nil }
                transportProtocol = packet[6]
                isIPv6 = true
                transport = 40
            }
            self.packet = packet
            switch transportProtocol {
            case IPProtocolNumber.udp:
                // One datagram, its length its own, with a checksum and a payload; a run the uplink merged goes whole.
                guard merged == nil, packet.uint16(at: transport + 4) == packet.count - transport, packet.count > transport + 8,
                      packet.uint16(at: transport + 6) != 0 else { return nil }
                isUDP = true
                transportHeaderLength = 8
                segments = 1
                segmentSize = packet.count - transport - 8
                self.verified = verified
            case IPProtocolNumber.tcp:
                guard packet.count >= transport + 20 else { return nil }
                let tcpHeaderLength = Int(packet[transport + 12] >> 4) * 4
                guard tcpHeaderLength >= 20, packet.count > transport + tcpHeaderLength else { return nil }   // a payload
                let flags = packet[transport + 13]
                guard flags & ~(FlowCoalescer.psh | FlowCoalescer.ack) == 0, flags & FlowCoalescer.ack != 0 else { return nil }
                isUDP = false
                transportHeaderLength = tcpHeaderLength
                if let merged {
                    guard merged.isIPv6 == isIPv6, merged.headersLength == transport + tcpHeaderLength else { return nil }
                    segments = merged.segments
                    segmentSize = merged.segmentSize
                    self.verified = true
                } else {
                    segments = 1
                    segmentSize = packet.count - transport - tcpHeaderLength
                    self.verified = verified
                }
            default:
                return nil
            }
        }
    }

    /// Joins `arrival` (from `peer`, for the TUN device) to the super-packet in the batch's last entry when
    /// it continues it; false when it must go on its own.
    mutating func join(_ arrival: Arrival?, peer: Int, in batch: PacketBatch) -> Bool {
        guard var current = open, current.peer == peer, !current.ended,
              current.index == batch.count - 1, current.flushes == batch.flushes else { return false }
        guard let arrival else {
            open = nil
            return false
        }
        let inner = arrival.packet
        let target = batch.mutablePacket(at: current.index)
        let first = UnsafeMutableRawBufferPointer(rebasing: target[VirtioNetHeader.size...])
        let firstView = UnsafeRawBufferPointer(first)
        let transport = arrival.transport
        guard arrival.isUDP == current.isUDP, arrival.headersLength == current.headersLength, arrival.isIPv6 == current.isIPv6,
              arrival.segments == 1 ? arrival.payloadLength <= current.segmentSize : arrival.segmentSize == current.segmentSize,
              target.count + arrival.payloadLength <= Self.largest + VirtioNetHeader.size,
              Self.sameNetworkHeader(firstView, inner, isIPv6: arrival.isIPv6, nextIdentification: current.nextIdentification,
                                     alwaysConsecutive: arrival.isUDP),
              arrival.isUDP ? Self.continuesDatagrams(firstView, inner, transport: transport, segments: current.segments)
                            : Self.continuesSegments(firstView, inner, transport: transport, nextSequence: current.nextSequence,
                                                     headersLength: current.headersLength),
              arrival.verified || Self.checksumVerifies(inner, transport: transport, isUDP: arrival.isUDP)
        else { return false }
        // The first frame's checksum is replaced below: checked once, when the first one joins it.
        if current.frames == 1 && !current.firstVerified && !Self.checksumVerifies(firstView, transport: transport, isUDP: arrival.isUDP) {
            open = nil
            return false
        }

        // The payload goes after the super-packet's; then its headers say what it now is.
        let payload = UnsafeRawBufferPointer(rebasing: inner[arrival.headersLength...])
        UnsafeMutableRawBufferPointer(start: target.baseAddress! + target.count, count: payload.count).copyMemory(from: payload)
        let totalLength = first.count + payload.count
        if arrival.isIPv6 {
            first.setUInt16(UInt16(totalLength - transport), at: 4)
        } else {
            first.setUInt16(UInt16(totalLength), at: 2)
            IPv4HeaderEditor.recomputeChecksum(first)
        }
        let segmentation: VirtioNetHeader.Segmentation
        if arrival.isUDP {
            // The super-packet's own UDP length: the kernel replaces it, and the checksum with it, in each datagram it cuts.
            first.setUInt16(UInt16(totalLength - transport), at: transport + 4)
            segmentation = .udp(segmentSize: current.segmentSize)
        } else {
            first[transport + 13] |= arrival.flags & Self.psh
            segmentation = arrival.isIPv6 ? .tcpIPv6(segmentSize: current.segmentSize) : .tcpIPv4(segmentSize: current.segmentSize)
        }
        // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum; the kernel completes each segment's.
        first.setUInt16(UInt16(truncatingIfNeeded: Self.pseudoHeaderSum(firstView, transport: transport, isUDP: arrival.isUDP,
                                                                        transportLength: totalLength - transport)),
                        at: transport + arrival.checksumOffset)
        VirtioNetHeader(checksum: (transport, arrival.checksumOffset), segmentation: segmentation, headersLength: current.headersLength)
            .write(to: UnsafeMutableRawBufferPointer(rebasing: target[0..<VirtioNetHeader.size]))

        current.segments += arrival.segments
        current.frames += 1
        current.sentLength += arrival.sentLength
        current.nextSequence = arrival.sequence &+ UInt32(payload.count)
        current.nextIdentification = arrival.isIPv6 ? 0 : inner.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments)
        // A packet shorter than the first ends it too: the kernel would cut what follows at the wrong places.
        current.ended = arrival.ends || arrival.segments == 1 && arrival.payloadLength < current.segmentSize
        open = current
        batch.extendLast(by: payload.count, kind: .superPacket(peer: peer, innerLength: current.sentLength, segments: current.segments,
                                                               frames: current.frames))
        return true
    }

    /// What GRO requires of the network header for a packet to join: IPv4 — the same addresses, TOS,
    /// TTL and DF, and with DF clear (or `alwaysConsecutive`) the identification right after the last
    /// one; IPv6 — the same version, traffic class and flow label (the first word), hop limit and addresses.
    private static func sameNetworkHeader(_ first: UnsafeRawBufferPointer, _ next: UnsafeRawBufferPointer, isIPv6: Bool,
                                          nextIdentification: UInt16, alwaysConsecutive: Bool) -> Bool {
        if isIPv6 {
            return first.uint32(at: 0) == next.uint32(at: 0) && first[7] == next[7]
                && stride(from: 8, to: 40, by: 4).allSatisfy { first.uint32(at: $0) == next.uint32(at: $0) }
        }
        return first.uint32(at: 12) == next.uint32(at: 12) && first.uint32(at: 16) == next.uint32(at: 16)
            && first[1] == next[1] && first[8] == next[8]
            && first[6] & 0x40 == next[6] & 0x40
            && (next[6] & 0x40 != 0 && !alwaysConsecutive || next.uint16(at: 4) == nextIdentification)
    }

    /// TCP: the same ports, acknowledgement, data offset, window, urgent pointer and options, and the
    /// sequence where the super-packet ends.
    private static func continuesSegments(_ first: UnsafeRawBufferPointer, _ next: UnsafeRawBufferPointer, transport: Int,
                                          nextSequence: UInt32, headersLength: Int) -> Bool {
        next.uint32(at: transport + 4) == nextSequence
            && first.uint32(at: transport) == next.uint32(at: transport) && first.uint32(at: transport + 8) == next.uint32(at: transport + 8)
            && first[transport + 12] == next[transport + 12] && first.uint16(at: transport + 14) == next.uint16(at: transport + 14)
            && first.uint16(at: transport + 18) == next.uint16(at: transport + 18)
            && (headersLength == transport + 20
                || first[(transport + 20)..<headersLength].elementsEqual(next[(transport + 20)..<headersLength]))
    }

    /// UDP: the same ports, and room for one more datagram.
    private static func continuesDatagrams(_ first: UnsafeRawBufferPointer, _ next: UnsafeRawBufferPointer, transport: Int,
                                           segments: Int) -> Bool {
        segments < maximumDatagrams && first.uint32(at: transport) == next.uint32(at: transport)
    }

    private static func pseudoHeaderSum(_ packet: UnsafeRawBufferPointer, transport: Int, isUDP: Bool, transportLength: Int) -> UInt32 {
        let transportProtocol = isUDP ? IPProtocolNumber.udp : IPProtocolNumber.tcp
        return transport == 40
            ? InternetChecksum.pseudoHeaderSum(ofIPv6: packet, nextHeader: transportProtocol, transportLength: transportLength)
            : InternetChecksum.pseudoHeaderSum(ofIPv4: packet, protocol: transportProtocol, transportLength: transportLength)
    }

    /// Whether a TCP or UDP packet (IPv4 without options, or IPv6 with it behind its header) has a checksum that verifies.
    private static func checksumVerifies(_ packet: UnsafeRawBufferPointer, transport: Int, isUDP: Bool) -> Bool {
        let pseudo = pseudoHeaderSum(packet, transport: transport, isUDP: isUDP, transportLength: packet.count - transport)
        return InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: packet[transport...]), initial: pseudo) == 0xFFFF
    }

    /// Nothing may join what the batch holds now.
    mutating func close() { open = nil }

    /// `arrival` went to the batch as its own entry (the last one): the start of a super-packet if it can be.
    mutating func started(_ arrival: Arrival?, peer: Int, in batch: PacketBatch) {
        // A batch that filled up with it was sent at once: nothing left to join to.
        guard batch.count > 0, let arrival else {
            open = nil
            return
        }
        open = Open(index: batch.count - 1, flushes: batch.flushes, peer: peer, segmentSize: arrival.segmentSize, isIPv6: arrival.isIPv6,
                    isUDP: arrival.isUDP, headersLength: arrival.headersLength,
                    nextSequence: arrival.sequence &+ UInt32(arrival.payloadLength),
                    nextIdentification: arrival.isIPv6 ? 0 : arrival.packet.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments),
                    segments: arrival.segments, frames: 1, sentLength: arrival.sentLength, ended: arrival.ends,
                    firstVerified: arrival.verified)
    }
}
