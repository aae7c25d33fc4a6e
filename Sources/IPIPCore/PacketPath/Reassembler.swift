/// Reassembles fragmented outer packets, as the kernel does before its ipip module sees them — so a
/// peer whose outer packets a router fragments still gets through. Bounded: a datagram not completed
/// within `timeout` is dropped, memory is capped, and overlapping fragments drop the whole datagram
/// (as Linux does since the FragmentSmack fixes). Allocates, but only on this rare path.
public struct Reassembler: Sendable {
    public enum Result: Equatable, Sendable {
        case incomplete
        /// The whole datagram: header (MF clear, offset 0, new length and checksum) and payload.
        case complete([UInt8])
        case dropped(DropReason)
    }

    struct Key: Hashable {
        var source: UInt32
        var destination: UInt32
        var identification: UInt16
        var protocolNumber: UInt8
    }

    struct Pending {
        var header: [UInt8] = []               // from the first fragment (offset 0)
        var data: [UInt8] = []
        var received: [Range<Int>] = []
        var totalPayloadLength: Int?           // known once the last fragment (MF clear) arrived
        var started: Double
    }

    public var timeout = 30.0                  // net.ipv4.ipfrag_time
    public var memoryLimit = 4 << 20           // net.ipv4.ipfrag_high_thresh
    private var pending: [Key: Pending] = [:]
    public private(set) var memoryInUse = 0

    public init() {}

    public var pendingCount: Int { pending.count }

    /// Drops datagrams older than the timeout; returns how many.
    public mutating func expire(now: Double) -> Int {
        let old = pending.filter { now - $0.value.started >= timeout }
        for (key, entry) in old {
            memoryInUse -= entry.data.count
            pending[key] = nil
        }
        return old.count
    }

    public mutating func add(_ fragment: IPv4PacketView, now: Double) -> Result {
        let key = Key(source: fragment.source.value, destination: fragment.destination.value,
                      identification: fragment.identification, protocolNumber: fragment.protocolNumber)
        let payload = fragment.payload
        let start = fragment.fragmentOffset
        let end = start + payload.count
        // Every fragment but the last carries a multiple of 8 bytes; nothing may pass 65535.
        guard !(fragment.moreFragments && payload.count % 8 != 0), end + fragment.headerLength <= 0xFFFF, !payload.isEmpty else {
            discard(key)
            return .dropped(.malformedOuter)
        }
        var entry = pending[key] ?? Pending(started: now)
        let growth = max(0, end - entry.data.count)
        if memoryInUse + growth > memoryLimit {
            discard(key)
            return .dropped(.fragmentMemory)
        }
        if entry.received.contains(where: { $0 == start..<end }) {
            return .incomplete   // an exact duplicate: harmless, ignored
        }
        if entry.received.contains(where: { $0.overlaps(start..<end) }) {
            discard(key)
            return .dropped(.fragmentOverlap)
        }
        if !fragment.moreFragments {
            if let known = entry.totalPayloadLength, known != end {
                discard(key)
                return .dropped(.fragmentOverlap)
            }
            entry.totalPayloadLength = end
        }
        if let total = entry.totalPayloadLength, end > total {
            discard(key)
            return .dropped(.fragmentOverlap)
        }
        if entry.data.count < end {
            entry.data.append(contentsOf: repeatElement(0, count: end - entry.data.count))
            memoryInUse += growth
        }
        entry.data.replaceSubrange(start..<end, with: payload)
        entry.received.append(start..<end)
        if start == 0 { entry.header = Array(fragment.bytes[0..<fragment.headerLength]) }

        guard let total = entry.totalPayloadLength, !entry.header.isEmpty,
              Self.covers(entry.received, upTo: total) else {
            pending[key] = entry
            return .incomplete
        }
        // Everything this datagram holds (its earlier size plus this growth) was counted in memoryInUse.
        pending[key] = nil
        memoryInUse -= entry.data.count
        var datagram = entry.header + entry.data[0..<total]
        datagram.withUnsafeMutableBytes { bytes in
            bytes.setUInt16(UInt16(bytes.count), at: 2)
            bytes.setUInt16(0, at: 6)
            IPv4HeaderEditor.recomputeChecksum(bytes)
        }
        return .complete(datagram)
    }

    private mutating func discard(_ key: Key) {
        if let entry = pending.removeValue(forKey: key) { memoryInUse -= entry.data.count }
    }

    static func covers(_ ranges: [Range<Int>], upTo total: Int) -> Bool {
        var reached = 0
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            guard range.lowerBound <= reached else { return false }
            reached = max(reached, range.upperBound)
        }
        return reached >= total
    }
}
