/// What the uplink's kernel did to a captured frame before ipipd saw it, as the frame's virtio-net header
/// says (`UplinkCapture`): nothing; left the checksum of a local sender's packet to be completed (a frame
/// from a veth); or merged consecutive segments of one flow into one frame (GRO, LRO: a "super-packet"
/// of up to 64 KiB, one outer header, one inner header).
///
/// The header comes from the kernel, the packet from the wire: every position and size the header names is
/// checked against the inner packet itself, and a frame whose header does not describe its packet is
/// dropped (`unsupported-offload`). A merged frame holds one inner flow from one peer (GRO joins only
/// segments whose outer and inner addresses, ports, TOS and TTL agree, whose checksums it verified), so
/// the decapsulator's checks apply to it once, as to one packet.
public enum ReceiveOffload {
    /// Examines `header`, whose offsets count from the frame's start, for the inner packet `inner`, which
    /// starts `innerOffset` bytes into the frame. A partial checksum of a frame that is no super-packet is
    /// completed in place (returns nil). Returns the super-packet, or throws when the header does not fit
    /// the packet.
    @inline(__always)
    public static func examine(_ header: VirtioNetHeader, inner: UnsafeMutableRawBufferPointer,
                               innerOffset: Int) throws(OffloadMismatch) -> SuperPacket? {
        guard let segmentSize = header.segmentation.segmentSize else {
            if case .unsupported = header.segmentation { throw OffloadMismatch() }
            guard let (start, offset) = header.checksum else { return nil }
            // A whole packet whose checksum its sender left to the NIC: the field holds the pseudo-header's sum.
            let relative = start - innerOffset
            guard relative >= IPv4PacketView.minimumHeaderLength,
                  ChecksumOffload.complete(inner, start: relative, offset: offset) else { throw OffloadMismatch() }
            return nil
        }
        guard let layout = TransportLayout(inner) else { throw OffloadMismatch() }
        switch header.segmentation {
        case .tcpIPv4: guard layout.isTCP && !layout.isIPv6 else { throw OffloadMismatch() }
        case .tcpIPv6: guard layout.isTCP && layout.isIPv6 else { throw OffloadMismatch() }
        case .udp: guard !layout.isTCP else { throw OffloadMismatch() }
        case .none, .unsupported: throw OffloadMismatch()
        }
        if let (start, offset) = header.checksum {
            guard start - innerOffset == layout.transportOffset, offset == layout.checksumOffset else { throw OffloadMismatch() }
        }
        let payload = inner.count - layout.headersLength
        guard segmentSize > 0, payload > 0 else { throw OffloadMismatch() }
        let segments = (payload + segmentSize - 1) / segmentSize
        guard segments > 1 else {
            // Within one segment after all: a packet like any other, its checksum made whole.
            layout.completeChecksum(inner)
            return nil
        }
        return SuperPacket(layout: layout, segmentSize: segmentSize, segments: segments,
                           congestionWindowReduced: header.congestionWindowReduced)
    }

    public struct OffloadMismatch: Error {}
}

/// A frame the uplink's GRO (or LRO) merged: `segments` TCP segments (or UDP datagrams) of `segmentSize`
/// payload bytes, the last one possibly shorter, behind one copy of their headers.
public struct SuperPacket: Equatable, Sendable {
    let layout: TransportLayout
    public let segmentSize: Int
    public let segments: Int
    public let congestionWindowReduced: Bool

    public var isIPv6: Bool { layout.isIPv6 }
    /// IP and transport headers.
    public var headersLength: Int { layout.headersLength }

    /// The inner bytes as the sender sent them: every segment with its own headers.
    public func sentLength(merged length: Int) -> Int { length + (segments - 1) * layout.headersLength }

