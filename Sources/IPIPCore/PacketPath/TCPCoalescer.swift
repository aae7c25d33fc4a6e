/// Joins consecutive TCP segments of one flow, decapsulated in one burst, into one super-packet for the
/// TUN device: what the kernel's GRO does for a NIC, and wireguard-go for its TUN writes. The kernel
/// takes it as one packet (IFF_VNET_HDR: TCPV4 or TCPV6, NEEDS_CSUM) and forwards it whole, cutting it again
/// only where the next hop needs segments — one write and one pass through the forwarding path per
/// 64 KiB instead of per segment. What it joins arrives one segment per frame (an uplink without GRO)
/// or already merged by the uplink's GRO into runs of segments, which it joins into longer ones.
///
/// Only what Linux's tcp4_gro_receive and tcp6_gro_receive would join is joined: IPv4 without options,
/// not fragmented, same addresses, TOS and TTL, DF set (or consecutive IDs); IPv6 with TCP right behind
/// its header, same addresses, traffic class, flow label and hop limit; TCP with the same ports, acknowledgement,
/// window and options, the next segment's sequence where the last one ended, flags ACK alone (PSH may
/// end the super-packet), segments of the first one's size (the last may be shorter and ends it).
/// Like GRO, it joins only segments whose TCP checksum verified: the super-packet's checksum is made
/// anew, so a corrupt segment joined would be delivered as sound. ipipd verifies a segment's checksum
/// itself unless the kernel did (a run its GRO merged, or a frame it marked DATA_VALID); one that does
/// not verify goes on its own, and the kernel drops it.
struct TCPCoalescer {
    /// The super-packet being built, in the batch's last entry.
    private struct Open {
        var index: Int
        var flushes: Int
        var peer: Int
        var segmentSize: Int
        var isIPv6: Bool
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

    private static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    /// What a decapsulated TCP packet (IPv4 or IPv6) holds, when it is one that can be joined at all: one
    /// segment, or a run of `segments` the uplink merged.
    struct Arrival {
        let packet: UnsafeRawBufferPointer
        let isIPv6: Bool
        /// Where the TCP header starts: 20 (IPv4 without options) or 40 (IPv6).
        let tcp: Int
        let tcpHeaderLength: Int
        let segments: Int
        /// Its payload for one segment; the run's segment size for a merged one.
        let segmentSize: Int
        /// The kernel verified its checksums.
        let verified: Bool
        var headersLength: Int { tcp + tcpHeaderLength }
        var payloadLength: Int { packet.count - headersLength }
        var sequence: UInt32 { packet.uint32(at: tcp + 4) }
        var flags: UInt8 { packet[tcp + 13] }
        /// The bytes as their sender sent them: each segment with its headers.
        var sentLength: Int { packet.count + (segments - 1) * headersLength }
        /// Its last segment is shorter than the others, or it carries PSH: nothing may follow it.
        var ends: Bool { payloadLength < segments * segmentSize || flags & TCPCoalescer.psh != 0 }

