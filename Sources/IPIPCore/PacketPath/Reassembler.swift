/// Reassembles fragmented outer packets of either family, as the kernel does before its ipip or ip6tnl
/// module sees them — so a peer whose outer packets a router (IPv4) or the peer itself (IPv6) fragments
/// still gets through — against senders who forge a peer's address and send fragments in any order, size
/// and number:
///
/// - the whole datagram, built with the first fragment's header, never exceeds 65,535 bytes;
/// - each datagram keeps its fragments sorted and counts the bytes it holds, so a fragment costs a
///   binary search and an insertion into at most `fragmentsPerDatagram` pieces, never a scan or a sort
///   of everything received (the FragmentSmack class, CVE-2018-5391);
/// - memory is charged for what is really held (each fragment's bytes plus bookkeeping), capped in all
///   and per outer source, so one forged peer cannot take the share of the others;
/// - overlapping fragments drop the datagram (as Linux does since the FragmentSmack fixes), exact
///   duplicates are dropped alone, and a datagram not completed within `timeout` is dropped, found in
///   O(1) per datagram from a queue in the order they started.
///
/// Allocates, but only on this path, which legitimate traffic takes rarely.
public struct Reassembler: Sendable {
    public struct Limits: Sendable, Equatable {
        /// net.ipv4.ipfrag_time.
        public var timeout = 30.0
        /// net.ipv4.ipfrag_high_thresh.
        public var memory = 4 << 20
        /// What the datagrams from one outer source may hold together.
        public var memoryPerSource = 1 << 20
        /// Enough for a 64 KiB datagram cut for a 576-byte path; more pieces are an attack.
        public var fragmentsPerDatagram = 128
        public init() {}
    }

    /// One fragment, of either family: the unfragmentable part it repeats (the IPv4 header; the IPv6
    /// header and any extension headers before the Fragment header) and the piece of the rest it carries.
    public struct Fragment {
        public enum Family: Sendable, Equatable {
            case ipv4
            /// Where, in the unfragmentable part, the next-header byte that names the Fragment header lies.
            case ipv6(nextHeaderOffset: Int)
        }

        /// IPv4 addresses as IPv4-mapped IPv6 addresses: one key for both families.
        let source: IPv6Address
        let destination: IPv6Address
        let identification: UInt32
        /// IPv4's protocol; IPv6's next header after the Fragment header.
        let protocolNumber: UInt8
        /// Where the piece starts in the fragmentable part, in bytes.
        let offset: Int
        let moreFragments: Bool
        let header: UnsafeRawBufferPointer
        let payload: UnsafeRawBufferPointer
        let family: Family

        public init(_ fragment: IPv4PacketView) {
            source = IPv6Address(mapping: fragment.source)
            destination = IPv6Address(mapping: fragment.destination)
            identification = UInt32(fragment.identification)
            protocolNumber = fragment.protocolNumber
            offset = fragment.fragmentOffset
            moreFragments = fragment.moreFragments
            header = UnsafeRawBufferPointer(rebasing: fragment.bytes[0..<fragment.headerLength])
            payload = fragment.payload
            family = .ipv4
        }

        /// An IPv6 packet (checked whole by the caller: its payload length within the bytes) whose chain of
        /// Hop-by-Hop, Routing and Destination Options headers leads to a Fragment header; nil otherwise.
        public init?(ipv6 packet: UnsafeRawBufferPointer) {
            guard packet.count >= IPv6PacketView.headerLength else { return nil }
            var next = packet[6], offset = IPv6PacketView.headerLength, nextHeaderOffset = 6, count = 0
            while next != IPv6ExtensionHeaders.fragment {
                guard next == IPv6ExtensionHeaders.hopByHop || next == IPv6ExtensionHeaders.routing
                        || next == IPv6ExtensionHeaders.destinationOptions, offset + 8 <= packet.count else { return nil }
                count += 1
                let length = (Int(packet[offset + 1]) + 1) * 8
                guard count <= IPv6ExtensionHeaders.maximumCount, offset + length <= packet.count else { return nil }
                nextHeaderOffset = offset
                next = packet[offset]
                offset += length
            }
            guard offset + 8 <= packet.count else { return nil }
            source = packet.ipv6Address(at: 8)
            destination = packet.ipv6Address(at: 24)
            protocolNumber = packet[offset]
            let offsetAndFlags = packet.uint16(at: offset + 2)
            self.offset = Int(offsetAndFlags & 0xFFF8)
            moreFragments = offsetAndFlags & 1 != 0
            identification = packet.uint32(at: offset + 4)
            header = UnsafeRawBufferPointer(rebasing: packet[0..<offset])
            payload = UnsafeRawBufferPointer(rebasing: packet[(offset + 8)...])
            family = .ipv6(nextHeaderOffset: nextHeaderOffset)
        }