    /// Readies `inner` (this super-packet) to be written to the TUN device whole, as a GSO packet the kernel
    /// cuts again where the next hop needs segments: the transport checksum field gets the pseudo-header's
    /// sum (CHECKSUM_PARTIAL, whatever GRO left there) and the returned header says how to cut it.
    public func prepareForTUN(_ inner: UnsafeMutableRawBufferPointer) -> VirtioNetHeader {
        // UDP: the whole's length, as GRO leaves it; the kernel derives each datagram's length and checksum from it.
        if !layout.isTCP { inner.setUInt16(UInt16(inner.count - layout.transportOffset), at: layout.transportOffset + 4) }
        layout.storePseudoHeaderSum(inner)
        let segmentation: VirtioNetHeader.Segmentation = !layout.isTCP ? .udp(segmentSize: segmentSize)
            : layout.isIPv6 ? .tcpIPv6(segmentSize: segmentSize) : .tcpIPv4(segmentSize: segmentSize)
        return VirtioNetHeader(checksum: (layout.transportOffset, layout.checksumOffset), segmentation: segmentation,
                               headersLength: layout.headersLength, congestionWindowReduced: congestionWindowReduced)
    }
}

/// Where a TCP or UDP packet's transport header lies, IPv4 (any header length) or IPv6 (the transport
/// header right behind the fixed header: GRO joins no other), checked against the packet's length.
struct TransportLayout: Equatable, Sendable {
    let isIPv6: Bool
    let isTCP: Bool
    let transportOffset: Int
    let headersLength: Int

    var checksumOffset: Int { isTCP ? 16 : 6 }

    init?(_ packet: UnsafeMutableRawBufferPointer) { self.init(UnsafeRawBufferPointer(packet)) }

    init?(_ packet: UnsafeRawBufferPointer) {
        guard packet.count >= 1 else { return nil }
        let transport: UInt8
        switch packet[0] >> 4 {
        case 4:
            guard packet.count >= IPv4PacketView.minimumHeaderLength else { return nil }
            isIPv6 = false
            transportOffset = Int(packet[0] & 0x0F) * 4
            transport = packet[9]
        case 6:
            guard packet.count >= IPv6PacketView.headerLength else { return nil }
            isIPv6 = true
            transportOffset = IPv6PacketView.headerLength
            transport = packet[6]
        default:
            return nil
        }
        switch transport {
        case IPProtocolNumber.tcp:
            guard packet.count >= transportOffset + 20 else { return nil }
            let dataOffset = Int(packet[transportOffset + 12] >> 4) * 4
            guard dataOffset >= 20 else { return nil }
            isTCP = true
            headersLength = transportOffset + dataOffset
        case IPProtocolNumber.udp:
            isTCP = false
            headersLength = transportOffset + 8
        default:
            return nil
        }
        guard transportOffset >= IPv4PacketView.minimumHeaderLength, headersLength <= packet.count else { return nil }
    }

    /// The pseudo-header's sum over the packet's transport length (RFC 793 §3.1, RFC 8200 §8.1).
    func pseudoHeaderSum(_ packet: UnsafeMutableRawBufferPointer) -> UInt32 {
        let bytes = UnsafeRawBufferPointer(packet)
        let length = packet.count - transportOffset
        return isIPv6 ? InternetChecksum.pseudoHeaderSum(ofIPv6: bytes, nextHeader: isTCP ? IPProtocolNumber.tcp : IPProtocolNumber.udp,
                                                         transportLength: length)
                      : InternetChecksum.pseudoHeaderSum(ofIPv4: bytes, protocol: bytes[9], transportLength: length)
    }

    func storePseudoHeaderSum(_ packet: UnsafeMutableRawBufferPointer) {
        packet.setUInt16(UInt16(truncatingIfNeeded: pseudoHeaderSum(packet)), at: transportOffset + checksumOffset)
    }

    /// Computes the transport checksum in full.
    func completeChecksum(_ packet: UnsafeMutableRawBufferPointer) {
        packet.setUInt16(0, at: transportOffset + checksumOffset)
        _ = ChecksumOffload.complete(packet, start: transportOffset, offset: checksumOffset, initial: pseudoHeaderSum(packet))
    }
}
