/// An IPv4 address as a host-order 32-bit value; prints and parses in dotted-quad form.
@frozen
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    @inlinable
    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Strict dotted-quad parser: exactly four decimal octets, no leading zeros (which inet_aton would
    /// read as octal), no surrounding spaces. Reads the UTF-8 bytes once (a hub's config holds 100,000).
    public init?(_ text: some StringProtocol) {
        guard let value = Self.parse(text.utf8) else { return nil }
        self.value = value
    }

    static func parse(_ bytes: some Collection<UInt8>) -> UInt32? {
        var value: UInt32 = 0, octet: UInt32 = 0, digits = 0, dots = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                octet = 0
                digits = 0
                dots += 1
                continue
            }
            // A digit; after a first digit 0 (the octet still 0), none may follow: no octal look-alikes.
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits == 0 || octet != 0 else { return nil }
            octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
            digits += 1
            guard octet <= 255 else { return nil }
        }
        guard digits > 0, dots == 3 else { return nil }
        return value << 8 | octet
    }

    public static let any = IPv4Address(0)
    public static let broadcast = IPv4Address(0xFFFF_FFFF)

    public var octets: (UInt8, UInt8, UInt8, UInt8) {
        (UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value))
    }

    public var isMulticast: Bool { value >> 28 == 0xE }
    public var isLoopback: Bool { value >> 24 == 127 }
    public var isUnspecified: Bool { value == 0 }
    /// Limited broadcast, multicast, 0.0.0.0/8 and class E: never a unicast endpoint or ghost host.
    public var isUnicastCandidate: Bool {
        !(value >> 24 == 0 || isMulticast || value >> 28 == 0xF)
    }

    /// The address with every bit after the first `length` cleared.
    @inlinable @inline(__always)
    public func masked(to length: Int) -> IPv4Address {
        IPv4Address(length <= 0 ? 0 : length >= 32 ? value : value & UInt32.max << UInt32(32 - length))
    }

    public var description: String {
        let o = octets
        return "\(o.0).\(o.1).\(o.2).\(o.3)"
    }

    @inlinable
    public static func == (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value == rhs.value }
    @inlinable
    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// A 48-bit Ethernet address, kept in the low 48 bits of a UInt64 (first octet most significant).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        value = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    public init?(bytes array: some Collection<UInt8>) {
        guard array.count == 6 else { return nil }
        value = array.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Parses "aa:bb:cc:dd:ee:ff" (or with "-" separators).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).count == 6
            ? text.split(separator: ":", omittingEmptySubsequences: false)
            : text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var values: [UInt8] = []
        for part in parts {
            guard part.count == 2, part.allSatisfy(\.isHexDigit), let byte = UInt8(part, radix: 16) else { return nil }
            values.append(byte)
        }
        self.init(bytes: values)
    }

    public static let broadcast = MACAddress(value: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(value: 0)

    public var array: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64($0))) } }
    public var isMulticast: Bool { value >> 40 & 1 == 1 }

    public var description: String {
        array.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
