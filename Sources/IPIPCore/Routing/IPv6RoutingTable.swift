/// IPv6 longest-prefix-match table: prefix → value (a tunnel peer), shaped like `RoutingTable`: one
/// open-addressing hash table per prefix length in use, probed longest length first, no allocation per
/// lookup. Built at once from a config; `insert` rebuilds and is for tests.
public struct IPv6RoutingTable<Value: Sendable>: Sendable {
    /// Every length's table one after the other: the network of each occupied slot, and its value's
    /// index + 1 (0: empty).
    private var keys: [IPv6Address] = []
    private var indexes: [Int32] = []
    /// The lengths in use, longest first, with where each one's table starts and log2 of its size.
    private var lengths: [(length: Int, start: Int, bits: Int)] = []
    private var values: [Value] = []

    public init() {}

    /// A table of `entries` built at once; where a prefix comes more than once, `combine(earlier, later)`
    /// decides. Host bits are ignored.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (IPv6Prefix, Value) {
        var byLength: [Int: [IPv6Address: Int]] = [:]
        for (prefix, value) in entries {
            let network = prefix.network.address
            if let index = byLength[prefix.length]?[network] {
                values[index] = combine(values[index], value)
            } else {
                byLength[prefix.length, default: [:]][network] = values.count
                values.append(value)
            }
        }
        for length in byLength.keys.sorted(by: >) {
            let networks = byLength[length]!
            let bits = max(2, Int.bitWidth - (networks.count * 2 - 1).leadingZeroBitCount)
            let start = keys.count
            keys += repeatElement(.unspecified, count: 1 << bits)
            indexes += repeatElement(0, count: 1 << bits)
            lengths.append((length, start, bits))
            for (network, index) in networks {
                var slot = Self.home(of: network, bits: bits)
                while indexes[start + slot] != 0 { slot = (slot + 1) & (1 << bits - 1) }
                keys[start + slot] = network
                indexes[start + slot] = Int32(index + 1)
            }
        }
    }

    @inline(__always)
    static func home(of network: IPv6Address, bits: Int) -> Int {
        let mixed = (network.high ^ (network.low &* 0xC2B2_AE3D_27D4_EB4F)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - bits))
    }

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    @inline(__always)
    private func find(_ network: IPv6Address, start: Int, bits: Int) -> Int? {
        let mask = 1 << bits - 1
        var slot = Self.home(of: network, bits: bits)
        while true {
            let index = indexes[start + slot]
            if index == 0 { return nil }
            if keys[start + slot] == network { return Int(index) - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Longest-prefix match for `address`.
    @inline(__always)
    public func lookup(_ address: IPv6Address) -> Value? { lookupEntry(address)?.value }

    public func lookupEntry(_ address: IPv6Address) -> (prefix: IPv6Prefix, value: Value)? {
        for (length, start, bits) in lengths {
            let network = address.masked(to: length)
            if let index = find(network, start: start, bits: bits) {
                return (IPv6Prefix(network, length: length), values[index])
            }
        }
        return nil
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: IPv6Prefix) -> Value? {
        guard let table = lengths.first(where: { $0.length == prefix.length }) else { return nil }
        return find(prefix.network.address, start: table.start, bits: table.bits).map { values[$0] }
    }

    /// Every entry, longest prefixes first, then by address.
    public var entries: [(prefix: IPv6Prefix, value: Value)] {
        lengths.flatMap { length, start, bits in
            (start..<(start + 1 << bits)).filter { indexes[$0] != 0 }
                .map { (prefix: IPv6Prefix(keys[$0], length: length), value: values[Int(indexes[$0]) - 1]) }
                .sorted { $0.prefix.address < $1.prefix.address }
        }
    }

    /// Inserts or replaces the value for `prefix`; returns the replaced value. Rebuilds: for tests.
    @discardableResult
    public mutating func insert(_ prefix: IPv6Prefix, _ value: Value) -> Value? {
        let previous = self.value(for: prefix)
        self = IPv6RoutingTable(entries.map { ($0.prefix, $0.value) } + [(prefix, value)], uniquingPrefixesWith: { _, later in later })
        return previous
    }
}
