/// What a packet path produced and the thin loop around it must send: IPv4 packets built in place in
/// preallocated slots (`PacketSlot` layout), each with its destination and what it counts as. Pure
/// memory; the dataplane sends a batch with one sendmmsg(2) (or writes it to the TUN device) in
/// `whenFull` and after each burst, so a path never waits for I/O and never allocates.
public final class PacketBatch {
    public static let capacity = 64

    /// What a queued packet is, for the counters once it was sent.
    public enum Kind: Equatable, Sendable {
        /// An outer packet carrying `innerLength` bytes to `peer`.
        case encapsulated(peer: Int, innerLength: Int)
        /// An inner packet unwrapped from `peer`'s outer packet, to be delivered: written to the TUN
        /// device (with its virtio-net header in front), or sent through the raw socket.
        case decapsulated(peer: Int, innerLength: Int, viaTUN: Bool)
        /// A later piece of a decapsulated packet ipipd cut to fit the interface it leaves by (sent
        /// through the raw socket; the first piece is the `decapsulated` one).
        case decapsulatedPiece(peer: Int, innerLength: Int)
        /// `segments` consecutive segments of one of `peer`'s flows (`innerLength` bytes as their sender sent
        /// them) in one super-packet for the TUN device, with a virtio-net header saying how the kernel is to
        /// cut it again: the uplink's GRO merged them, or ipipd joined them (`TCPCoalescer`) out of `frames`
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
    /// sendmmsg(2) is built from.
    public let starts: UnsafeMutablePointer<UnsafeRawPointer?>
    public let lengths: UnsafeMutablePointer<Int>
    public let destinations: UnsafeMutablePointer<UInt32>
    private let kinds: UnsafeMutablePointer<Kind>
    public private(set) var count = 0
    /// How many times the batch was emptied: tells a `TCPCoalescer` whether its entry is still there, and
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
        kinds = .allocate(capacity: Self.capacity)
    }

    deinit {
        storage.deallocate()
        starts.deallocate()
        lengths.deallocate()
        destinations.deallocate()
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
        (kinds + count).initialize(to: kind)
        count += 1
        if isFull { whenFull(self) }
    }

    public func packet(at index: Int) -> UnsafeRawBufferPointer {
        precondition(index < count)
        return UnsafeRawBufferPointer(start: starts[index], count: lengths[index])
    }

    /// The packet's start as a mutable pointer: the slot is the batch's own memory.
    public func mutablePacket(at index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(mutating: packet(at: index))
    }

    public func destination(at index: Int) -> IPv4Address {
        precondition(index < count)
        return IPv4Address(UInt32(bigEndian: destinations[index]))
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
        case .encapsulated: return packet.count > 9 && packet[9] == IPProtocolNumber.ipv6
        case .decapsulated(_, _, true), .superPacket: return packet.count > VirtioNetHeader.size && packet[VirtioNetHeader.size] >> 4 == 6
        default: return false
        }
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
    case peerReportedUnreachable(peer: Int, reporter: IPv4Address)
}
