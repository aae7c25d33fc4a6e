#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import Synchronization

/// A POSIX thread for one blocking loop (TUN reader, capture, control socket). The async thread pool
/// has one thread per core, and a loop blocked in read(2) or poll(2) would starve it.
public final class DedicatedThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void
    public let name: String

    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        self.name = name
        self.body = body
        let box = Unmanaged.passRetained(self)
        let result = pthread_create(&thread, nil, { argument in
            let me = Unmanaged<DedicatedThread>.fromOpaque(argument!).takeRetainedValue()
            _ = CIPIPShims_setThreadName(me.name)
            me.body()
            return nil
        }, box.toOpaque())
        if result != 0 {
            box.release()
            throw SystemError("start thread \(name)", errno: result)
        }
    }

    public func join() {
        pthread_join(thread, nil)
    }
}

/// Waits until `fd` is readable or `timeout` ms pass; true when readable.
func waitReadable(_ fd: Int32, timeoutMilliseconds: Int32) -> Bool {
    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let ready = poll(&descriptor, 1, timeoutMilliseconds)
    return ready > 0 && descriptor.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
}

/// Waits until `first` or `second` is readable (or reports an error) or `timeout` ms pass; says which.
func waitReadable(_ first: Int32, _ second: Int32, timeoutMilliseconds: Int32) -> (first: Bool, second: Bool) {
    var descriptors = (pollfd(fd: first, events: Int16(POLLIN), revents: 0), pollfd(fd: second, events: Int16(POLLIN), revents: 0))
    let ready = withUnsafeMutableBytes(of: &descriptors) { poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, timeoutMilliseconds) }
    guard ready > 0 else { return (false, false) }
    let readable = Int16(POLLIN | POLLERR | POLLHUP)
    return (descriptors.0.revents & readable != 0, descriptors.1.revents & readable != 0)
}
