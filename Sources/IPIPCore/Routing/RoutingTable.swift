/// IPv4 longest-prefix-match table: prefix → value (a tunnel peer).
///
/// One open-addressing hash table per prefix length in use (linear probing, at most half full, keyed
/// by a multiplicative hash of the network), plus a bitmap of the lengths in use: a lookup probes the
/// lengths that exist, longest first, about one cache line each, however many prefixes a length holds
/// — a hub's 100,000 cost what ten do. No allocation per lookup, and no seeded SipHash (Swift's
/// `Dictionary` costs more than the whole probe). Tables are built at once (a config, a kernel route
/// dump); `insert` and `remove` rebuild and are for tests and small tables, never per packet. The
/// lookup is inlinable, so that code in other modules (the benchmarks) gets it specialized, as the
/// packet paths in this module do.
@frozen
public struct RoutingTable<Value: Sendable>: Sendable {
    /// Every length's table, one after the other. A slot is 0 when empty, else the network in the
    /// high 32 bits and its value's index + 1 in the low 32.
    @usableFromInline var slots: [UInt64] = []
    /// Per length: where its table starts in `slots` (high bits) and log2 of its size (low 6 bits).
    @usableFromInline var tables = [Int](repeating: 0, count: 33)
    @usableFromInline var values: [Value] = []
    /// Bit n set ⇔ some prefix of length n exists.
    @usableFromInline var lengthsInUse: UInt64 = 0

    public init() {}

    /// A table of `entries` built at once. Where a prefix comes more than once, `combine(earlier, later)`
    /// decides, as `Dictionary(_:uniquingKeysWith:)`. Host bits are ignored.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (IPv4Prefix, Value) {
        var byLength: [[UInt32: Int]] = Array(repeating: [:], count: 33)   // network → index in `values`
        for (prefix, value) in entries {
            let network = prefix.network.address.value
            if let index = byLength[prefix.length][network] {
                values[index] = combine(values[index], value)
            } else {
                byLength[prefix.length][network] = values.count
                values.append(value)
            }
        }
        for length in 0...32 where !byLength[length].isEmpty {
            // Twice the entries, rounded up to a power of two: probes stay short.
            let bits = max(2, Int.bitWidth - (byLength[length].count * 2 - 1).leadingZeroBitCount)
            tables[length] = slots.count << 6 | bits
            slots += repeatElement(0, count: 1 << bits)
            lengthsInUse |= 1 << UInt64(length)
            for (network, index) in byLength[length] {
                var slot = Self.home(of: network, bits: bits)
                while slots[tables[length] >> 6 + slot] != 0 { slot = (slot + 1) & (1 << bits - 1) }
                slots[tables[length] >> 6 + slot] = UInt64(network) << 32 | UInt64(index + 1)
            }
        }
    }

    /// Fibonacci hashing: the top `bits` of the network times 2^64/φ. Consecutive networks (a hub's
    /// /32s) land far apart.
    @inlinable @inline(__always)
    static func home(of network: UInt32, bits: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(network) &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - bits))
    }

    public var count: Int { values.count }
    public var isEmpty: Bool { lengthsInUse == 0 }

    /// Index in `values` of exactly `network`/`length`, if present.
    @inlinable @inline(__always)
    func find(_ network: UInt32, length: Int, in slots: UnsafeBufferPointer<UInt64>) -> Int? {
        let table = tables[length], start = table >> 6, bits = table & 63
        let mask = 1 << bits - 1
        var slot = Self.home(of: network, bits: bits)
        while true {
            let content = slots[start + slot]
            if content == 0 { return nil }
            if UInt32(truncatingIfNeeded: content >> 32) == network { return Int(truncatingIfNeeded: content & 0xFFFF_FFFF) - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Longest-prefix match for `address`.
    @inlinable @inline(__always)
    public func lookup(_ address: IPv4Address) -> Value? {
        lookupEntry(address)?.value
    }

    @inlinable
    public func lookupEntry(_ address: IPv4Address) -> (prefix: IPv4Prefix, value: Value)? {
        slots.withUnsafeBufferPointer { slots in
            var remaining = lengthsInUse
            while remaining != 0 {
                let length = 63 - remaining.leadingZeroBitCount
                remaining &= ~(1 << UInt64(length))
                let network = address.value & (length == 0 ? 0 : UInt32.max << (32 - length))
                if let index = find(network, length: length, in: slots) {
                    return (IPv4Prefix(IPv4Address(network), length: length), values[index])
                }
            }
            return nil
        }
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: IPv4Prefix) -> Value? {
        guard lengthsInUse & (1 << UInt64(prefix.length)) != 0 else { return nil }
        return slots.withUnsafeBufferPointer { slots in
            find(prefix.network.address.value, length: prefix.length, in: slots).map { values[$0] }
        }
    }

    /// Every entry, longest prefixes first, then by address.
    public var entries: [(prefix: IPv4Prefix, value: Value)] {
        (0...32).reversed().flatMap { length -> [(prefix: IPv4Prefix, value: Value)] in
            guard lengthsInUse & (1 << UInt64(length)) != 0 else { return [] }
            let start = tables[length] >> 6, size = 1 << (tables[length] & 63)
            return slots[start..<(start + size)].filter { $0 != 0 }
                .map { (network: UInt32(truncatingIfNeeded: $0 >> 32), index: Int(truncatingIfNeeded: $0 & 0xFFFF_FFFF) - 1) }
                .sorted { $0.network < $1.network }
                .map { (IPv4Prefix(IPv4Address($0.network), length: length), values[$0.index]) }
        }
    }

    /// Inserts or replaces the value for `prefix` (host bits are ignored). Returns the replaced value.
    /// Rebuilds the table: for tests and small tables.
    @discardableResult
    public mutating func insert(_ prefix: IPv4Prefix, _ value: Value) -> Value? {
        let previous = self.value(for: prefix)
        self = RoutingTable(entries.map { ($0.prefix, $0.value) } + [(prefix, value)], uniquingPrefixesWith: { _, later in later })
        return previous
    }

    /// Removes `prefix`; returns its value. Rebuilds the table: for tests and small tables.
    @discardableResult
    public mutating func remove(_ prefix: IPv4Prefix) -> Value? {
        guard let previous = self.value(for: prefix) else { return nil }
        let removed = prefix.network
        self = RoutingTable(entries.lazy.filter { $0.prefix != removed }.map { ($0.prefix, $0.value) },
                            uniquingPrefixesWith: { _, later in later })
        return previous
    }
}
