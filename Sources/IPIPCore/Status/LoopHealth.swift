import Synchronization

/// How one dataplane loop is doing, as `ipipd status` shows it: written by the loop's thread, read by
/// the control socket's. A loop that cannot read its device retries with a growing pause; one that
/// keeps failing ends the daemon (non-zero, so that systemd restarts it) instead of leaving a live
/// process with a dead dataplane.
public final class LoopHealth: Sendable {
    public enum State: Int, Sendable, Codable {
        case starting, running
        /// Reading failed; the loop retries (`lastError` says why).
        case retrying
        /// The interface is down: nothing to read until it comes back up.
        case waitingForLink
        case failed, stopped

        public var label: String {
            switch self {
            case .starting: "starting"
            case .running: "running"
            case .retrying: "retrying"
            case .waitingForLink: "waiting for the link"
            case .failed: "failed"
            case .stopped: "stopped"
            }
        }
    }

    public let name: String
    private let state = Atomic<Int>(State.starting.rawValue)
    private let errors = Atomic<UInt64>(0)
    private let error = Mutex<String?>(nil)

    public init(name: String) { self.name = name }

    public var current: State { State(rawValue: state.load(ordering: .relaxed)) ?? .failed }
    public var errorCount: UInt64 { errors.load(ordering: .relaxed) }
    public var lastError: String? { error.withLock { $0 } }

    public func set(_ new: State) { state.store(new.rawValue, ordering: .relaxed) }

    /// A read failed: counted, remembered, and the loop is `retrying` (or waiting for its link).
    public func noteError(_ description: String, linkDown: Bool = false) {
        errors.wrappingAdd(1, ordering: .relaxed)
        error.withLock { $0 = description }
        set(linkDown ? .waitingForLink : .retrying)
    }
}

/// The retry policy of a loop whose reads fail: pauses that double from 100 ms to 2 s, and a verdict
/// once failures have lasted `giveUpAfter` seconds without one success in between. A link that is
/// down is waited for, however long, since restarting cannot bring it up.
public struct RetryPolicy: Sendable {
    public var giveUpAfter = 30.0
    private var failingSince: Double?
    private var pause = 0.1

    public init(giveUpAfter: Double = 30) { self.giveUpAfter = giveUpAfter }

    /// A read worked: the next failure starts afresh.
    public mutating func succeeded() {
        failingSince = nil
        pause = 0.1
    }

    /// A read failed at `now`: how long to pause, or nil when it is time to give up.
    public mutating func failed(now: Double, linkDown: Bool) -> Double? {
        if linkDown {
            failingSince = nil
        } else {
            let since = failingSince ?? now
            failingSince = since
            if now - since >= giveUpAfter { return nil }
        }
        defer { pause = min(pause * 2, 2) }
        return pause
    }
}

/// A 32-bit counter kept by someone else (libpcap's drop counts) as a 64-bit total that never goes
/// down: the difference since the last reading is added, modulo 2³², so a wrap is not a reset.
public struct WrappingCounter32: Sendable, Equatable {
    private var last: UInt32?
    public private(set) var total: UInt64 = 0

    public init() {}

    public mutating func update(_ reading: UInt32) {
        total &+= UInt64(reading &- (last ?? 0))
        last = reading
    }
}
