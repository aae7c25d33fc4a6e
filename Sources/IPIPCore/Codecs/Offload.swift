/// What the kernel left undone in a packet read from a TUN device with offloads on (IFF_VNET_HDR with
/// TUNSETOFFLOAD): `struct virtio_net_hdr` in front of each packet says whether a checksum still has to
/// be completed and whether the packet is a TCP "super-packet" to be cut into MSS-sized segments.
///
/// With TSO the kernel hands over up to 64 KiB of a TCP stream in one read instead of one read (and one
/// pass through its forwarding path) per segment; ipipd does the segmentation, as a NIC would.
public struct VirtioNetHeader: Equatable, Sendable {
    /// sizeof(struct virtio_net_hdr): the TUN device's default header size.
    public static let size = 10
    static let needsChecksumFlag: UInt8 = 1
    static let dataValidFlag: UInt8 = 2
    /// VIRTIO_NET_HDR_GSO_ECN: the super-packet's first segment carries CWR (SKB_GSO_TCP_ECN).
    static let congestionFlag: UInt8 = 0x80

    public enum Segmentation: Equatable, Sendable {
        case none
        /// VIRTIO_NET_HDR_GSO_TCPV4 (1).
        case tcpIPv4(segmentSize: Int)
        /// VIRTIO_NET_HDR_GSO_TCPV6 (4).
        case tcpIPv6(segmentSize: Int)
        /// VIRTIO_NET_HDR_GSO_UDP_L4 (5): datagrams of `segmentSize` payload bytes, IPv4 or IPv6.
        case udp(segmentSize: Int)
        /// A kind ipipd does not take (UFO, and anything newer): dropped.
        case unsupported(UInt8)

        public var segmentSize: Int? {
            switch self {
            case .tcpIPv4(let size), .tcpIPv6(let size), .udp(let size): size
            case .none, .unsupported: nil
            }
        }
    }

    /// Where the partial checksum's sum starts, and where its result goes (relative to `start`).
    public var checksum: (start: Int, offset: Int)?
    public var segmentation: Segmentation
    /// The first segment carries CWR: the segments after it must not (VIRTIO_NET_HDR_GSO_ECN).
    public var congestionWindowReduced: Bool
    /// The kernel verified the packet's checksum (VIRTIO_NET_HDR_F_DATA_VALID, CHECKSUM_UNNECESSARY).
    public var dataValid: Bool

    /// For a packet ipipd writes: the length of its IP and transport headers (hdr_len), 0 when not segmented.
    public var headersLength: Int

    public init(checksum: (start: Int, offset: Int)?, segmentation: Segmentation, headersLength: Int = 0,
                congestionWindowReduced: Bool = false, dataValid: Bool = false) {
        self.checksum = checksum
        self.segmentation = segmentation
        self.headersLength = headersLength
        self.congestionWindowReduced = congestionWindowReduced
        self.dataValid = dataValid
    }

    /// Parses the header (native byte order, which is little-endian on every architecture ipipd builds for).
    public init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        let flags = bytes[0], type = bytes[1] & ~Self.congestionFlag
        func field(_ offset: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
        checksum = flags & Self.needsChecksumFlag != 0 ? (field(6), field(8)) : nil
        dataValid = flags & Self.dataValidFlag != 0
        congestionWindowReduced = bytes[1] & Self.congestionFlag != 0
        headersLength = field(2)
        switch type {
        case 0: segmentation = .none
        case 1: segmentation = .tcpIPv4(segmentSize: field(4))
        case 4: segmentation = .tcpIPv6(segmentSize: field(4))
        case 5: segmentation = .udp(segmentSize: field(4))
        default: segmentation = .unsupported(type)
        }
    }

