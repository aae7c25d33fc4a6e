#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import Synchronization

/// An eventfd that another thread signals to end a loop's poll(2) early: the role watcher wakes the
/// proxy-ARP loops, so that a box that has just become active announces its ghost hosts at once rather
/// than at its next poll timeout.
public final class WakeUp: Sendable {
    let fd: Int32

    public init() throws(SystemError) {
        fd = CIPIPShims_eventfd()
        guard fd >= 0 else { throw SystemError.fromErrno("create an eventfd") }
    }

    deinit { close(fd) }

    public func signal() {
        var one: UInt64 = 1
        _ = retryOnInterrupt { write(fd, &one, MemoryLayout<UInt64>.size) }
    }

    /// Clears the signal (the eventfd is non-blocking: nothing to clear is fine).
    public func clear() {
        var value: UInt64 = 0
        _ = retryOnInterrupt { read(fd, &value, MemoryLayout<UInt64>.size) }
    }
}

/// The wake-ups of the loops that want to hear of a role change at once.
public final class WakeUpList: Sendable {
    private let members = Mutex<[WakeUp]>([])
    public init() {}
    public func add(_ wakeUp: WakeUp) { members.withLock { $0.append(wakeUp) } }
    public func signalAll() { for wakeUp in members.withLock({ $0 }) { wakeUp.signal() } }
}
