/// IPv4 longest-prefix-match table: prefix → value (a tunnel peer).
///
/// One sorted array of networks per prefix length, plus a bitmap of the lengths in use, so a lookup
/// binary-searches only the lengths that exist, longest first: no hashing (Swift's seeded SipHash
/// costs more than a dozen comparisons) and no allocation. Inserting and removing shift the arrays,
/// which happens on a reload, never per packet.
public struct RoutingTable<Value: Sendable>: Sendable {
    private var networks: [[UInt32]] = Array(repeating: [], count: 33)
    private var values: [[Value]] = Array(repeating: [], count: 33)
    /// Bit n set ⇔ some prefix of length n exists.
    private var lengthsInUse: UInt64 = 0

    public init() {}

    /// A table of `entries` built at once: each length's networks sorted once, instead of one shifting
    /// insert each (a kernel's route dump or a hub's config may hold hundreds of thousands). Where a
    /// prefix comes more than once, `combine(earlier, later)` decides, as `Dictionary(_:uniquingKeysWith:)`.
    public init<S: Sequence>(_ entries: S, uniquingPrefixesWith combine: (Value, Value) -> Value)
    where S.Element == (IPv4Prefix, Value) {
        var byLength: [[(network: UInt32, order: Int, value: Value)]] = Array(repeating: [], count: 33)
        for (order, (prefix, value)) in entries.enumerated() {
            byLength[prefix.length].append((prefix.network.address.value, order, value))
        }
        for length in 0...32 where !byLength[length].isEmpty {
            // By network, then in the order given, so that `combine` sees earlier before later.
            byLength[length].sort { ($0.network, $0.order) < ($1.network, $1.order) }
            var networks: [UInt32] = [], values: [Value] = []
            networks.reserveCapacity(byLength[length].count)
            values.reserveCapacity(byLength[length].count)
            for entry in byLength[length] {
                if networks.last == entry.network {
                    values[values.count - 1] = combine(values[values.count - 1], entry.value)
                } else {
                    networks.append(entry.network)
                    values.append(entry.value)
                }
            }
            self.networks[length] = networks
            self.values[length] = values
            lengthsInUse |= 1 << UInt64(length)
        }
    }

    public var count: Int { networks.reduce(0) { $0 + $1.count } }
    public var isEmpty: Bool { lengthsInUse == 0 }

    /// Where `network` is in the sorted array of `length`, or where it would go.
    @inline(__always)
    private func position(of network: UInt32, length: Int) -> (index: Int, found: Bool) {
        networks[length].withUnsafeBufferPointer { sorted in
            let index = sorted.lowerBound(of: network)
            return (index, index < sorted.count && sorted[index] == network)
        }
    }

    /// Inserts or replaces the value for `prefix` (host bits are ignored). Returns the replaced value.
    @discardableResult
    public mutating func insert(_ prefix: IPv4Prefix, _ value: Value) -> Value? {
        let network = prefix.network.address.value, length = prefix.length
        lengthsInUse |= 1 << UInt64(length)
        let (index, found) = position(of: network, length: length)
        if found {
            defer { values[length][index] = value }
            return values[length][index]
        }
        networks[length].insert(network, at: index)
        values[length].insert(value, at: index)
        return nil
    }

    @discardableResult
    public mutating func remove(_ prefix: IPv4Prefix) -> Value? {
        let length = prefix.length
        let (index, found) = position(of: prefix.network.address.value, length: length)
        guard found else { return nil }
        networks[length].remove(at: index)
        if networks[length].isEmpty { lengthsInUse &= ~(1 << UInt64(length)) }
        return values[length].remove(at: index)
    }

    /// The value stored for exactly `prefix`.
    public func value(for prefix: IPv4Prefix) -> Value? {
        let (index, found) = position(of: prefix.network.address.value, length: prefix.length)
        return found ? values[prefix.length][index] : nil
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
            let (index, found) = position(of: address.value & mask, length: length)
            if found {
                return (IPv4Prefix(IPv4Address(address.value & mask), length: length), values[length][index])
            }
        }
        return nil
    }

    /// Every entry, longest prefixes first, then by address.
    public var entries: [(prefix: IPv4Prefix, value: Value)] {
        (0...32).reversed().flatMap { length in
            zip(networks[length], values[length]).map { (IPv4Prefix(IPv4Address($0), length: length), $1) }
        }
    }
}
