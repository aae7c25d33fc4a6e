#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// What a dataplane loop does when reading its device fails: count it in the loop's health, log it
/// (throttled), pause — watching the stop signal — and try again; when failures have lasted
/// `RetryPolicy.giveUpAfter` seconds, declare the loop failed and call `giveUp`, which ends the daemon
/// with a non-zero status so that systemd restarts it. A link that is down is waited for.
struct LoopFailures {
    let health: LoopHealth
    let stop: StopSignal
    let log: ThrottledLog
    let giveUp: @Sendable (String) -> Void
    private var policy: RetryPolicy

    init(health: LoopHealth, stop: StopSignal, logger: Logger, giveUpAfter: Double, giveUp: @escaping @Sendable (String) -> Void) {
        self.health = health
        self.stop = stop
        self.giveUp = giveUp
        policy = RetryPolicy(giveUpAfter: giveUpAfter)
        log = ThrottledLog(logger: logger, message: "a dataplane loop cannot read; retrying", interval: 5)
        // The loop's thread is about to read: it runs, even if nothing arrives (an idle standby).
        health.set(.running)
    }

    /// After a read that worked.
    @inline(__always)
    mutating func succeeded() {
        if health.current != .running {
            health.set(.running)
            policy.succeeded()
        }
    }

    /// After a read that failed; false when the loop must end (stopping, or given up).
    mutating func failed(_ error: SystemError) -> Bool {
        let linkDown = error.errno == ENETDOWN
        health.noteError("\(error)", linkDown: linkDown)
        log.note(["loop": "\(health.name)", "error": "\(error)"])
        guard let pause = policy.failed(now: monotonicSeconds(), linkDown: linkDown) else {
            health.set(.failed)
            giveUp("\(health.name): \(error), for \(Int(policy.giveUpAfter)) s")
            return false
        }
        let until = monotonicSeconds() + pause
        while !stop.isStopped && monotonicSeconds() < until { usleep(20_000) }
        return !stop.isStopped
    }
}

/// What every dataplane loop gets from the gateway: the published snapshot, the role (active or an HA
/// pair's standby), the stop signal, the logger, and whom to tell when it gives up.
struct LoopContext: Sendable {
    let box: SnapshotBox
    let role: RoleState
    let stop: StopSignal
    let logger: Logger
    let giveUpAfter: Double
    let giveUp: @Sendable (String) -> Void

    func failures(for health: LoopHealth) -> LoopFailures {
        LoopFailures(health: health, stop: stop, logger: logger, giveUpAfter: giveUpAfter, giveUp: giveUp)
    }
}
