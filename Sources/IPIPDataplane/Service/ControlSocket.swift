#if canImport(Glibc)
import Glibc
#endif

/// The daemon's control socket: a Unix stream socket, mode 0600 (root and the daemon's user), in the
/// runtime directory. A client sends one command line ("status" or "reload"; nothing within half a
/// second means "status") and gets one JSON document back.
public final class ControlSocket: @unchecked Sendable {
    public let path: String
    private let server: StreamServer
    private let directory: RuntimeDirectory
    private let pinnedName: String?

    public static let limits: StreamServer.Limits = {
        var limits = StreamServer.Limits()
        limits.maximumRequest = 256
        limits.answerWhenIdle = 0.5
        return limits
    }()

    /// Listens at `path`, in `directory` (reached through its descriptor when `path` lies in it).
    public init(path: String, in directory: RuntimeDirectory) throws(SystemError) {
        self.path = path
        self.directory = directory
        let name = String(path.split(separator: "/").last ?? "")
        pinnedName = path == "\(directory.path)/\(name)" ? name : nil
        server = try StreamServer.listenUnix(path: pinnedName.map(directory.pinnedPath) ?? path, limits: Self.limits)
    }

    /// Serves clients until `stop` is set; `answer` gets the command and returns the reply.
    public func serve(until stop: StopSignal, answer: (String) -> [UInt8]) {
        server.serve(until: stop, isComplete: { $0.contains(UInt8(ascii: "\n")) }) { request in
            let line = request.prefix { $0 != UInt8(ascii: "\n") }
            return answer(String(decoding: line, as: UTF8.self))
        }
    }

    /// Removes the socket file (the descriptor closes with this object).
    public func remove() {
        if let pinnedName { directory.remove(pinnedName) } else { unlink(path) }
    }

    /// Client side: connects to the socket at `path`, sends `command` and reads the whole reply. With
    /// `timeoutSeconds`, the whole exchange must end within it (a stopped daemon's kernel still accepts
    /// the connection and the request; only the reply never comes): ETIMEDOUT otherwise.
    public static func request(path: String, command: String = "status", timeoutSeconds: Double? = nil) throws(SystemError) -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.fromErrno("open a socket") }
        defer { Glibc.close(fd) }
        let deadline = timeoutSeconds.map { monotonicSeconds() + $0 }
        /// Bounds the next blocking call by what is left of the deadline; false once it has passed.
        func armTimeout() -> Bool {
            guard let deadline else { return true }
            let left = deadline - monotonicSeconds()
            guard left > 0 else { return false }
            var timeout = timeval(tv_sec: Int(left), tv_usec: Int((left - left.rounded(.down)) * 1e6) + 1)
            let size = socklen_t(MemoryLayout<timeval>.size)
            return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, size) == 0
                && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, size) == 0   // bounds connect() too
        }
        let timedOut = SystemError("wait for an answer from \(path)", errno: ETIMEDOUT)
        var address = try StreamServer.unixAddress(path)
        guard armTimeout() else { throw timedOut }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            if errno == EAGAIN || errno == EINPROGRESS, deadline != nil { throw timedOut }
            throw SystemError.fromErrno("connect to \(path)")
        }
        let line = Array((command + "\n").utf8)
        _ = line.withUnsafeBytes { bytes in retryOnInterrupt { send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            guard armTimeout() else { throw timedOut }
            let count = buffer.withUnsafeMutableBytes { free in retryOnInterrupt { recv(fd, free.baseAddress, free.count, 0) } }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && deadline != nil { throw timedOut }
            guard count > 0 else { break }
            reply += buffer[0..<count]
        }
        return reply
    }
}
