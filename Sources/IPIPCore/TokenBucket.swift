/// A token bucket: `burst` tokens at most, refilled at `rate` per second; each event takes one.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let burst: Double
    public private(set) var tokens: Double
    private var updated: Double

    /// A full bucket as of `now`.
    public init(rate: Double, burst: Double, now: Double = 0) {
        self.rate = rate
        self.burst = burst
        tokens = burst
        updated = now
    }

    /// Takes a token if one is there at `now`.
    public mutating func take(now: Double) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// True when the bucket has refilled completely by `now`: forgetting it changes nothing.
    public func isFull(now: Double) -> Bool {
        tokens + max(0, now - updated) * rate >= burst
    }

    private mutating func refill(now: Double) {
        tokens = min(burst, tokens + max(0, now - updated) * rate)
        updated = max(updated, now)
    }
}

/// Token buckets per key (an address, a MAC) in a table of bounded size, so that a sender rotating
/// through keys costs memory only up to the bound. Two generations: when the current one holds
/// `capacity` keys it becomes the previous one and the one before is forgotten, so the keys forgotten
/// are those not seen for the longest — amortised O(1), never a scan per packet. A forgotten key starts
/// again with a full bucket, which is why callers pair this with a global bucket.
public struct TokenBucketTable<Key: Hashable & Sendable>: Sendable {
    public let rate: Double
    public let burst: Double
    public let capacity: Int
    private var current: [Key: TokenBucket] = [:]
    private var previous: [Key: TokenBucket] = [:]

    public init(rate: Double, burst: Double, capacity: Int) {
        precondition(capacity > 0)
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
    }

    /// Keys tracked (at most twice `capacity`).
    public var count: Int { current.count + previous.count }

    public mutating func take(_ key: Key, now: Double) -> Bool {
        var bucket = current.removeValue(forKey: key) ?? previous.removeValue(forKey: key)
            ?? TokenBucket(rate: rate, burst: burst, now: now)
        let allowed = bucket.take(now: now)
        if current.count >= capacity {
            previous = current
            current = [:]
        }
        current[key] = bucket
        return allowed
    }
}
