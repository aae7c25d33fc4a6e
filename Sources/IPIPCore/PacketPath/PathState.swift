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
    /// The IP identification of the next outer packet to the peer: a counter per peer, as Linux keeps
    /// one per destination, so that the IDs sent to a peer in a second are exactly a range.
    private let nextIdentification: Atomic<UInt16>

    /// `firstIdentification`: where the peer's IDs start (at random, unless a test needs to know).
    public init(firstIdentification: UInt16 = UInt16.random(in: 1...UInt16.max)) {
        nextIdentification = Atomic(firstIdentification == 0 ? 1 : firstIdentification)
    }

    /// The identification for the next outer packet to the peer, remembered as sent (used by the
    /// encapsulator's thread only). Never 0, which would let the kernel pick one.
    @inline(__always)
    public func takeIdentification(now: Double) -> UInt16 {
        let identification = nextIdentification.load(ordering: .relaxed)
        let next = identification &+ 1
        nextIdentification.store(next == 0 ? 1 : next, ordering: .relaxed)
        sent.note(identification, now: now)
        return identification
    }

    /// Remembers `identification` as sent to the peer (tests).
    public func noteSent(identification: UInt16, now: Double) {
        sent.note(identification, now: now)
    }

    /// Whether an outer packet with `identification` went to the peer in the last
    /// `SentIdentifications.window` seconds: what a router's ICMP error must quote to be believed.
    public func sentRecently(identification: UInt16, now: Double) -> Bool {
        sent.contains(identification, now: now)
    }

    static func milliseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1000) }

    /// Linux's net.ipv4.route.min_pmtu: no report lowers an outer path MTU below this.
    public static let defaultMinimumPathMTU = 552

    /// A router reported `outerMTU` for packets to the peer: inner packets must fit in it minus 20. The
    /// outer MTU is floored at `floor` (`tunnel.min-pmtu`), so that a forged report cannot shrink the
    /// tunnel to nothing. Returns the new inner MTU when it lowered what was known.
    @discardableResult
    public func learnPathMTU(outerMTU: Int, now: Double, ceiling: Int, floor: Int = defaultMinimumPathMTU) -> Int? {
        let inner = max(floor, outerMTU) - KernelPlan.encapsulationOverhead
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
