/// What a packet path produced and the thin loop around it must send: IPv4 and IPv6 packets built in
/// place in preallocated slots (`PacketSlot` layout), each with its destination and what it counts as.
/// Pure memory; the dataplane sends a batch with one sendmmsg(2) per run of packets for one socket (or
/// writes them to the TUN device) in `whenFull` and after each burst, so a path never waits for I/O and
/// never allocates.
public final class PacketBatch {
    public static let capacity = 64

    /// What a queued packet is, for the counters once it was sent.
    public enum Kind: Equatable, Sendable {
        /// An outer packet carrying `innerLength` bytes to `peer`.
        case encapsulated(peer: Int, innerLength: Int)
        /// One of the fragments of an outer IPv6 packet carrying an inner IPv6 packet of `innerLength`
        /// bytes to `peer` (RFC 2473 §7.1); the `first` counts the packet.
        case encapsulatedFragment(peer: Int, innerLength: Int, first: Bool)
        /// An inner packet unwrapped from `peer`'s outer packet, to be delivered: written to the TUN
        /// device (with its virtio-net header in front), or sent through the raw socket.
        case decapsulated(peer: Int, innerLength: Int, viaTUN: Bool)
        /// A later piece of a decapsulated packet ipipd cut to fit the interface it leaves by (sent
        /// through the raw socket; the first piece is the `decapsulated` one).
        case decapsulatedPiece(peer: Int, innerLength: Int)
        /// `segments` consecutive segments of one of `peer`'s flows (`innerLength` bytes as their sender sent
        /// them) in one super-packet for the TUN device, with a virtio-net header saying how the kernel is to
        /// cut it again: the uplink's GRO merged them, or ipipd joined them (`FlowCoalescer`) out of `frames`
        /// captured frames.
        case superPacket(peer: Int, innerLength: Int, segments: Int, frames: Int)
        /// An ICMP error ipipd sends as a router about traffic to or from `peer`.
        case icmpError(peer: Int)
        /// An ICMPv6 error (a whole IPv6 packet, source ::): its ICMPv6 message goes through the ICMPv6
        /// socket to the IPv6 header's destination.
        case icmpv6Error(peer: Int)
    }

    private let storage: UnsafeMutableRawBufferPointer
    /// Start and length of each queued packet, and its destination in network byte order: the arrays
    /// sendmmsg(2) is built from — an IPv4 address, or 16 bytes of IPv6 address where `isIPv6Destination`.
    public let starts: UnsafeMutablePointer<UnsafeRawPointer?>
    public let lengths: UnsafeMutablePointer<Int>
    public let destinations: UnsafeMutablePointer<UInt32>
    public let destinations6: UnsafeMutableRawPointer
    private let ipv6Destinations: UnsafeMutablePointer<Bool>
    private let kinds: UnsafeMutablePointer<Kind>
    public private(set) var count = 0
    /// How many times the batch was emptied: tells a `FlowCoalescer` whether its entry is still there, and
    /// a loop whether its burst sent anything.
    public private(set) var flushes = 0

    /// Called by `append` when the last slot was taken: must send (or drop) what is queued and call
    /// `removeAll()`. Until it is set, a full batch is emptied without sending.
    public var whenFull: (PacketBatch) -> Void = { $0.removeAll() }

    public init() {
        storage = .allocate(byteCount: Self.capacity * PacketSlot.size, alignment: 16)
        starts = .allocate(capacity: Self.capacity)
        lengths = .allocate(capacity: Self.capacity)
        destinations = .allocate(capacity: Self.capacity)
        destinations6 = .allocate(byteCount: Self.capacity * 16, alignment: 8)
        ipv6Destinations = .allocate(capacity: Self.capacity)
        kinds = .allocate(capacity: Self.capacity)
    }

    deinit {
        storage.deallocate()
        starts.deallocate()
        lengths.deallocate()
        destinations.deallocate()
        destinations6.deallocate()
        ipv6Destinations.deallocate()
        kinds.deinitialize(count: count)
        kinds.deallocate()
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == Self.capacity }