        /// `merged`: what the uplink's GRO made of it (nil: one segment as it was on the wire);
        /// `verified`: the kernel checked its checksum (DATA_VALID, or a merged run).
        init?(_ packet: UnsafeRawBufferPointer, merged: SuperPacket?, verified: Bool) {
            guard packet.count >= 40 else { return nil }
            if packet[0] == 0x45 {
                // IPv4 without options, not a fragment.
                guard packet[9] == IPProtocolNumber.tcp, packet.uint16(at: 6) & 0x3FFF == 0 else { return nil }
                isIPv6 = false
                tcp = 20
            } else {
                // IPv6 with nothing between its header and TCP's.
                guard packet[0] >> 4 == 6, packet.count >= 60, packet[6] == IPProtocolNumber.tcp else { return nil }
                isIPv6 = true
                tcp = 40
            }
            let tcpHeaderLength = Int(packet[tcp + 12] >> 4) * 4
            guard tcpHeaderLength >= 20, packet.count > tcp + tcpHeaderLength else { return nil }   // a payload
            let flags = packet[tcp + 13]
            guard flags & ~(TCPCoalescer.psh | TCPCoalescer.ack) == 0, flags & TCPCoalescer.ack != 0 else { return nil }
            self.packet = packet
            self.tcpHeaderLength = tcpHeaderLength
            if let merged {
                guard merged.isIPv6 == isIPv6, merged.headersLength == tcp + tcpHeaderLength else { return nil }
                segments = merged.segments
                segmentSize = merged.segmentSize
                self.verified = true
            } else {
                segments = 1
                segmentSize = packet.count - tcp - tcpHeaderLength
                self.verified = verified
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
        let tcp = arrival.tcp
        guard arrival.headersLength == current.headersLength, arrival.isIPv6 == current.isIPv6, arrival.sequence == current.nextSequence,
              arrival.segments == 1 ? arrival.payloadLength <= current.segmentSize : arrival.segmentSize == current.segmentSize,
              target.count + arrival.payloadLength <= Self.largest + VirtioNetHeader.size,
              Self.sameNetworkHeader(firstView, inner, isIPv6: arrival.isIPv6, nextIdentification: current.nextIdentification),
              // Same ports, acknowledgement, data offset, window, urgent pointer and options.
              firstView.uint32(at: tcp) == inner.uint32(at: tcp), firstView.uint32(at: tcp + 8) == inner.uint32(at: tcp + 8),
              firstView[tcp + 12] == inner[tcp + 12], firstView.uint16(at: tcp + 14) == inner.uint16(at: tcp + 14),
              firstView.uint16(at: tcp + 18) == inner.uint16(at: tcp + 18),
              current.headersLength == tcp + 20
                || firstView[(tcp + 20)..<current.headersLength].elementsEqual(inner[(tcp + 20)..<current.headersLength]),
              arrival.verified || Self.checksumVerifies(inner, tcp: tcp)
        else { return false }
        // The first frame's checksum is replaced below: checked once, when the first one joins it.
        if current.frames == 1 && !current.firstVerified && !Self.checksumVerifies(firstView, tcp: tcp) {
            open = nil
            return false
        }

        // The payload goes after the super-packet's; then its headers say what it now is.
        let payload = UnsafeRawBufferPointer(rebasing: inner[arrival.headersLength...])
        UnsafeMutableRawBufferPointer(start: target.baseAddress! + target.count, count: payload.count).copyMemory(from: payload)
        let totalLength = first.count + payload.count
        if arrival.isIPv6 {
            first.setUInt16(UInt16(totalLength - tcp), at: 4)
        } else {
            first.setUInt16(UInt16(totalLength), at: 2)
            IPv4HeaderEditor.recomputeChecksum(first)
        }
        first[tcp + 13] |= arrival.flags & Self.psh
        // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum; the kernel completes each segment's.
        first.setUInt16(UInt16(truncatingIfNeeded: Self.pseudoHeaderSum(firstView, tcp: tcp, transportLength: totalLength - tcp)), at: tcp + 16)
        VirtioNetHeader(checksum: (tcp, 16),
                        segmentation: arrival.isIPv6 ? .tcpIPv6(segmentSize: current.segmentSize) : .tcpIPv4(segmentSize: current.segmentSize),
                        headersLength: current.headersLength)
            .write(to: UnsafeMutableRawBufferPointer(rebasing: target[0..<VirtioNetHeader.size]))

        current.segments += arrival.segments
        current.frames += 1
        current.sentLength += arrival.sentLength
        current.nextSequence = arrival.sequence &+ UInt32(payload.count)
        current.nextIdentification = arrival.isIPv6 ? 0 : inner.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments)
        current.ended = arrival.ends
        open = current
        batch.extendLast(by: payload.count, kind: .superPacket(peer: peer, innerLength: current.sentLength, segments: current.segments,
                                                               frames: current.frames))
        return true
    }

    /// What GRO requires of the network header for a segment to join: IPv4 — the same addresses, TOS,
    /// TTL and DF, and with DF clear the identification right after the last one; IPv6 — the same
    /// version, traffic class and flow label (the first word), hop limit and addresses.
    private static func sameNetworkHeader(_ first: UnsafeRawBufferPointer, _ next: UnsafeRawBufferPointer, isIPv6: Bool,
                                          nextIdentification: UInt16) -> Bool {
        if isIPv6 {
            return first.uint32(at: 0) == next.uint32(at: 0) && first[7] == next[7]
                && stride(from: 8, to: 40, by: 4).allSatisfy { first.uint32(at: $0) == next.uint32(at: $0) }
        }
        return first.uint32(at: 12) == next.uint32(at: 12) && first.uint32(at: 16) == next.uint32(at: 16)
            && first[1] == next[1] && first[8] == next[8]
            && first[6] & 0x40 == next[6] & 0x40
            && (next[6] & 0x40 != 0 || next.uint16(at: 4) == nextIdentification)
    }

    private static func pseudoHeaderSum(_ packet: UnsafeRawBufferPointer, tcp: Int, transportLength: Int) -> UInt32 {
        tcp == 40 ? InternetChecksum.pseudoHeaderSum(ofIPv6: packet, nextHeader: IPProtocolNumber.tcp, transportLength: transportLength)
                  : InternetChecksum.pseudoHeaderSum(ofIPv4: packet, protocol: IPProtocolNumber.tcp, transportLength: transportLength)
    }

    /// Whether a TCP packet (IPv4 without options, or IPv6 with TCP behind its header) has a TCP checksum that verifies.
    private static func checksumVerifies(_ packet: UnsafeRawBufferPointer, tcp: Int) -> Bool {
        let pseudo = pseudoHeaderSum(packet, tcp: tcp, transportLength: packet.count - tcp)
        return InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: packet[tcp...]), initial: pseudo) == 0xFFFF
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
                    headersLength: arrival.headersLength, nextSequence: arrival.sequence &+ UInt32(arrival.payloadLength),
                    nextIdentification: arrival.isIPv6 ? 0 : arrival.packet.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments),
                    segments: arrival.segments, frames: 1, sentLength: arrival.sentLength, ended: arrival.ends,
                    firstVerified: arrival.verified)
    }
}
