/// An IPv6 address as two host-order 64-bit halves; parses RFC 4291 §2.2 text and prints the RFC 5952
/// canonical form (lower case, the longest run of zero groups as "::").
@frozen
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Eight 16-bit groups, most significant first.
    public init(groups: [UInt16]) {
        precondition(groups.count == 8)
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// Strict text form: eight groups of 1–4 hex digits, or fewer around one "::"; no zone ("%eth0"),
    /// no prefix length, no embedded dotted quad (a config has no use for IPv4-mapped addresses).
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.count <= 39 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawDoubleColon = false
        var index = 0
        if bytes.starts(with: [0x3A, 0x3A]) {
            sawDoubleColon = true
            index = 2
            if index == bytes.count { self.init(high: 0, low: 0); return }
        } else if bytes[0] == 0x3A {
            return nil
        }
        while index < bytes.count {
            var value: UInt16 = 0, digits = 0
            while index < bytes.count, let digit = Self.hexValue(bytes[index]) {
                guard digits < 4 else { return nil }
                value = value << 4 | UInt16(digit)
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if sawDoubleColon { tail.append(value) } else { head.append(value) }
            guard index < bytes.count else { break }
            guard bytes[index] == 0x3A else { return nil }
            index += 1
            if index < bytes.count, bytes[index] == 0x3A {
                guard !sawDoubleColon else { return nil }
                sawDoubleColon = true
                index += 1
                if index == bytes.count { break }
            } else if index == bytes.count {
                return nil   // a single trailing ':'
            }
        }
        let count = head.count + tail.count
        if sawDoubleColon {
            guard count <= 7 else { return nil }
            self.init(groups: head + Array(repeating: 0, count: 8 - count) + tail)
        } else {
            guard count == 8 else { return nil }
            self.init(groups: head)
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// ::ffff:a.b.c.d, the IPv4 address in IPv6's form (a key that holds either family).
    public init(mapping address: IPv4Address) {
        self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(address.value))
    }

    public static let unspecified = IPv6Address(high: 0, low: 0)
    public static let loopback = IPv6Address(high: 0, low: 1)
    /// ff02::1, every node on the link: where unsolicited Neighbor Advertisements go.
    public static let allNodes = IPv6Address(high: 0xFF02 << 48, low: 1)

    public var groups: [UInt16] {
        (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64($0))) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64($0))) }
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
    }

    public var isUnspecified: Bool { high == 0 && low == 0 }
    public var isLoopback: Bool { high == 0 && low == 1 }
    public var isMulticast: Bool { high >> 56 == 0xFF }
    public var isLinkLocal: Bool { high >> 54 == 0xFE80 >> 6 }
    /// ::ffff:0:0/96: an IPv4 address in IPv6 clothing, never on the wire (RFC 4291 §2.5.5.2).
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xFFFF }
    /// What a unicast host or ghost may be: not ::, ::1, multicast or IPv4-mapped.
    public var isUnicastCandidate: Bool { !isUnspecified && !isLoopback && !isMulticast && !isIPv4Mapped }

    /// ff02::1:ffXX:XXXX, the solicited-node multicast address Neighbor Solicitations for this
    /// address are sent to (RFC 4291 §2.7.1).
    public var solicitedNode: IPv6Address {
        IPv6Address(high: 0xFF02 << 48, low: 0x0000_0001_FF00_0000 | (low & 0xFF_FFFF))
    }

    /// 33:33 and the low 32 bits: the Ethernet address of a multicast IPv6 address (RFC 2464 §7).
    public var multicastMAC: MACAddress { MACAddress(value: 0x3333 << 32 | (low & 0xFFFF_FFFF)) }

    public var description: String {
        let groups = self.groups
        // The longest run of two or more zero groups, the first of equal ones (RFC 5952 §4.2).
        var bestStart = -1, bestLength = 1, start = 0
        while start < 8 {
            guard groups[start] == 0 else { start += 1; continue }
            var end = start
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - start > bestLength { (bestStart, bestLength) = (start, end - start) }
            start = end
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    @inlinable
    public static func == (lhs: IPv6Address, rhs: IPv6Address) -> Bool { lhs.high == rhs.high && lhs.low == rhs.low }
    @inlinable
    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }

    /// The address with every bit after the first `length` cleared.
    @inlinable @inline(__always)
    public func masked(to length: Int) -> IPv6Address {
        if length >= 128 { return self }
        if length >= 64 { return IPv6Address(high: high, low: length == 64 ? 0 : low & (UInt64.max << UInt64(128 - length))) }
        return IPv6Address(high: length == 0 ? 0 : high & (UInt64.max << UInt64(64 - length)), low: 0)
    }
}

/// IPv6 next-header values ipipd deals with.
public enum IPv6NextHeader {
    public static let icmpv6: UInt8 = 58
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
}

