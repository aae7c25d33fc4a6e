/// IPv4 longest-prefix-match table: prefix → value (a tunnel peer).
///
/// One hash map per prefix length plus a bitmap of the lengths in use, so a lookup probes only the
/// lengths that exist, longest first. With the handful of lengths a tunnel config uses this is a few
/// hash probes and no allocation.
public struct RoutingTable<Value: Sendable>: Sendable {
    private var byLength: [[UInt32: Value]] = Array(repeating: [:], count: 33)
    /// Bit n set ⇔ some prefix of length n exists.
    private var lengthsInUse: UInt64 = 0

    public init() {}

    public var count: Int { byLength.reduce(0) { $0 + $1.count } }
    public var isEmpty: Bool { lengthsInUse == 0 }

    /// Inserts or replaces the value for `prefix` (host bits are ignored). Returns the replaced value.
    @discardableResult
    public mutating func insert(_ prefix: IPv4Prefix, _ value: Value) -> Value? {
        let key = prefix.network.address.value
        lengthsInUse |= 1 << UInt64(prefix.length)
        return byLength[prefix.length].updateValue(value, forKey: key)
    }

    @discardableResult
    public mutating func remove(_ prefix: IPv4Prefix) -> Value? {
        let removed = byLength[prefix.length].removeValue(forKey: prefix.network.address.value)
        if byLength[prefix.length].isEmpty { lengthsInUse &= ~(1 << UInt64(prefix.length)) }
        return removed
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: IPv4Prefix) -> Value? {
        byLength[prefix.length][prefix.network.address.value]
    }

    /// Longest-prefix match for `address`.
    @inline(__always)
    public func lookup(_ address: IPv4Address) -> Value? {
        lookupEntry(address)?.value
    }

    public func lookupEntry(_ address: IPv4Address) -> (prefix: IPv4Prefix, value: Value)? {
        var remaining = lengthsInUse
        while remaining != 0 {
            let length = 63 - remaining.leadingZeroBitCount
            remaining &= ~(1 << UInt64(length))
            let mask: UInt32 = length == 0 ? 0 : UInt32.max << (32 - length)
            if let value = byLength[length][address.value & mask] {
                return (IPv4Prefix(IPv4Address(address.value & mask), length: length), value)
            }
        }
        return nil
    }

    /// Every entry, longest prefixes first, then by address.
    public var entries: [(prefix: IPv4Prefix, value: Value)] {
        (0...32).reversed().flatMap { length in
            byLength[length].map { (IPv4Prefix(IPv4Address($0.key), length: length), $0.value) }
                .sorted { $0.0.address < $1.0.address }
        }
    }
}
