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

    public init() {}

    static func milliseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1000) }

    /// A router reported `outerMTU` for packets to the peer: inner packets must fit in it minus 20.
    /// Returns the new inner MTU when it lowered what was known.
    @discardableResult
    public func learnPathMTU(outerMTU: Int, now: Double, ceiling: Int) -> Int? {
        let inner = max(68, outerMTU - KernelPlan.encapsulationOverhead)
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
