#if canImport(Glibc)
import Glibc
#endif

/// The daemon's control socket: a Unix stream socket, mode 0600 (root only), in the runtime
/// directory. Each connection receives one status document and is closed.
public final class ControlSocket: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws(SystemError) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.fromErrno("open the control socket") }
        unlink(path)   // a stale socket from a killed predecessor
        var address = try Self.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 8) == 0 else {
            let error = SystemError.fromErrno("listen on \(path)")
            Glibc.close(fd)
            throw error
        }
    }

    static func address(_ path: String) throws(SystemError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("use \(path) as a socket path", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return address
    }

    /// Serves connections until `stop` is set. A client sends one command line ("status" or "reload";
    /// nothing within half a second means "status") and gets `answer(command)` back.
    public func serve(until stop: StopSignal, answer: (String) -> [UInt8]) {
        while !stop.isStopped {
            guard waitReadable(fd, timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            var command = ""
            if waitReadable(client, timeoutMilliseconds: 500) {
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = recv(client, &buffer, buffer.count, 0)
                if count > 0 {
                    command = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: "\n")
                }
            }
            let bytes = answer(command)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { break }
                offset += written
            }
            Glibc.close(client)
        }
    }

    public func close() {
        Glibc.close(fd)
        unlink(path)
    }

    /// Client side: connects to the socket at `path`, sends `command` and reads the whole reply.
    public static func request(path: String, command: String = "status") throws(SystemError) -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.fromErrno("open a socket") }
        defer { Glibc.close(fd) }
        var address = try Self.address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw SystemError.fromErrno("connect to \(path)") }
        let line = Array((command + "\n").utf8)
        _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            reply += buffer[0..<count]
        }
        return reply
    }
}
