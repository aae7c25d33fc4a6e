import Synchronization

/// What the gateway has learned about the path to one peer (RFC 2003 §4 soft state), written by the
/// capture thread (ICMP about outer packets) and the route watcher, read by the encapsulator.
public final class PeerPathState: Sendable {
    /// Linux keeps a learned path MTU for net.ipv4.route.mtu_expires = 600 s.
    public static let pathMTUExpirySeconds = 600.0
    /// IPTUNNEL_ERR_TIMEO: how long ICMP errors about outer packets are relayed to inner senders.
    public static let errorWindowSeconds = 30.0

    private let learnedMTU = Atomic<Int>(0)            // inner MTU, 0 = nothing learned
    private let learnedMTUExpiry = Atomic<UInt64>(0)   // milliseconds (monotonic)
    private let errorWindowEnd = Atomic<UInt64>(0)
    private let errorCount = Atomic<Int>(0)
    private let looping = Atomic<Bool>(false)
    private let sent = SentIdentifications()
    private let quotes = SentQuotes()
    /// How many ICMP reports about the peer's outer packets the capture thread looks at: 20 at once, then
    /// 10 a second. Routers report each packet that did not fit (or could not be delivered) as they drop
    /// it, and one believed report does all a hundred would; a forger spraying every possible quote gets
    /// 10 tries a second, not 65,536. The price, while such a spray lasts: real reports wait their turn.
    private let reportBudget = Mutex(TokenBucket(rate: 10, burst: 20))
    /// The IP identification of the next outer packet to the peer: a counter per peer, as Linux keeps
    /// one per destination, so that the IDs sent to a peer in a second are exactly a range.
    private let nextIdentification: Atomic<UInt16>

    /// `firstIdentification`: where the peer's IDs start (at random, unless a test needs to know).
    public init(firstIdentification: UInt16 = UInt16.random(in: 1...UInt16.max)) {
        nextIdentification = Atomic(firstIdentification == 0 ? 1 : firstIdentification)
    }

    /// The identification for the next outer packet to the peer, remembered as sent together with what
    /// an ICMP error about it would quote (used by the encapsulator's thread only). Never 0, which would
    /// let the kernel pick one. `inner`: the inner packet the outer header of `outerLength` bytes carries.
    @inline(__always)
    public func takeIdentification(now: Double, outerLength: Int, inner: UnsafeRawBufferPointer) -> UInt16 {
        let identification = nextIdentification.load(ordering: .relaxed)
        let next = identification &+ 1
        nextIdentification.store(next == 0 ? 1 : next, ordering: .relaxed)
        sent.note(identification, now: now)
        quotes.note(OuterPacketQuote(identification: identification, outerLength: outerLength, inner: inner))
        return identification
    }

    /// Remembers an outer packet without an identification (an IPv6 underlay's) as sent, by what an
    /// ICMPv6 error about it would quote.
    @inline(__always)
    public func noteSent(outerLength: Int, inner: UnsafeRawBufferPointer) {
        quotes.note(OuterPacketQuote(identification: nil, outerLength: outerLength, inner: inner))
    }

    /// The identification of the next outer IPv6 fragment train to the peer (RFC 8200 §4.5: one the
    /// peer has not seen lately): the same counter, widened.
    public func takeFragmentIdentification() -> UInt32 {
        let identification = nextIdentification.load(ordering: .relaxed)
        nextIdentification.store(identification &+ 1, ordering: .relaxed)
        return UInt32(identification) << 16 | UInt32(fragmentTrain.wrappingAdd(1, ordering: .relaxed).oldValue)
    }
    private let fragmentTrain = Atomic<UInt16>(UInt16.random(in: 0...UInt16.max))

    /// Remembers an outer packet as sent to the peer (tests).
    public func noteSent(_ quote: OuterPacketQuote, now: Double) {
        if let identification = quote.identification { sent.note(identification, now: now) }
        quotes.note(quote)
    }