        /// The largest datagram the family allows: 65,535 bytes of IPv4, or of IPv6 payload.
        var maximumLength: Int {
            switch family {
            case .ipv4: PacketSlot.maximumPacketLength
            case .ipv6: PacketSlot.maximumPacketLength + IPv6PacketView.headerLength
            }
        }
    }

    /// Bookkeeping charged per datagram and per fragment, on top of the bytes they hold.
    public static let datagramOverhead = 256
    public static let fragmentOverhead = 64

    public enum Result: Equatable, Sendable {
        case incomplete
        /// The whole datagram — header as the first fragment had it (MF clear, offset 0, new length and
        /// checksum) and the payload — made of `fragments` fragments.
        case complete([UInt8], fragments: Int)
        /// An exact copy of a fragment already held: dropped alone.
        case duplicate
        /// The datagram was dropped, with the `fragments` it held (this one included).
        case dropped(DropReason, fragments: Int)
    }

    struct Key: Hashable {
        var source: IPv6Address
        var destination: IPv6Address
        var identification: UInt32
        var protocolNumber: UInt8
        var ipv6: Bool
    }

    struct Piece {
        var start: Int
        var bytes: [UInt8]
        var end: Int { start + bytes.count }
    }

    struct Pending {
        /// The first fragment's header (from the fragment at offset 0), and how to finish a datagram built on it.
        var header: [UInt8]?
        var headerFamily = Fragment.Family.ipv4
        /// Disjoint, sorted by start.
        var pieces: [Piece] = []
        var covered = 0
        /// Known once the last fragment (MF clear) arrived.
        var totalPayloadLength: Int?
        let started: Double
        var charged = Reassembler.datagramOverhead
    }

    public var limits: Limits
    private var pending: [Key: Pending] = [:]
    private var memoryBySource: [IPv6Address: Int] = [:]
    /// Datagrams in the order they started, for expiry; entries of datagrams gone are skipped.
    private var expiryQueue: [(key: Key, started: Double)] = []
    private var expiryHead = 0
    public private(set) var memoryInUse = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public var pendingCount: Int { pending.count }
    /// Fragments held, in every datagram.
    public var fragmentsHeld: Int { fragmentsHeldCount }
    public private(set) var fragmentsHeldCount = 0

    public func memoryInUse(bySource source: IPv4Address) -> Int { memoryBySource[IPv6Address(mapping: source)] ?? 0 }
    public func memoryInUse(bySource source: IPv6Address) -> Int { memoryBySource[source] ?? 0 }

    /// Drops datagrams older than the timeout; returns how many fragments they held.
    public mutating func expire(now: Double) -> Int {
        var fragments = 0
        while expiryHead < expiryQueue.count, now - expiryQueue[expiryHead].started >= limits.timeout {
            let (key, started) = expiryQueue[expiryHead]
            expiryHead += 1
            if pending[key]?.started == started { fragments += discard(key) }
        }
        // The queue also remembers datagrams that completed or were dropped: keep it in proportion.
        if expiryHead > 1024 && expiryHead * 2 > expiryQueue.count {
            expiryQueue.removeFirst(expiryHead)
            expiryHead = 0
        }
        if expiryQueue.count - expiryHead > 2 * pending.count + 1024 {
            expiryQueue = pending.map { ($0.key, $0.value.started) }.sorted { $0.started < $1.started }
            expiryHead = 0
        }
        return fragments
    }

    public mutating func add(_ fragment: IPv4PacketView, now: Double) -> Result {
        add(Fragment(fragment), now: now)
    }