    /// The slot the next packet is built in (`PacketSlot.size` bytes).
    @inline(__always)
    public var nextSlot: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: storage[(count * PacketSlot.size)..<((count + 1) * PacketSlot.size)])
    }

    /// Queues `nextSlot[range]`, an IPv4 packet to `destination`; sends the batch when it is full.
    @inline(__always)
    public func append(_ range: Range<Int>, destination: IPv4Address, kind: Kind) {
        precondition(count < Self.capacity && range.upperBound <= PacketSlot.size)
        starts[count] = UnsafeRawPointer(storage.baseAddress!.advanced(by: count * PacketSlot.size + range.lowerBound))
        lengths[count] = range.count
        destinations[count] = destination.value.bigEndian
        ipv6Destinations[count] = false
        (kinds + count).initialize(to: kind)
        count += 1
        if isFull { whenFull(self) }
    }

    /// Queues `nextSlot[range]`, an IPv6 packet to `destination`; sends the batch when it is full.
    @inline(__always)
    public func append(_ range: Range<Int>, destination: IPv6Address, kind: Kind) {
        precondition(count < Self.capacity && range.upperBound <= PacketSlot.size)
        starts[count] = UnsafeRawPointer(storage.baseAddress!.advanced(by: count * PacketSlot.size + range.lowerBound))
        lengths[count] = range.count
        destinations6.storeBytes(of: destination.high.bigEndian, toByteOffset: count * 16, as: UInt64.self)
        destinations6.storeBytes(of: destination.low.bigEndian, toByteOffset: count * 16 + 8, as: UInt64.self)
        ipv6Destinations[count] = true
        (kinds + count).initialize(to: kind)
        count += 1
        if isFull { whenFull(self) }
    }

    /// Queues `nextSlot[range]` to `destination`, of either family.
    @inline(__always)
    public func append(_ range: Range<Int>, destination: IPAddress, kind: Kind) {
        switch destination {
        case .v4(let address): append(range, destination: address, kind: kind)
        case .v6(let address): append(range, destination: address, kind: kind)
        }
    }

    public func packet(at index: Int) -> UnsafeRawBufferPointer {
        precondition(index < count)
        return UnsafeRawBufferPointer(start: starts[index], count: lengths[index])
    }

    /// The packet's start as a mutable pointer: the slot is the batch's own memory.
    public func mutablePacket(at index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(mutating: packet(at: index))
    }

    /// The IPv4 destination (0.0.0.0 for a packet to an IPv6 one).
    public func destination(at index: Int) -> IPv4Address {
        precondition(index < count)
        return ipv6Destinations[index] ? .any : IPv4Address(UInt32(bigEndian: destinations[index]))
    }

    /// The destination of either family.
    public func destinationAddress(at index: Int) -> IPAddress {
        precondition(index < count)
        guard ipv6Destinations[index] else { return .v4(IPv4Address(UInt32(bigEndian: destinations[index]))) }
        return .v6(IPv6Address(high: UInt64(bigEndian: destinations6.loadUnaligned(fromByteOffset: index * 16, as: UInt64.self)),
                               low: UInt64(bigEndian: destinations6.loadUnaligned(fromByteOffset: index * 16 + 8, as: UInt64.self))))
    }

    /// Whether the packet goes to an IPv6 destination through the raw IPv6 socket (an IPv6 underlay's outer packet).
    public func goesToRawIPv6Socket(at index: Int) -> Bool {
        precondition(index < count)
        return ipv6Destinations[index] && !goesToICMPv6Socket(at: index)
    }

    /// Whether the packet goes to the TUN device rather than the raw socket.
    public func goesToTUN(at index: Int) -> Bool {
        switch kind(at: index) {
        case .decapsulated(_, _, true), .superPacket: true
        default: false
        }
    }

    /// Whether the packet is an ICMPv6 error, for the ICMPv6 socket.
    public func goesToICMPv6Socket(at index: Int) -> Bool {
        if case .icmpv6Error = kind(at: index) { true } else { false }
    }

    /// Whether the packet carries (or is) IPv6: an outer packet with protocol 41, or an inner IPv6
    /// packet for the TUN device (after its virtio-net header) — for the per-family counters.
    public func carriesIPv6(at index: Int) -> Bool {
        let packet = self.packet(at: index)
        switch kind(at: index) {
        // The inner packet is the packet's tail.
        case .encapsulated(_, let innerLength): return innerLength > 0 && innerLength <= packet.count && packet[packet.count - innerLength] >> 4 == 6
        // Only an inner IPv6 packet is sent in outer fragments.
        case .encapsulatedFragment: return true
        case .decapsulated(_, _, true), .superPacket: return packet.count > VirtioNetHeader.size && packet[VirtioNetHeader.size] >> 4 == 6
        default: return false
        }
    }

    /// Whether the entry is a super-packet of UDP datagrams (its virtio-net header says UDP_L4).
    public func carriesUDPSuperPacket(at index: Int) -> Bool {
        let packet = self.packet(at: index)
        guard case .superPacket = kind(at: index), packet.count >= VirtioNetHeader.size else { return false }
        if case .udp = VirtioNetHeader(UnsafeRawBufferPointer(rebasing: packet[0..<VirtioNetHeader.size])).segmentation { return true }
        return false
    }

    public func kind(at index: Int) -> Kind {
        precondition(index < count)
        return kinds[index]
    }

    /// Grows the last packet by `bytes` its builder wrote behind it, within its slot, and says what it now is.
    public func extendLast(by bytes: Int, kind: Kind) {
        precondition(count > 0)
        let slotStart = storage.baseAddress!.advanced(by: (count - 1) * PacketSlot.size)
        precondition(UnsafeRawPointer(slotStart).distance(to: starts[count - 1]!) + lengths[count - 1] + bytes <= PacketSlot.size)
        lengths[count - 1] += bytes
        kinds[count - 1] = kind
    }

    public func removeAll() {
        kinds.deinitialize(count: count)
        count = 0
        flushes &+= 1
    }
}

/// What a packet path tells the loop around it besides packets: things worth a log line.
public enum PacketPathEvent: Equatable, Sendable {
    /// A router's "fragmentation needed" lowered the inner path MTU towards `peer`.
    case pathMTULowered(peer: Int, mtu: Int)
    /// A router reported `peer` unreachable (RFC 2003 §4): its senders hear "host unreachable" for 30 s.
    case peerReportedUnreachable(peer: Int, reporter: IPAddress)
}