    /// Whether the outer packet an ICMP error quotes went to the peer in the last
    /// `SentIdentifications.window` seconds, with that length and that inner packet's first 8 bytes:
    /// what a router's report must quote to be believed.
    public func sentRecently(_ quote: OuterPacketQuote, now: Double) -> Bool {
        (quote.identification.map { sent.contains($0, now: now) } ?? true) && quotes.contains(quote)
    }

    /// Takes one ICMP report about the peer's outer packets from the budget (the capture thread's); false
    /// when the budget is spent: the report is not even looked at.
    public func takeReportBudget(now: Double) -> Bool {
        reportBudget.withLock { $0.take(now: now) }
    }

    static func milliseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1000) }

    /// Linux's net.ipv4.route.min_pmtu: no report lowers an outer path MTU below this.
    public static let defaultMinimumPathMTU = 552

    /// A router reported `outerMTU` for packets to the peer: inner packets must fit in it minus the outer
    /// header's `overhead`. The outer MTU is floored at `floor` (`tunnel.min-pmtu`; 1280 over IPv6), so that
    /// a forged report cannot shrink the tunnel to nothing. Returns the new inner MTU when it lowered what
    /// was known.
    @discardableResult
    public func learnPathMTU(outerMTU: Int, now: Double, ceiling: Int, floor: Int = defaultMinimumPathMTU,
                             overhead: Int = Encapsulation.ipv4HeaderLength) -> Int? {
        let inner = max(floor, outerMTU) - overhead
        let current = currentMTU(now: now) ?? ceiling
        guard inner < current else { return nil }
        learnedMTU.store(inner, ordering: .relaxed)
        learnedMTUExpiry.store(Self.milliseconds(now + Self.pathMTUExpirySeconds), ordering: .relaxed)
        return inner
    }

    /// The learned inner MTU, while it has not expired.
    public func currentMTU(now: Double) -> Int? {
        let mtu = learnedMTU.load(ordering: .relaxed)
        guard mtu > 0, Self.milliseconds(now) < learnedMTUExpiry.load(ordering: .relaxed) else { return nil }
        return mtu
    }

    /// An ICMP error (other than "fragmentation needed") came back about a packet sent to the peer.
    public func noteError(now: Double) {
        errorWindowEnd.store(Self.milliseconds(now + Self.errorWindowSeconds), ordering: .relaxed)
        errorCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// Like ip_tunnel_xmit: while the window is open, each packet sent uses up one reported error and
    /// its sender is told the host is unreachable. True when this packet's sender should be told.
    public func takeError(now: Double) -> Bool {
        guard errorCount.load(ordering: .relaxed) > 0 else { return false }
        guard Self.milliseconds(now) < errorWindowEnd.load(ordering: .relaxed) else {
            errorCount.store(0, ordering: .relaxed)
            return false
        }
        errorCount.wrappingSubtract(1, ordering: .relaxed)
        return true
    }

    /// A router reported the peer unreachable less than 30 s ago.
    public func isInErrorWindow(now: Double) -> Bool {
        Self.milliseconds(now) < errorWindowEnd.load(ordering: .relaxed)
    }

    /// Set by the route watcher when the route to the endpoint leads into the tunnel itself.
    public var isLooping: Bool {
        get { looping.load(ordering: .relaxed) }
    }

    public func setLooping(_ value: Bool) { looping.store(value, ordering: .relaxed) }
}

/// The IP identifications of the outer packets sent to one peer lately, as one range per second for the
/// last `window` seconds: the peer's counter only goes up, so a second's packets took the IDs from its
/// first to its last, and no others. ICMP errors come back within a round trip; a forger who cannot see
/// the peer's packets has to guess one of the IDs of the last few seconds. Written by the encapsulator (a load and a store per packet), read by the
/// capture thread; a torn read only makes one check looser or stricter for that second.
final class SentIdentifications: Sendable {
    static let window = 3
    private static let slots = 4

    private final class Second: Sendable {
        let second = Atomic<Int>(-1)
        let first = Atomic<UInt16>(0)
        let last = Atomic<UInt16>(0)
    }

