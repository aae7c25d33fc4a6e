#if canImport(Glibc)
import Glibc
#endif
import IPIPCore

/// Where the integration tests make the configurator fail as if the kernel refused a change, so that
/// every rollback path runs with real steps: `IPIPD_DEBUG_FAIL_STEP=N` fails step N of a start,
/// `IPIPD_DEBUG_FAIL_RELOAD_ACTION=N` the N-th change of a reload. Debug builds only: in a release
/// build (and so in the package) the environment is never read and no check can fail.
struct FailPoint {
    var step: Int?
    var reloadAction: Int?

    static func fromEnvironment() -> FailPoint {
        #if DEBUG
        func number(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) }.flatMap { $0 > 0 ? $0 : nil } }
        return FailPoint(step: number("IPIPD_DEBUG_FAIL_STEP"), reloadAction: number("IPIPD_DEBUG_FAIL_RELOAD_ACTION"))
        #else
        return FailPoint()
        #endif
    }

    /// Fails before step `number` (1-based) of `changes` is taken.
    func check(step number: Int, of changes: [KernelChange]) throws(SystemError) {
        #if DEBUG
        guard number == step else { return }
        throw SystemError("step \(number)/\(changes.count): \(changes[number - 1])", errno: ECANCELED, detail: "IPIPD_DEBUG_FAIL_STEP")
        #endif
    }

    /// A batch of tunnel routes from `start` stops before the failing step, which then fails on its own.
    func end(ofBatchFrom start: Int, to end: Int) -> Int {
        guard let step, step - 1 > start, step - 1 < end else { return end }
        return step - 1
    }

    func check(reloadAction number: Int) throws(SystemError) {
        #if DEBUG
        guard number == reloadAction else { return }
        throw SystemError("reload change \(number)", errno: ECANCELED, detail: "IPIPD_DEBUG_FAIL_RELOAD_ACTION")
        #endif
    }
}