    public mutating func add(_ fragment: Fragment, now: Double) -> Result {
        let isIPv6 = if case .ipv6 = fragment.family { true } else { false }
        let key = Key(source: fragment.source, destination: fragment.destination,
                      identification: fragment.identification, protocolNumber: fragment.protocolNumber, ipv6: isIPv6)
        let payload = fragment.payload
        let start = fragment.offset
        let end = start + payload.count
        let isLast = !fragment.moreFragments

        // Every fragment but the last carries a multiple of 8 bytes, and none is empty.
        // Taken out of the table while it changes (no copy of its pieces); put back unless it is dropped.
        var entry: Pending
        if let existing = pending.removeValue(forKey: key) {
            entry = existing
            guard !payload.isEmpty, isLast || payload.count % 8 == 0 else { return drop(entry, key, .malformedOuter) }
        } else {
            guard !payload.isEmpty, isLast || payload.count % 8 == 0 else { return .dropped(.malformedOuter, fragments: 1) }
            guard charge(Self.datagramOverhead, to: fragment.source) else { return .dropped(.fragmentMemory, fragments: 1) }
            entry = Pending(started: now)
            expiryQueue.append((key, now))
        }
        // The datagram is built with the first fragment's header: with it, nothing may pass the family's largest.
        let headerLength = start == 0 ? fragment.header.count : entry.header?.count ?? fragment.header.count
        let highestEnd = max(end, entry.pieces.last?.end ?? 0)
        guard headerLength + highestEnd <= fragment.maximumLength else { return drop(entry, key, .malformedOuter) }
        if isLast {
            // Two different ends, or data already beyond this one: the pieces contradict each other.
            if let total = entry.totalPayloadLength, total != end { return drop(entry, key, .fragmentOverlap) }
            if highestEnd > end { return drop(entry, key, .fragmentOverlap) }
            entry.totalPayloadLength = end
        } else if let total = entry.totalPayloadLength, end > total {
            return drop(entry, key, .fragmentOverlap)
        }

        let index = entry.pieces.partitionIndex { $0.start >= start }
        if index < entry.pieces.count, entry.pieces[index].start == start, entry.pieces[index].end == end {
            pending[key] = entry
            return .duplicate
        }
        if index > 0, entry.pieces[index - 1].end > start { return drop(entry, key, .fragmentOverlap) }
        if index < entry.pieces.count, entry.pieces[index].start < end { return drop(entry, key, .fragmentOverlap) }
        guard entry.pieces.count < limits.fragmentsPerDatagram else { return drop(entry, key, .fragmentLimit) }
        let header = start == 0 ? Array(fragment.header) : nil
        let cost = payload.count + Self.fragmentOverhead + (header?.count ?? 0)
        guard charge(cost, to: key.source) else { return drop(entry, key, .fragmentMemory) }
        entry.charged += cost
        entry.pieces.insert(Piece(start: start, bytes: Array(payload)), at: index)
        fragmentsHeldCount += 1
        entry.covered += payload.count
        if let header {
            entry.header = header
            entry.headerFamily = fragment.family
        }

        // Disjoint pieces inside [0, total) that add up to total cover it all.
        guard let header = entry.header, let total = entry.totalPayloadLength, entry.covered == total else {
            pending[key] = entry
            return .incomplete
        }
        release(entry.charged, from: key.source)
        fragmentsHeldCount -= entry.pieces.count
        var datagram = header
        datagram.reserveCapacity(header.count + total)
        for piece in entry.pieces { datagram += piece.bytes }
        datagram.withUnsafeMutableBytes { bytes in
            switch entry.headerFamily {
            case .ipv4:
                bytes.setUInt16(UInt16(bytes.count), at: 2)   // ≤ 65,535: checked with every fragment
                bytes.setUInt16(0, at: 6)
                IPv4HeaderEditor.recomputeChecksum(bytes)
            case .ipv6(let nextHeaderOffset):
                // No Fragment header any more: what it named follows the header that named it.
                bytes.setUInt16(UInt16(bytes.count - IPv6PacketView.headerLength), at: 4)
                bytes[nextHeaderOffset] = key.protocolNumber
            }
        }
        return .complete(datagram, fragments: entry.pieces.count)
    }

    /// Drops the datagram `entry` (already out of the table) with the fragment at hand.
    private mutating func drop(_ entry: Pending, _ key: Key, _ reason: DropReason) -> Result {
        release(entry.charged, from: key.source)
        fragmentsHeldCount -= entry.pieces.count
        return .dropped(reason, fragments: entry.pieces.count + 1)
    }

    /// Forgets a datagram and releases its memory; returns how many fragments it held.
    @discardableResult
    private mutating func discard(_ key: Key) -> Int {
        guard let entry = pending.removeValue(forKey: key) else { return 0 }
        release(entry.charged, from: key.source)
        fragmentsHeldCount -= entry.pieces.count
        return entry.pieces.count
    }

    private mutating func charge(_ bytes: Int, to source: IPv6Address) -> Bool {
        let held = memoryBySource[source] ?? 0
        guard memoryInUse + bytes <= limits.memory, held + bytes <= limits.memoryPerSource else { return false }
        memoryInUse += bytes
        memoryBySource[source] = held + bytes
        return true
    }

    private mutating func release(_ bytes: Int, from source: IPv6Address) {
        memoryInUse -= bytes
        let left = (memoryBySource[source] ?? 0) - bytes
        memoryBySource[source] = left > 0 ? left : nil
    }
}

extension Array {
    /// The first index whose element satisfies `belongsInSecondPart` (the array is partitioned by it):
    /// a binary search.
    func partitionIndex(where belongsInSecondPart: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if belongsInSecondPart(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