    private let seconds = (0..<SentIdentifications.slots).map { _ in Second() }

    @inline(__always)
    func note(_ identification: UInt16, now: Double) {
        let second = Int(now)
        let slot = seconds[second & (Self.slots - 1)]
        if slot.second.load(ordering: .relaxed) != second {
            slot.first.store(identification, ordering: .relaxed)
            slot.second.store(second, ordering: .relaxed)
        }
        slot.last.store(identification, ordering: .relaxed)
    }

    func contains(_ identification: UInt16, now: Double) -> Bool {
        let current = Int(now)
        for slot in seconds {
            let second = slot.second.load(ordering: .relaxed)
            guard second >= 0, current - second <= Self.window, second <= current else { continue }
            let first = slot.first.load(ordering: .relaxed), last = slot.last.load(ordering: .relaxed)
            // IDs wrap at 65,536: compare distances from the second's first ID.
            if identification &- first <= last &- first { return true }
        }
        return false
    }
}

/// What an ICMP error about one of our outer packets quotes of it (RFC 792: the IP header and at least 8
/// bytes more; RFC 4443: as much as fits in 1280 bytes): the outer IPv4 packet's identification and its
/// total length, and a sample of the inner packet — its first 8 bytes (version, TOS/traffic class, length
/// and IPv4 ID or IPv6 flow label), which routers leave as they are. An IPv6 outer header has no
/// identification: its sample also takes the 8 bytes behind the inner IP header (ports and sequence
/// number, ICMP identifier), which every ICMPv6 error quotes. A forger off the path has to guess all of
/// them for one packet sent in the last seconds.
public struct OuterPacketQuote: Equatable, Sendable {
    /// nil for an IPv6 outer header.
    public var identification: UInt16?
    public var outerLength: UInt16
    /// The inner packet's sample, loaded as it lies in memory.
    public var innerSample: UInt64

    public init(identification: UInt16?, outerLength: UInt16, innerSample: UInt64) {
        self.identification = identification
        self.outerLength = outerLength
        self.innerSample = innerSample
    }

    /// The quote of an outer packet of `outerLength` bytes around `inner`. Bytes the inner packet lacks
    /// count as zeros (the encapsulator sends no packet shorter than 8 bytes).
    @inline(__always)
    init(identification: UInt16?, outerLength: Int, inner: UnsafeRawBufferPointer) {
        self.init(identification: identification, outerLength: UInt16(truncatingIfNeeded: outerLength),
                  innerSample: Self.sample(inner, deep: identification == nil))
    }

    @inline(__always)
    static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        guard offset < bytes.count else { return 0 }
        if bytes.count - offset >= 8 { return bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset...])) }
        return value
    }

    /// The transport header's offset in the inner packet: what the deep sample takes 8 bytes at.
    @inline(__always)
    static func transportOffset(_ inner: UnsafeRawBufferPointer) -> Int {
        guard let first = inner.first else { return 0 }
        return first >> 4 == 6 ? IPv6PacketView.headerLength : Int(first & 0x0F) * 4
    }

    @inline(__always)
    static func sample(_ inner: UnsafeRawBufferPointer, deep: Bool) -> UInt64 {
        let head = load(inner, at: 0)
        guard deep else { return head }
        let transport = load(inner, at: transportOffset(inner))
        return head ^ (transport << 29 | transport >> 35)
    }

    /// How many bytes of an inner packet of `length` bytes a quote must hold to be checked: RFC 792's 8,
    /// and with the deep sample the transport header's first 8 too (or the whole of a shorter packet).
    static func neededInner(_ quoted: UnsafeRawBufferPointer, length: Int, deep: Bool) -> Int {
        deep ? max(8, min(length, transportOffset(quoted) + 8)) : 8
    }

    /// The quote in an ICMP error's body: `outer` describes the quoted outer header, `quotedInner` is
    /// what it quotes of the inner packet, which was `innerLength` bytes long. nil when the quote holds too
    /// little to be checked.
    init?(identification: UInt16?, outerLength: Int, quotedInner: UnsafeRawBufferPointer, innerLength: Int) {
        guard quotedInner.count >= Self.neededInner(quotedInner, length: innerLength, deep: identification == nil) else {
            return nil
        }
        // What the router did not quote of a longer packet is not sampled by the sender either only when
        // the packet ended there: cut the view to the packet's own length.
        let inner = UnsafeRawBufferPointer(rebasing: quotedInner[0..<min(quotedInner.count, max(innerLength, 8))])
        self.init(identification: identification, outerLength: outerLength, inner: inner)
    }

    /// The quote in an ICMP error's body that starts with a plain IPv4 outer header (protocol 4 or 41):
    /// that header and at least 8 bytes of the inner packet behind it.
    public init?(quoted: UnsafeRawBufferPointer) {
        guard quoted.count >= 20 else { return nil }
        let headerLength = Int(quoted[0] & 0x0F) * 4
        let outerLength = Int(quoted.uint16(at: 2))
        guard headerLength >= 20, quoted.count >= headerLength else { return nil }
        self.init(identification: quoted.uint16(at: 4), outerLength: outerLength,
                  quotedInner: UnsafeRawBufferPointer(rebasing: quoted[headerLength...]), innerLength: outerLength - headerLength)
    }

    /// Packets longer than this are the ones a smaller path MTU stops: `SentQuotes` keeps them apart.
    static let largeOuterLength: UInt16 = 576
}