extension IPProtocolNumber {
    /// IPv6 encapsulated in IPv4 (RFC 4213 §3.5): 6in4, what Linux's sit sends.
    public static let ipv6: UInt8 = 41
}

/// The extension headers of an IPv6 packet (RFC 8200 §4), as a router that forwards it must judge them:
/// a Routing Header of type 0 is refused (RFC 5095: it lets the sender pick the path, and amplifies), as
/// are chains longer than any sender needs (RFC 8504 §5.3 leaves the limit to the node: 8 headers, in
/// the first 512 bytes of the payload), a Hop-by-Hop header anywhere but first, and a chain that runs
/// past the packet.
public enum IPv6ExtensionHeaders {
    public enum Verdict: Equatable, Sendable { case acceptable, routingType0, overLimit, malformed }

    public static let hopByHop: UInt8 = 0
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let destinationOptions: UInt8 = 60
    public static let authentication: UInt8 = 51
    /// Mobility (135), HIP (139), Shim6 (140): the generic length format of RFC 8200 §4.
    public static let maximumCount = 8
    public static let maximumChainBytes = 512

    /// Walks the chain from the fixed header's next header up to the first header that is none of
    /// these (an upper layer, ESP, "no next header", or the rest of a non-first fragment).
    @inline(__always)
    public static func judge(_ packet: IPv6PacketView) -> Verdict {
        let payload = packet.payload
        var next = packet.nextHeader, offset = 0, count = 0
        while true {
            let length: Int
            switch next {
            case hopByHop, routing, destinationOptions, 135, 139, 140:
                if next == hopByHop && count > 0 { return .malformed }   // only right after the fixed header
                guard offset + 8 <= payload.count else { return .malformed }
                length = (Int(payload[offset + 1]) + 1) * 8
                if next == routing && payload[offset + 2] == 0 { return .routingType0 }
            case fragment:
                guard offset + 8 <= payload.count else { return .malformed }
                length = 8
                // A later fragment carries no headers of its own past this one.
                if payload.uint16(at: offset + 2) & 0xFFF8 != 0 { return .acceptable }
            case authentication:
                guard offset + 8 <= payload.count else { return .malformed }
                length = (Int(payload[offset + 1]) + 2) * 4
            default:
                return .acceptable
            }
            count += 1
            guard count <= maximumCount, offset + length <= maximumChainBytes else { return .overLimit }
            guard offset + length <= payload.count else { return .malformed }
            next = payload[offset]
            offset += length
        }
    }
}

extension IPv6ExtensionHeaders {
    /// The Tunnel Encapsulation Limit option in the chain of Hop-by-Hop, Routing and Destination Options
    /// headers that starts with `next` (its value and offset in the packet), if there is one; the walk
    /// stops at any other header and within the chain's bounds.
    static func encapsulationLimit(in packet: IPv6PacketView, first next: inout UInt8) -> (offset: Int, value: UInt8)? {
        let payload = packet.payload
        var offset = 0, count = 0
        while next == hopByHop || next == routing || next == destinationOptions {
            count += 1
            guard count <= maximumCount, offset + 8 <= payload.count else { return nil }
            let length = (Int(payload[offset + 1]) + 1) * 8
            guard offset + length <= payload.count, offset + length <= maximumChainBytes else { return nil }
            if next == destinationOptions {
                var found: Int?
                if IPv6Options.judge(UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]), limitOffset: &found) != .malformed,
                   let found {
                    return (IPv6PacketView.headerLength + offset + found, payload[offset + found])
                }
            }
            next = payload[offset]
            offset += length
        }
        return nil
    }
}

/// Why an IPv6 header was rejected.
public enum IPv6ParseError: Error, Hashable, Sendable {
    case truncated            // fewer than 40 bytes, or fewer than the payload length claims
    case badVersion           // version field is not 6
    case lengthMismatch       // (exact mode) the payload length does not account for every byte
}

/// A validated, read-only view of an IPv6 packet (RFC 8200 §3) over raw bytes, trimmed to its length.
public struct IPv6PacketView {
    public static let headerLength = 40
    public let bytes: UnsafeRawBufferPointer

    /// With `exactLength` the payload length must account for exactly the buffer (an inner packet);
    /// otherwise trailing bytes are cut off. A payload length of 0 (a jumbogram's) is refused: no link
    /// ipipd serves carries one.
    @inline(__always)
    public init(validating buffer: UnsafeRawBufferPointer, exactLength: Bool = false) throws(IPv6ParseError) {
        guard buffer.count >= Self.headerLength else { throw .truncated }
        guard buffer[0] >> 4 == 6 else { throw .badVersion }
        let total = Self.headerLength + Int(buffer.uint16(at: 4))
        guard total <= buffer.count else { throw .truncated }
        if exactLength && total != buffer.count { throw .lengthMismatch }
        bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<total])
    }

    /// The traffic class: DSCP in the high six bits, ECN in the low two, as IPv4's TOS byte.
    @inline(__always) public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.uint16(at: 0) >> 4) }
    @inline(__always) public var ecn: ECN { ECN(rawValue: trafficClass & 0b11)! }
    @inline(__always) public var payloadLength: Int { Int(bytes.uint16(at: 4)) }
    @inline(__always) public var nextHeader: UInt8 { bytes[6] }
    @inline(__always) public var hopLimit: UInt8 { bytes[7] }
    @inline(__always) public var source: IPv6Address { bytes.ipv6Address(at: 8) }
    @inline(__always) public var destination: IPv6Address { bytes.ipv6Address(at: 24) }
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[Self.headerLength...]) }
}