    /// Writes the header, as the TUN device reads it before a packet written to it.
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        func store(_ value: Int, at offset: Int) {
            bytes.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, toByteOffset: offset, as: UInt16.self)
        }
        bytes[0] = (checksum == nil ? 0 : Self.needsChecksumFlag) | (dataValid ? Self.dataValidFlag : 0)
        let type: UInt8
        switch segmentation {
        case .none: type = 0
        case .tcpIPv4: type = 1
        case .tcpIPv6: type = 4
        case .udp: type = 5
        case .unsupported(let value): type = value
        }
        bytes[1] = type | (congestionWindowReduced ? Self.congestionFlag : 0)
        store(headersLength, at: 2)
        store(segmentation.segmentSize ?? 0, at: 4)
        store(checksum?.start ?? 0, at: 6)
        store(checksum?.offset ?? 0, at: 8)
    }

    /// No offload: a packet as it was on the wire.
    public static let plain = VirtioNetHeader(checksum: nil, segmentation: .none)

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.checksum?.start == rhs.checksum?.start && lhs.checksum?.offset == rhs.checksum?.offset
            && lhs.segmentation == rhs.segmentation && lhs.congestionWindowReduced == rhs.congestionWindowReduced
            && lhs.dataValid == rhs.dataValid
    }
}

public enum ChecksumOffload {
    /// Completes a checksum the kernel left partial (CHECKSUM_PARTIAL): the field at `start + offset`
    /// already holds the pseudo-header sum; the one's-complement sum from `start` to the end goes there.
    /// False when the positions do not fit the packet.
    /// `initial`: a sum to start from (the pseudo-header's, when the field holds zero).
    @inline(__always)
    public static func complete(_ packet: UnsafeMutableRawBufferPointer, start: Int, offset: Int, initial: UInt32 = 0) -> Bool {
        guard start >= 0, offset >= 0, start + offset + 2 <= packet.count else { return false }
        let sum = InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: packet[start...]), initial: initial)
        var result = ~UInt16(truncatingIfNeeded: sum)
        // A UDP checksum of zero means "none": the kernel, like RFC 768, sends 0xFFFF instead.
        let transport = packet.count > 9 ? (packet[0] >> 4 == 6 ? packet[6] : packet[9]) : 0
        if result == 0 && transport == IPProtocolNumber.udp { result = 0xFFFF }
        packet.storeBytes(of: result.bigEndian, toByteOffset: start + offset, as: UInt16.self)
        return true
    }
}

/// Cuts a TCP or UDP super-packet over IPv4 or IPv6 into segments of at most `segmentSize` payload bytes,
/// the way the kernel's GSO would (tcp_gso_segment, __udp_gso_segment): IPv4's identification counts up
/// from the super-packet's (IPv6 has none), each segment gets its own total or payload length; for TCP
/// the sequence number advances by the payload before it, FIN and PSH stay on the last segment only and
/// CWR on the first only; for UDP each datagram gets its own length; IPv4 and transport checksums are
/// computed in full. IPv6 with the transport header right behind the fixed header only, as GSO makes it.
public struct GSOSegmenter {
    private let packet: UnsafeRawBufferPointer
    private let isIPv6: Bool
    private let ipHeaderLength: Int
    private let headersLength: Int
    private let segmentSize: Int
    private let transportProtocol: UInt8
    public let segmentCount: Int

    private var isTCP: Bool { transportProtocol == IPProtocolNumber.tcp }

