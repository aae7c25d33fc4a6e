import Synchronization

/// Whether a gateway carries traffic. Every gateway is active unless it is one box of an HA pair
/// (`uplink.standby-when-absent`) whose uplink address keepalived has given to the other box: then it is
/// the standby, with everything set up but nothing answered or sent, ready to take over.
public enum GatewayRole: String, Sendable, Codable, Equatable {
    case active, standby
}

/// The role the threads share: the role watcher sets it when the uplink address comes or goes; the
/// packet loops read it once per burst (one relaxed atomic load).
public final class RoleState: Sendable {
    private let standby: Atomic<Bool>
    private let changeCount = Atomic<UInt64>(0)
    /// Monotonic seconds of the last change (or of the start), as the bits of a Double.
    private let changedAtBits: Atomic<UInt64>

    public init(_ role: GatewayRole, now: Double) {
        standby = Atomic(role == .standby)
        changedAtBits = Atomic(now.bitPattern)
    }

    @inline(__always)
    public var isActive: Bool { !standby.load(ordering: .relaxed) }

    public var current: GatewayRole { isActive ? .active : .standby }

    /// How many times the role changed since the start.
    public var changes: UInt64 { changeCount.load(ordering: .relaxed) }

    /// When the role last changed (or the gateway started), in monotonic seconds.
    public var since: Double { Double(bitPattern: changedAtBits.load(ordering: .relaxed)) }

    /// Takes `role`; true when that is a change. Called by one thread (the role watcher).
    @discardableResult
    public func set(_ role: GatewayRole, now: Double) -> Bool {
        guard role != current else { return false }
        changedAtBits.store(now.bitPattern, ordering: .relaxed)
        changeCount.wrappingAdd(1, ordering: .relaxed)
        standby.store(role == .standby, ordering: .releasing)
        return true
    }
}
