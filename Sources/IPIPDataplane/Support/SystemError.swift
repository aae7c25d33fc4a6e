#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failed system or library call: what was attempted, and the errno or library message.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32?
    public var detail: String?

    public init(_ operation: String, errno: Int32? = nil, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// From what a swift-system call threw (an `Errno`, or anything else as its description).
    public init(_ operation: String, _ error: any Error) {
        if let errno = error as? Errno {
            self.init(operation, errno: errno.rawValue)
        } else {
            self.init(operation, detail: "\(error)")
        }
    }

    /// Captures the current errno.
    public static func fromErrno(_ operation: String) -> SystemError {
        SystemError(operation, errno: Glibc.errno)
    }

    public var description: String {
        operation + ": " + reason
    }

    /// Why it failed, without the operation: "No such file or directory".
    public var reason: String {
        [errno.map { String(cString: strerror($0)) }, detail].compactMap { $0 }.joined(separator: ": ")
    }
}

/// Retries a system call interrupted by a signal (EINTR) and returns its result, errno left as the
/// last attempt set it. Every read, write, send, receive and accept of ipipd's goes through this or
/// `retryingOnInterrupt`; a poll that a signal interrupts is a wait that ended early, which each poll
/// loop already takes as a timeout.
@inline(__always)
func retryOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result < 0 && Glibc.errno == EINTR { continue }
        return result
    }
}

/// Retries a call interrupted by a signal; throws on any other failure (swift-system's pattern).
@inline(__always)
func retryingOnInterrupt<T: BinaryInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(SystemError) -> T {
    let result = retryOnInterrupt(call)
    guard result >= 0 else { throw SystemError.fromErrno(operation()) }
    return result
}
