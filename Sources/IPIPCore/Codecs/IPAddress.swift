/// What code written once for both families needs of an address: its width, its bits masked to a
/// prefix length, its text form, and a hash the prefix table can take the top bits of.
public protocol FamilyAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// 32 or 128: the longest prefix.
    static var bitWidth: Int { get }
    /// The all-zero address (the network of a default route).
    static var zero: Self { get }
    /// The strict text form of one address.
    init?(_ text: some StringProtocol)
    /// The address inside `address`, if it is of this family.
    init?(_ address: IPAddress)
    /// The address with every bit after the first `length` cleared.
    func masked(to length: Int) -> Self
    /// Well mixed in its high bits (Fibonacci hashing), so that consecutive networks land far apart.
    func mixedHash() -> UInt64
    /// Longest-prefix match in this family's half of a table of both families.
    static func lookup<Value>(_ address: Self, in table: PrefixTable<Value>) -> Value?
    /// The address as one of either family.
    var ipAddress: IPAddress { get }
}

extension IPv4Address: FamilyAddress {
    public init?(_ address: IPAddress) {
        guard case .v4(let address) = address else { return nil }
        self = address
    }
    public static var bitWidth: Int { 32 }
    public static var zero: IPv4Address { .any }
    public var ipAddress: IPAddress { .v4(self) }
    @inlinable @inline(__always)
    public static func lookup<Value>(_ address: IPv4Address, in table: PrefixTable<Value>) -> Value? { table.ipv4.lookup(address) }
    @inlinable @inline(__always)
    public func mixedHash() -> UInt64 { UInt64(value) &* 0x9E37_79B9_7F4A_7C15 }
}

extension IPv6Address: FamilyAddress {
    public init?(_ address: IPAddress) {
        guard case .v6(let address) = address else { return nil }
        self = address
    }
    public static var bitWidth: Int { 128 }
    public static var zero: IPv6Address { .unspecified }
    public var ipAddress: IPAddress { .v6(self) }
    @inlinable @inline(__always)
    public static func lookup<Value>(_ address: IPv6Address, in table: PrefixTable<Value>) -> Value? { table.ipv6.lookup(address) }
    @inlinable @inline(__always)
    public func mixedHash() -> UInt64 { (high ^ (low &* 0xC2B2_AE3D_27D4_EB4F)) &* 0x9E37_79B9_7F4A_7C15 }
}

/// A prefix of one family, such as 203.0.113.0/24 or 2001:db8:b::/64. The address keeps whatever bits
/// it was given, so validation can report host bits set; `network` is the canonical form.
@frozen
public struct NetworkPrefix<Address: FamilyAddress>: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var address: Address
    public var length: Int

    @inlinable
    public init(_ address: Address, length: Int) {
        precondition((0...Address.bitWidth).contains(length), "prefix length out of range")
        self.address = address
        self.length = length
    }

    /// Parses "address/n" (n in decimal, at most as many digits as the family's width has); a bare
    /// address is a host prefix (/32, /128).
    public init?(_ text: some StringProtocol) {
        let bytes = text.utf8
        guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else {
            guard let address = Address(text) else { return nil }
            self.init(address, length: Address.bitWidth)
            return
        }
        guard let address = Address(text[..<slash]) else { return nil }
        let digits = bytes[bytes.index(after: slash)...]
        guard !digits.isEmpty, digits.count <= String(Address.bitWidth).utf8.count,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        let length = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard length <= Address.bitWidth else { return nil }
        self.init(address, length: length)
    }

    public var network: NetworkPrefix { NetworkPrefix(address.masked(to: length), length: length) }
    public var hasHostBitsSet: Bool { address.masked(to: length) != address }

    @inlinable @inline(__always)
    public func contains(_ other: Address) -> Bool { other.masked(to: length) == address.masked(to: length) }
    /// True when every address of `other` is inside this prefix.
    public func contains(_ other: NetworkPrefix) -> Bool { other.length >= length && contains(other.address) }

    public var description: String { "\(address)/\(length)" }

    public static func < (lhs: NetworkPrefix, rhs: NetworkPrefix) -> Bool {
        (lhs.address, lhs.length) < (rhs.address, rhs.length)
    }
}

public typealias IPv4Prefix = NetworkPrefix<IPv4Address>
public typealias IPv6Prefix = NetworkPrefix<IPv6Address>

extension NetworkPrefix where Address == IPv4Address {
    /// The netmask as a host-order value (a BPF filter's operand).
    public var mask: UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }
}

/// An address of either family, as a config's `address:` of a ghost host or an uplink holds it.
/// Orders IPv4 before IPv6, each by value.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// IPv6 when the text has a ':', else IPv4; each family's strict form.
    public init?(_ text: some StringProtocol) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let address = IPv6Address(text) else { return nil }
            self = .v6(address)
        } else {
            guard let address = IPv4Address(text) else { return nil }
            self = .v4(address)
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { true } else { false }
    }

    /// Not unspecified, loopback, multicast or (IPv4) class E / broadcast, nor IPv4-mapped: what a
    /// tunnel endpoint or a host may be.
    public var isUnicastCandidate: Bool {
        switch self {
        case .v4(let address): address.isUnicastCandidate && !address.isLoopback
        case .v6(let address): address.isUnicastCandidate
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }
}

/// A prefix of either family, as one `routes` or `accept-sources` list holds them. Orders IPv4 before
/// IPv6, each as `NetworkPrefix` does.
public enum IPPrefix: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Prefix)
    case v6(IPv6Prefix)

    /// IPv6 when the text has a ':', else IPv4.
    public init?(_ text: some StringProtocol) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let prefix = IPv6Prefix(text) else { return nil }
            self = .v6(prefix)
        } else {
            guard let prefix = IPv4Prefix(text) else { return nil }
            self = .v4(prefix)
        }
    }

    public var isIPv6: Bool { address.isIPv6 }

    /// The prefix of `address` alone: a /32 or a /128.
    public init(host address: IPAddress) {
        switch address {
        case .v4(let address): self = .v4(IPv4Prefix(address, length: 32))
        case .v6(let address): self = .v6(IPv6Prefix(address, length: 128))
        }
    }

    public var length: Int {
        switch self {
        case .v4(let prefix): prefix.length
        case .v6(let prefix): prefix.length
        }
    }

    /// The address as given (host bits included).
    public var address: IPAddress {
        switch self {
        case .v4(let prefix): .v4(prefix.address)
        case .v6(let prefix): .v6(prefix.address)
        }
    }

    public var network: IPPrefix {
        switch self {
        case .v4(let prefix): .v4(prefix.network)
        case .v6(let prefix): .v6(prefix.network)
        }
    }

    /// True when every address of `other` is inside this prefix (never across families).
    public func contains(_ other: IPPrefix) -> Bool {
        switch (self, other) {
        case (.v4(let prefix), .v4(let other)): prefix.contains(other)
        case (.v6(let prefix), .v6(let other)): prefix.contains(other)
        default: false
        }
    }

    public var description: String {
        switch self {
        case .v4(let prefix): prefix.description
        case .v6(let prefix): prefix.description
        }
    }
}
