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

    public enum Segmentation: Equatable, Sendable {
        case none
        case tcpIPv4(segmentSize: Int)
        /// A kind ipipd does not ask for (UDP, IPv6, ECN-marked TCP): never expected, dropped.
        case unsupported(UInt8)
    }

    /// Where the partial checksum's sum starts, and where its result goes (relative to `start`).
    public var checksum: (start: Int, offset: Int)?
    public var segmentation: Segmentation

    /// For a packet ipipd writes: the length of its IP and TCP headers (hdr_len), 0 when not segmented.
    public var headersLength: Int

    public init(checksum: (start: Int, offset: Int)?, segmentation: Segmentation, headersLength: Int = 0) {
        self.checksum = checksum
        self.segmentation = segmentation
        self.headersLength = headersLength
    }

    /// Parses the header (native byte order, which is little-endian on every architecture ipipd builds for).
    public init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        let flags = bytes[0], type = bytes[1]
        func field(_ offset: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
        checksum = flags & Self.needsChecksumFlag != 0 ? (field(6), field(8)) : nil
        headersLength = field(2)
        switch type {
        case 0: segmentation = .none
        case 1: segmentation = .tcpIPv4(segmentSize: field(4))
        default: segmentation = .unsupported(type)
        }
    }

    /// Writes the header, as the TUN device reads it before a packet written to it.
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        func store(_ value: Int, at offset: Int) {
            bytes.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, toByteOffset: offset, as: UInt16.self)
        }
        bytes[0] = checksum == nil ? 0 : Self.needsChecksumFlag
        let segmentSize: Int
        switch segmentation {
        case .none: (bytes[1], segmentSize) = (0, 0)
        case .tcpIPv4(let size): (bytes[1], segmentSize) = (1, size)
        case .unsupported(let type): (bytes[1], segmentSize) = (type, 0)
        }
        store(headersLength, at: 2)
        store(segmentSize, at: 4)
        store(checksum?.start ?? 0, at: 6)
        store(checksum?.offset ?? 0, at: 8)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.checksum?.start == rhs.checksum?.start && lhs.checksum?.offset == rhs.checksum?.offset
            && lhs.segmentation == rhs.segmentation
    }
}

public enum ChecksumOffload {
    /// Completes a checksum the kernel left partial (CHECKSUM_PARTIAL): the field at `start + offset`
    /// already holds the pseudo-header sum; the one's-complement sum from `start` to the end goes there.
    /// False when the positions do not fit the packet.
    @inline(__always)
    public static func complete(_ packet: UnsafeMutableRawBufferPointer, start: Int, offset: Int) -> Bool {
        guard start >= 0, offset >= 0, start + offset + 2 <= packet.count else { return false }
        let sum = InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: packet[start...]))
        var result = ~UInt16(truncatingIfNeeded: sum)
        // A UDP checksum of zero means "none": the kernel, like RFC 768, sends 0xFFFF instead.
        let transport = packet.count > 9 ? (packet[0] >> 4 == 6 ? packet[6] : packet[9]) : 0
        if result == 0 && transport == IPProtocolNumber.udp { result = 0xFFFF }
        packet.storeBytes(of: result.bigEndian, toByteOffset: start + offset, as: UInt16.self)
        return true
    }
}

/// Cuts a TCP/IPv4 super-packet into segments of at most `segmentSize` payload bytes, the way the
/// kernel's tcp_gso_segment would: the IP identification counts up from the super-packet's, the
/// sequence number advances by the payload before it, FIN and PSH stay on the last segment only and
/// CWR on the first only; IP and TCP checksums are computed in full.
public struct TCPSegmenter {
    private let packet: UnsafeRawBufferPointer
    private let ipHeaderLength: Int
    private let headersLength: Int
    private let segmentSize: Int
    public let segmentCount: Int

    /// Nil when `packet` is not a well-formed TCP/IPv4 packet with a payload to cut.
    public init?(superPacket packet: UnsafeRawBufferPointer, segmentSize: Int) {
        guard segmentSize > 0, packet.count >= 40, packet[0] >> 4 == 4, packet[9] == IPProtocolNumber.tcp else { return nil }
        let ipHeaderLength = Int(packet[0] & 0x0F) * 4
        guard ipHeaderLength >= 20, packet.count >= ipHeaderLength + 20 else { return nil }
        let tcpHeaderLength = Int(packet[ipHeaderLength + 12] >> 4) * 4
        guard tcpHeaderLength >= 20, packet.count >= ipHeaderLength + tcpHeaderLength else { return nil }
        self.packet = packet
        self.ipHeaderLength = ipHeaderLength
        headersLength = ipHeaderLength + tcpHeaderLength
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

        // IPv4: total length, identification, header checksum.
        segment.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
        let identification = UnsafeRawBufferPointer(segment).uint16(at: 4) &+ UInt16(truncatingIfNeeded: index)
        segment.storeBytes(of: identification.bigEndian, toByteOffset: 4, as: UInt16.self)
        segment.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        let ipChecksum = InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: segment[0..<ipHeaderLength]))
        segment.storeBytes(of: ipChecksum.bigEndian, toByteOffset: 10, as: UInt16.self)

        // TCP: sequence number, flags, checksum over the pseudo-header and the segment.
        let tcp = ipHeaderLength
        let sequence = UInt32(bigEndian: segment.loadUnaligned(fromByteOffset: tcp + 4, as: UInt32.self)) &+ UInt32(truncatingIfNeeded: offset)
        segment.storeBytes(of: sequence.bigEndian, toByteOffset: tcp + 4, as: UInt32.self)
        let fin: UInt8 = 0x01, psh: UInt8 = 0x08, cwr: UInt8 = 0x80
        if index < segmentCount - 1 { segment[tcp + 13] &= ~(fin | psh) }
        if index > 0 { segment[tcp + 13] &= ~cwr }
        segment.storeBytes(of: UInt16(0), toByteOffset: tcp + 16, as: UInt16.self)
        let tcpLength = length - tcp
        let pseudoHeader = InternetChecksum.pseudoHeaderSum(ofIPv4: UnsafeRawBufferPointer(segment), protocol: IPProtocolNumber.tcp,
                                                            transportLength: tcpLength)
        let tcpChecksum = ~UInt16(truncatingIfNeeded: InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: segment[tcp...]),
                                                                                  initial: pseudoHeader))
        segment.storeBytes(of: tcpChecksum.bigEndian, toByteOffset: tcp + 16, as: UInt16.self)
        return length
    }
}
