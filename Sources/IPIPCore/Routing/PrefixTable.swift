/// Longest-prefix-match table of one family: prefix → value (a tunnel peer, an accepted source, an
/// egress MTU).
///
/// One open-addressing hash table per prefix length in use (linear probing, at most half full, keyed
/// by a multiplicative hash of the network), visited longest length first: a lookup probes the
/// lengths that exist, about one cache line each, however many prefixes a length holds — a hub's
/// 100,000 cost what ten do. No allocation per lookup, and no seeded SipHash (Swift's `Dictionary`
/// costs more than the whole probe). Tables are built at once (a config, a kernel route dump);
/// `insert` and `remove` rebuild and are for tests and small tables, never per packet. The lookup is
/// inlinable, so that code in other modules (the benchmarks) gets it specialized for its family, as
/// the packet paths in this module do.
@frozen
public struct LongestPrefixMatch<Address: FamilyAddress, Value: Sendable>: Sendable {
    /// A network and its value's index + 1 (0: the slot is empty). 8 bytes for IPv4: a probe reads one word.
    @usableFromInline struct Slot: Sendable {
        @usableFromInline var network: Address
        @usableFromInline var index: UInt32
    }

    /// One length's table inside `slots`, packed into one word (a lookup walks them all): the prefix
    /// length in the low 8 bits, log2 of the table's size in the next 8, where it starts above.
    @usableFromInline struct LengthTable: Sendable {
        @usableFromInline let packed: Int
        @inlinable var length: Int { packed & 0xFF }
        @inlinable var bits: Int { packed >> 8 & 0xFF }
        @inlinable var start: Int { packed >> 16 }
        init(length: Int, start: Int, bits: Int) { packed = start << 16 | bits << 8 | length }
    }

    /// Every length's table, one after the other.
    @usableFromInline var slots: [Slot] = []
    /// The lengths in use, longest first.
    @usableFromInline var lengths: [LengthTable] = []
    @usableFromInline var values: [Value] = []

    public init() {}