/// In-place edits of an IPv6 header (it has no checksum to update).
public enum IPv6HeaderEditor {
    /// Sets the ECN field to CE (RFC 6040 §4.2: an outer CE over an ECN-capable inner packet).
    @inline(__always)
    public static func setCE(_ packet: UnsafeMutableRawBufferPointer) {
        packet[1] |= 0x30
    }
}

/// The fields of an IPv6 header ipipd writes (ICMPv6 errors, Neighbor Advertisements).
public struct IPv6HeaderFields {
    public var trafficClass: UInt8 = 0
    public var payloadLength: Int
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address

    public init(payloadLength: Int, nextHeader: UInt8, hopLimit: UInt8, source: IPv6Address, destination: IPv6Address) {
        self.payloadLength = payloadLength
        self.nextHeader = nextHeader
        self.hopLimit = hopLimit
        self.source = source
        self.destination = destination
    }

    public func write(into buffer: UnsafeMutableRawBufferPointer) {
        buffer.setUInt32(6 << 28 | UInt32(trafficClass) << 20, at: 0)
        buffer.setUInt16(UInt16(payloadLength), at: 4)
        buffer[6] = nextHeader
        buffer[7] = hopLimit
        buffer.setIPv6Address(source, at: 8)
        buffer.setIPv6Address(destination, at: 24)
    }
}

/// ICMPv6 (RFC 4443) message types ipipd reads or writes.
public enum ICMPv6Type {
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let parameterProblem: UInt8 = 4
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136

    /// Types 0–127 are errors (RFC 4443 §2.1): never answered with another error.
    public static func isError(_ type: UInt8) -> Bool { type < 128 }
}

/// ICMPv6 destination-unreachable codes (RFC 4443 §3.1).
public enum ICMPv6UnreachableCode {
    public static let noRoute: UInt8 = 0
    public static let addressUnreachable: UInt8 = 3
}

extension InternetChecksum {
    /// The sum of an IPv6 packet's pseudo-header (RFC 8200 §8.1: source, destination, upper-layer length,
    /// next header), folded to 16 bits: the start of an upper-layer checksum over that length.
    @inline(__always)
    public static func pseudoHeaderSum(ofIPv6 packet: UnsafeRawBufferPointer, nextHeader: UInt8, transportLength: Int) -> UInt32 {
        partialSum(UnsafeRawBufferPointer(rebasing: packet[8..<40]),
                   initial: UInt32(nextHeader) + UInt32(transportLength & 0xFFFF) + UInt32(transportLength >> 16))
    }

    /// The checksum field value of an ICMPv6 (or any upper-layer) message in the IPv6 packet `packet`:
    /// over the pseudo-header and the payload, whose checksum field must be zero.
    public static func computeIPv6Upper(_ packet: UnsafeRawBufferPointer, nextHeader: UInt8) -> UInt16 {
        let payload = UnsafeRawBufferPointer(rebasing: packet[IPv6PacketView.headerLength...])
        return ~UInt16(partialSum(payload, initial: pseudoHeaderSum(ofIPv6: packet, nextHeader: nextHeader, transportLength: payload.count)))
    }

    /// True when the upper-layer checksum of `packet` (a validated IPv6 packet) verifies.
    public static func verifyIPv6Upper(_ packet: UnsafeRawBufferPointer, nextHeader: UInt8) -> Bool {
        let payload = UnsafeRawBufferPointer(rebasing: packet[IPv6PacketView.headerLength...])
        return partialSum(payload, initial: pseudoHeaderSum(ofIPv6: packet, nextHeader: nextHeader, transportLength: payload.count)) == 0xFFFF
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func ipv6Address(at offset: Int) -> IPv6Address {
        IPv6Address(high: UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
                    low: UInt64(bigEndian: loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
    }
}

extension UnsafeRawBufferPointer {
    /// The IPv6 address at `offset` (for modules outside the core).
    public func loadIPv6Address(at offset: Int) -> IPv6Address { ipv6Address(at: offset) }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func setIPv6Address(_ address: IPv6Address, at offset: Int) {
        storeBytes(of: address.high.bigEndian, toByteOffset: offset, as: UInt64.self)
        storeBytes(of: address.low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
    }
}

extension PacketWriter {
    public mutating func append(_ address: IPv6Address) { append(contentsOf: address.bytes) }
}