    /// Nil when `packet` is not a well-formed TCP or UDP packet over IPv4 or IPv6 with a payload to cut.
    public init?(superPacket packet: UnsafeRawBufferPointer, segmentSize: Int) {
        guard segmentSize > 0, packet.count >= 28 else { return nil }
        switch packet[0] >> 4 {
        case 4:
            isIPv6 = false
            ipHeaderLength = Int(packet[0] & 0x0F) * 4
            transportProtocol = packet[9]
            guard ipHeaderLength >= 20 else { return nil }
        case 6:
            isIPv6 = true
            ipHeaderLength = IPv6PacketView.headerLength
            guard packet.count >= ipHeaderLength else { return nil }
            transportProtocol = packet[6]
        default:
            return nil
        }
        guard transportProtocol == IPProtocolNumber.tcp || transportProtocol == IPProtocolNumber.udp else { return nil }
        let transportHeaderLength: Int
        if transportProtocol == IPProtocolNumber.tcp {
            guard packet.count >= ipHeaderLength + 20 else { return nil }
            transportHeaderLength = Int(packet[ipHeaderLength + 12] >> 4) * 4
            guard transportHeaderLength >= 20 else { return nil }
        } else {
            transportHeaderLength = 8
        }
        guard packet.count >= ipHeaderLength + transportHeaderLength else { return nil }
        self.packet = packet
        headersLength = ipHeaderLength + transportHeaderLength
        self.segmentSize = segmentSize
        let payload = packet.count - headersLength
        segmentCount = max(1, (payload + segmentSize - 1) / segmentSize)
    }

    /// Writes segment `index` to `destination` (room for the headers and `segmentSize` bytes) and
    /// returns its length.
    public func write(segment index: Int, to destination: UnsafeMutableRawPointer) -> Int {
        precondition(index >= 0 && index < segmentCount)
        let offset = index * segmentSize
        let payloadLength = min(segmentSize, packet.count - headersLength - offset)
        let length = headersLength + payloadLength
        destination.copyMemory(from: packet.baseAddress!, byteCount: headersLength)
        destination.advanced(by: headersLength)
            .copyMemory(from: packet.baseAddress!.advanced(by: headersLength + offset), byteCount: payloadLength)
        let segment = UnsafeMutableRawBufferPointer(start: destination, count: length)

        if isIPv6 {
            // IPv6: the payload length (the header has no identification and no checksum).
            segment.storeBytes(of: UInt16(length - ipHeaderLength).bigEndian, toByteOffset: 4, as: UInt16.self)
        } else {
            // IPv4: total length, identification, header checksum.
            segment.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            let identification = UnsafeRawBufferPointer(segment).uint16(at: 4) &+ UInt16(truncatingIfNeeded: index)
            segment.storeBytes(of: identification.bigEndian, toByteOffset: 4, as: UInt16.self)
            segment.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let ipChecksum = InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: segment[0..<ipHeaderLength]))
            segment.storeBytes(of: ipChecksum.bigEndian, toByteOffset: 10, as: UInt16.self)
        }

        let transport = ipHeaderLength
        let checksumOffset: Int
        if isTCP {
            // TCP: sequence number, flags.
            let sequence = UInt32(bigEndian: segment.loadUnaligned(fromByteOffset: transport + 4, as: UInt32.self)) &+ UInt32(truncatingIfNeeded: offset)
            segment.storeBytes(of: sequence.bigEndian, toByteOffset: transport + 4, as: UInt32.self)
            let fin: UInt8 = 0x01, psh: UInt8 = 0x08, cwr: UInt8 = 0x80
            if index < segmentCount - 1 { segment[transport + 13] &= ~(fin | psh) }
            if index > 0 { segment[transport + 13] &= ~cwr }
            checksumOffset = transport + 16
        } else {
            // UDP: this datagram's length.
            segment.storeBytes(of: UInt16(length - transport).bigEndian, toByteOffset: transport + 4, as: UInt16.self)
            checksumOffset = transport + 6
        }
        // The checksum over the pseudo-header and the segment.
        segment.storeBytes(of: UInt16(0), toByteOffset: checksumOffset, as: UInt16.self)
        let bytes = UnsafeRawBufferPointer(segment)
        let pseudo = isIPv6 ? InternetChecksum.pseudoHeaderSum(ofIPv6: bytes, nextHeader: transportProtocol, transportLength: length - transport)
                            : InternetChecksum.pseudoHeaderSum(ofIPv4: bytes, protocol: transportProtocol, transportLength: length - transport)
        _ = ChecksumOffload.complete(segment, start: transport, offset: checksumOffset - transport, initial: pseudo)
        return length
    }
}