/// A keyed 32-bit digest of the quote of each of the last outer packets sent to one peer: the last 128 of
/// up to 576 bytes and, apart, the last 128 larger ones (1 KiB per peer), so that a stream of small packets
/// does not push out the large ones a path MTU report is about. A report is believed only when its quote's
/// digest is among them: a forger must guess the ID, the length and the inner packet's first bytes of a
/// packet sent lately. A report that comes back after 128 more packets of its size class went to the peer is
/// not believed either (a sender whose packets stopped fitting soon stops sending them, and its next one
/// is reported in time). The key keeps a forger from crafting quotes that collide. Written by the
/// encapsulator (one store per packet), searched by the capture thread (only for the few reports the
/// budget lets through).
final class SentQuotes: Sendable {
    private static let slots = 128

    private final class Ring: Sendable {
        let digests: InlineArray<128, Atomic<UInt32>>
        let next = Atomic<Int>(0)
        init() { digests = InlineArray { _ in Atomic(0) } }

        @inline(__always)
        func note(_ digest: UInt32) {
            let slot = next.load(ordering: .relaxed)
            digests[slot].store(digest, ordering: .relaxed)
            next.store((slot + 1) & (SentQuotes.slots - 1), ordering: .relaxed)
        }

        func contains(_ digest: UInt32) -> Bool {
            for slot in 0..<SentQuotes.slots where digests[slot].load(ordering: .relaxed) == digest { return true }
            return false
        }
    }

    private let small = Ring(), large = Ring()
    private let key0 = UInt64.random(in: .min ... .max)
    private let key1 = UInt64.random(in: .min ... .max)

    @inline(__always)
    private func digest(_ quote: OuterPacketQuote) -> UInt32 {
        // Two rounds of a 64-bit finalizer (MurmurHash3's fmix64) over the key-masked fields.
        var x = quote.innerSample ^ key0
        x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        x ^= (UInt64(quote.identification ?? 0) << 16 | UInt64(quote.outerLength)) ^ key1
        x = (x ^ (x >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return UInt32(truncatingIfNeeded: x) | 1   // 0 marks a slot nothing was sent through
    }

    @inline(__always)
    private func ring(for quote: OuterPacketQuote) -> Ring {
        quote.outerLength > OuterPacketQuote.largeOuterLength ? large : small
    }

    @inline(__always)
    func note(_ quote: OuterPacketQuote) { ring(for: quote).note(digest(quote)) }

    func contains(_ quote: OuterPacketQuote) -> Bool { ring(for: quote).contains(digest(quote)) }
}