    /// A table of `entries` built at once. Where a prefix comes more than once, `combine(earlier, later)`
    /// decides, as `Dictionary(_:uniquingKeysWith:)`. Host bits are ignored.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (NetworkPrefix<Address>, Value) {
        var byLength: [Int: [Address: Int]] = [:]   // length → network → index in `values`
        for (prefix, value) in entries {
            let network = prefix.address.masked(to: prefix.length)
            if let index = byLength[prefix.length]?[network] {
                values[index] = combine(values[index], value)
            } else {
                byLength[prefix.length, default: [:]][network] = values.count
                values.append(value)
            }
        }
        for length in byLength.keys.sorted(by: >) {
            let networks = byLength[length]!
            // Twice the entries, rounded up to a power of two: probes stay short.
            let bits = max(2, Int.bitWidth - (networks.count * 2 - 1).leadingZeroBitCount)
            let table = LengthTable(length: length, start: slots.count, bits: bits)
            slots += repeatElement(Slot(network: .zero, index: 0), count: 1 << bits)
            lengths.append(table)
            for (network, index) in networks {
                var slot = Self.home(of: network, bits: bits)
                while slots[table.start + slot].index != 0 { slot = (slot + 1) & (1 << bits - 1) }
                slots[table.start + slot] = Slot(network: network, index: UInt32(index + 1))
            }
        }
    }

    @inlinable @inline(__always)
    static func home(of network: Address, bits: Int) -> Int {
        Int(truncatingIfNeeded: network.mixedHash() >> UInt64(64 - bits))
    }

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    /// Index in `values` of exactly `network` in `table`, if present.
    @inlinable @inline(__always)
    static func find(_ network: Address, in table: LengthTable, _ slots: UnsafeBufferPointer<Slot>) -> Int? {
        let mask = 1 << table.bits - 1
        var slot = home(of: network, bits: table.bits)
        while true {
            let content = slots[table.start + slot]
            if content.index == 0 { return nil }
            if content.network == network { return Int(content.index) - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Longest-prefix match for `address`.
    @inlinable @inline(__always)
    public func lookup(_ address: Address) -> Value? {
        lookupEntry(address)?.value
    }

    @inlinable
    public func lookupEntry(_ address: Address) -> (prefix: NetworkPrefix<Address>, value: Value)? {
        slots.withUnsafeBufferPointer { slots in
            lengths.withUnsafeBufferPointer { lengths in
                for table in lengths {
                    let network = address.masked(to: table.length)
                    if let index = Self.find(network, in: table, slots) {
                        return (NetworkPrefix(network, length: table.length), values[index])
                    }
                }
                return nil
            }
        }
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: NetworkPrefix<Address>) -> Value? {
        guard let table = lengths.first(where: { $0.length == prefix.length }) else { return nil }
        return slots.withUnsafeBufferPointer { slots in
            Self.find(prefix.address.masked(to: prefix.length), in: table, slots).map { values[$0] }
        }
    }

    /// Every entry, longest prefixes first, then by address.
    public var entries: [(prefix: NetworkPrefix<Address>, value: Value)] {
        lengths.flatMap { table in
            slots[table.start..<(table.start + 1 << table.bits)].filter { $0.index != 0 }
                .sorted { $0.network < $1.network }
                .map { (NetworkPrefix($0.network, length: table.length), values[Int($0.index) - 1]) }
        }
    }

    /// Inserts or replaces the value for `prefix` (host bits are ignored). Returns the replaced value.
    /// Rebuilds the table: for tests and small tables.
    @discardableResult
    public mutating func insert(_ prefix: NetworkPrefix<Address>, _ value: Value) -> Value? {
        let previous = self.value(for: prefix)
        self = LongestPrefixMatch(entries.map { ($0.prefix, $0.value) } + [(prefix, value)], uniquingPrefixesWith: { _, later in later })
        return previous
    }

    /// Removes `prefix`; returns its value. Rebuilds the table: for tests and small tables.
    @discardableResult
    public mutating func remove(_ prefix: NetworkPrefix<Address>) -> Value? {
        guard let previous = self.value(for: prefix) else { return nil }
        let removed = prefix.network
        self = LongestPrefixMatch(entries.lazy.filter { $0.prefix != removed }.map { ($0.prefix, $0.value) },
                                  uniquingPrefixesWith: { _, later in later })
        return previous
    }
}

/// The longest-prefix-match table of both families behind one API: the routing table (prefix → peer),
/// a peer's accept-sources, the egress MTUs. A lookup goes straight to its family's table, so that
/// an IPv4 lookup costs what it did when the table held IPv4 only.
@frozen
public struct PrefixTable<Value: Sendable>: Sendable {
    public var ipv4: LongestPrefixMatch<IPv4Address, Value>
    public var ipv6: LongestPrefixMatch<IPv6Address, Value>

    public init(ipv4: LongestPrefixMatch<IPv4Address, Value> = .init(), ipv6: LongestPrefixMatch<IPv6Address, Value> = .init()) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    /// A table of `entries` of either family built at once; where a prefix comes more than once,
    /// `combine(earlier, later)` decides. Host bits are ignored.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (IPPrefix, Value) {
        var ipv4: [(IPv4Prefix, Value)] = [], ipv6: [(IPv6Prefix, Value)] = []
        for (prefix, value) in entries {
            switch prefix {
            case .v4(let prefix): ipv4.append((prefix, value))
            case .v6(let prefix): ipv6.append((prefix, value))
            }
        }
        self.init(ipv4: LongestPrefixMatch(ipv4, uniquingPrefixesWith: combine),
                  ipv6: LongestPrefixMatch(ipv6, uniquingPrefixesWith: combine))
    }

    /// A table of IPv4 prefixes only.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (IPv4Prefix, Value) {
        self.init(ipv4: LongestPrefixMatch(entries, uniquingPrefixesWith: combine))
    }

    public var count: Int { ipv4.count + ipv6.count }
    public var isEmpty: Bool { ipv4.isEmpty && ipv6.isEmpty }

    @inlinable @inline(__always)
    public func lookup(_ address: IPv4Address) -> Value? { ipv4.lookup(address) }

    @inlinable @inline(__always)
    public func lookup(_ address: IPv6Address) -> Value? { ipv6.lookup(address) }

    /// The lookup of a flow generic in the family (specialized, it is one of the two above).
    @inlinable @inline(__always)
    public func lookup<Address: FamilyAddress>(inFamilyOf address: Address) -> Value? { Address.lookup(address, in: self) }

    public func lookup(_ address: IPAddress) -> Value? {
        switch address {
        case .v4(let address): ipv4.lookup(address)
        case .v6(let address): ipv6.lookup(address)
        }
    }

    @inlinable
    public func lookupEntry(_ address: IPv4Address) -> (prefix: IPv4Prefix, value: Value)? { ipv4.lookupEntry(address) }

    @inlinable
    public func lookupEntry(_ address: IPv6Address) -> (prefix: IPv6Prefix, value: Value)? { ipv6.lookupEntry(address) }

    /// The longest matching prefix of `address` and its value.
    public func lookupEntry(_ address: IPAddress) -> (prefix: IPPrefix, value: Value)? {
        switch address {
        case .v4(let address): ipv4.lookupEntry(address).map { (.v4($0.prefix), $0.value) }
        case .v6(let address): ipv6.lookupEntry(address).map { (.v6($0.prefix), $0.value) }
        }
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: IPPrefix) -> Value? {
        switch prefix {
        case .v4(let prefix): ipv4.value(for: prefix)
        case .v6(let prefix): ipv6.value(for: prefix)
        }
    }

    /// Every entry: IPv4 then IPv6, each family longest prefixes first, then by address.
    public var entries: [(prefix: IPPrefix, value: Value)] {
        ipv4.entries.map { (IPPrefix.v4($0.prefix), $0.value) } + ipv6.entries.map { (IPPrefix.v6($0.prefix), $0.value) }
    }

    /// Inserts or replaces; returns the replaced value. Rebuilds that family's table: for tests and small tables.
    @discardableResult
    public mutating func insert(_ prefix: IPPrefix, _ value: Value) -> Value? {
        switch prefix {
        case .v4(let prefix): ipv4.insert(prefix, value)
        case .v6(let prefix): ipv6.insert(prefix, value)
        }
    }

    /// Removes `prefix`; returns its value. Rebuilds that family's table: for tests and small tables.
    @discardableResult
    public mutating func remove(_ prefix: IPPrefix) -> Value? {
        switch prefix {
        case .v4(let prefix): ipv4.remove(prefix)
        case .v6(let prefix): ipv6.remove(prefix)
        }
    }
}
