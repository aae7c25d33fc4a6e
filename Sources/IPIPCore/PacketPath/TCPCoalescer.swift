/// Joins consecutive TCP segments of one flow, decapsulated in one burst, into one super-packet for the
/// TUN device: what the kernel's GRO does for a NIC, and wireguard-go for its TUN writes. The kernel
/// takes it as one packet (IFF_VNET_HDR: TCPV4, NEEDS_CSUM) and forwards it whole, cutting it again
/// only where the next hop needs segments — one write and one pass through the forwarding path per
/// 64 KiB instead of per segment. What it joins arrives one segment per frame (an uplink without GRO)
/// or already merged by the uplink's GRO into runs of segments, which it joins into longer ones.
///
/// Only what Linux's tcp4_gro_receive would join is joined: IPv4 without options, not fragmented, same
/// addresses, TOS and TTL, DF set (or consecutive IDs); TCP with the same ports, acknowledgement,
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

    /// What a decapsulated TCP/IPv4 packet holds, when it is one that can be joined at all: one segment,
    /// or a run of `segments` the uplink merged.
    struct Arrival {
        let packet: UnsafeRawBufferPointer
        let tcpHeaderLength: Int
        let segments: Int
        /// Its payload for one segment; the run's segment size for a merged one.
        let segmentSize: Int
        /// The kernel verified its checksums.
        let verified: Bool
        var headersLength: Int { 20 + tcpHeaderLength }
        var payloadLength: Int { packet.count - headersLength }
        var sequence: UInt32 { packet.uint32(at: 24) }
        var flags: UInt8 { packet[33] }
        /// The bytes as their sender sent them: each segment with its headers.
        var sentLength: Int { packet.count + (segments - 1) * headersLength }
        /// Its last segment is shorter than the others, or it carries PSH: nothing may follow it.
        var ends: Bool { payloadLength < segments * segmentSize || flags & TCPCoalescer.psh != 0 }

        /// `merged`: what the uplink's GRO made of it (nil: one segment as it was on the wire);
        /// `verified`: the kernel checked its checksum (DATA_VALID, or a merged run).
        init?(_ packet: UnsafeRawBufferPointer, merged: SuperPacket?, verified: Bool) {
            guard packet.count >= 40, packet[0] == 0x45, packet[9] == IPProtocolNumber.tcp,
                  packet.uint16(at: 6) & 0x3FFF == 0 else { return nil }   // no options, not a fragment
            let tcpHeaderLength = Int(packet[32] >> 4) * 4
            guard tcpHeaderLength >= 20, packet.count > 20 + tcpHeaderLength else { return nil }   // a payload
            let flags = packet[33]
            guard flags & ~(TCPCoalescer.psh | TCPCoalescer.ack) == 0, flags & TCPCoalescer.ack != 0 else { return nil }
            self.packet = packet
            self.tcpHeaderLength = tcpHeaderLength
            if let merged {
                guard !merged.isIPv6, merged.headersLength == 20 + tcpHeaderLength else { return nil }
                segments = merged.segments
                segmentSize = merged.segmentSize
                self.verified = true
            } else {
                segments = 1
                segmentSize = packet.count - 20 - tcpHeaderLength
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
        guard arrival.headersLength == current.headersLength, arrival.sequence == current.nextSequence,
              arrival.segments == 1 ? arrival.payloadLength <= current.segmentSize : arrival.segmentSize == current.segmentSize,
              target.count + arrival.payloadLength <= Self.largest + VirtioNetHeader.size,
              // Same addresses and TOS/TTL/protocol; DF set, or IDs one after the other.
              firstView.uint32(at: 12) == inner.uint32(at: 12), firstView.uint32(at: 16) == inner.uint32(at: 16),
              firstView[1] == inner[1], firstView[8] == inner[8],
              firstView[6] & 0x40 == inner[6] & 0x40,
              inner[6] & 0x40 != 0 || inner.uint16(at: 4) == current.nextIdentification,
              // Same ports, acknowledgement, data offset, window, urgent pointer and options.
              firstView.uint32(at: 20) == inner.uint32(at: 20), firstView.uint32(at: 28) == inner.uint32(at: 28),
              firstView[32] == inner[32], firstView.uint16(at: 34) == inner.uint16(at: 34),
              firstView.uint16(at: 38) == inner.uint16(at: 38),
              current.headersLength == 40 || firstView[40..<current.headersLength].elementsEqual(inner[40..<current.headersLength]),
              arrival.verified || Self.checksumVerifies(inner)
        else { return false }
        // The first frame's checksum is replaced below: checked once, when the first one joins it.
        if current.frames == 1 && !current.firstVerified && !Self.checksumVerifies(firstView) {
            open = nil
            return false
        }

        // The payload goes after the super-packet's; then its headers say what it now is.
        let payload = UnsafeRawBufferPointer(rebasing: inner[arrival.headersLength...])
        UnsafeMutableRawBufferPointer(start: target.baseAddress! + target.count, count: payload.count).copyMemory(from: payload)
        let totalLength = first.count + payload.count
        first.setUInt16(UInt16(totalLength), at: 2)
        IPv4HeaderEditor.recomputeChecksum(first)
        first[33] |= arrival.flags & Self.psh
        // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum; the kernel completes each segment's.
        let pseudo = InternetChecksum.pseudoHeaderSum(ofIPv4: firstView, protocol: IPProtocolNumber.tcp, transportLength: totalLength - 20)
        first.setUInt16(UInt16(truncatingIfNeeded: pseudo), at: 36)
        VirtioNetHeader(checksum: (20, 16), segmentation: .tcpIPv4(segmentSize: current.segmentSize), headersLength: current.headersLength)
            .write(to: UnsafeMutableRawBufferPointer(rebasing: target[0..<VirtioNetHeader.size]))

        current.segments += arrival.segments
        current.frames += 1
        current.sentLength += arrival.sentLength
        current.nextSequence = arrival.sequence &+ UInt32(payload.count)
        current.nextIdentification = inner.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments)
        current.ended = arrival.ends
        open = current
        batch.extendLast(by: payload.count, kind: .superPacket(peer: peer, innerLength: current.sentLength, segments: current.segments,
                                                               frames: current.frames))
        return true
    }

    /// Whether a TCP/IPv4 packet (header without options) has a TCP checksum that verifies.
    private static func checksumVerifies(_ packet: UnsafeRawBufferPointer) -> Bool {
        let pseudo = InternetChecksum.pseudoHeaderSum(ofIPv4: packet, protocol: IPProtocolNumber.tcp, transportLength: packet.count - 20)
        return InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: packet[20...]), initial: pseudo) == 0xFFFF
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
        open = Open(index: batch.count - 1, flushes: batch.flushes, peer: peer, segmentSize: arrival.segmentSize,
                    headersLength: arrival.headersLength, nextSequence: arrival.sequence &+ UInt32(arrival.payloadLength),
                    nextIdentification: arrival.packet.uint16(at: 4) &+ UInt16(truncatingIfNeeded: arrival.segments),
                    segments: arrival.segments, frames: 1, sentLength: arrival.sentLength, ended: arrival.ends,
                    firstVerified: arrival.verified)
    }
}
