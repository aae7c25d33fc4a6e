#if canImport(Glibc)
import Glibc
#endif
import IPIPCore

/// A listening stream socket served by one thread, for the control socket and the metrics endpoint:
/// each client sends one request and gets one answer. Bounded as a daemon facing clients it does not
/// trust must be: at most `maximumClients` at once, requests cut at `maximumRequest` bytes,
/// `firstByteTimeout` seconds to start a request and `clientTimeout` for a whole exchange, and writes
/// that never block, so no client can stall the thread, and a stop is noticed within 100 ms whatever
/// the clients do. Clients that connect and send nothing cannot hold the table either: when it is full
/// (or one source address holds `maximumClientsPerSource`), a newcomer takes the place of the client
/// that has waited longest without a complete request; only when every client has one do newcomers
/// wait in the kernel's backlog.
public final class StreamServer: @unchecked Sendable {
    public struct Limits: Sendable {
        public var maximumClients = 8
        /// Per peer address (TCP; every client of a Unix socket is one source, and the cap is then the total).
        public var maximumClientsPerSource = 4
        public var maximumRequest = 4096
        public var clientTimeout = 5.0
        /// A client that has sent nothing for this long after connecting is closed.
        public var firstByteTimeout = 1.0
        /// Answer what arrived once the client sent nothing new for this long (nil: wait for a complete
        /// request until `clientTimeout`, then close without an answer).
        public var answerWhenIdle: Double?
        public init() {}
    }

    private let fd: Int32
    public let limits: Limits

    /// Takes over a listening socket.
    init(listening fd: Int32, limits: Limits) {
        self.fd = fd
        self.limits = limits
        // The backlog is drained in one go: accept(2) must say EAGAIN when it is empty, not wait.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    private final class Client {
        private(set) var fd: Int32
        /// The peer's address (TCP), for the per-source cap; nil for a Unix socket's clients.
        let source: [UInt8]?
        /// Until the request is complete, then until the answer is written.
        var deadline: Double
        var lastInput: Double
        /// The client shut its side down (or it failed): its request is what arrived.
        var doneSending = false
        var request: [UInt8] = []
        var answer: [UInt8]?
        var written = 0

        init(fd: Int32, source: [UInt8]?, now: Double, timeout: Double) {
            self.fd = fd
            self.source = source
            deadline = now + timeout
            lastInput = now
        }

        var isOpen: Bool { fd >= 0 }
        /// Still without a whole request: a newcomer may take its place.
        var isEvictable: Bool { answer == nil }

        func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// Serves clients until `stop` is set. `isComplete` says when the bytes received so far make a whole
    /// request; `answer` gets the request (complete, cut at the size limit, or what arrived before the
    /// client went idle or shut its side down) and returns the bytes to send back, or nil to close
    /// without an answer.
    public func serve(until stop: StopSignal, isComplete: ([UInt8]) -> Bool, answer: ([UInt8]) -> [UInt8]?) {
        var clients: [Client] = []
        defer { for client in clients { client.close() } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A newcomer whose request came with its connection waits for no event: the next round must
        // not sleep a poll interval before answering it (every status and scrape took 100 ms more).
        var newcomerWaits = false
        while !stop.isStopped {
            // The listener is polled while a newcomer could be taken in: a free place, or one to take.
            let canTakeNewcomer = clients.count < limits.maximumClients || clients.contains { $0.isEvictable }
            var descriptors = [pollfd(fd: fd, events: canTakeNewcomer ? Int16(POLLIN) : 0, revents: 0)]
            for client in clients {
                descriptors.append(pollfd(fd: client.fd, events: Int16(client.answer == nil ? POLLIN : POLLOUT), revents: 0))
            }
            _ = poll(&descriptors, nfds_t(descriptors.count), newcomerWaits ? 0 : StopSignal.pollIntervalMilliseconds)
            newcomerWaits = false
            let now = monotonicSeconds()
            for (client, descriptor) in zip(clients, descriptors.dropFirst()) {
                if client.answer == nil {
                    if descriptor.revents != 0 { receive(client, into: &buffer, now: now) }
                    guard client.isOpen else { continue }
                    if client.request.isEmpty && !client.doneSending && now - client.lastInput >= limits.firstByteTimeout {
                        client.close()
                        continue
                    }
                    let idle = limits.answerWhenIdle.map { now - client.lastInput >= $0 } ?? false
                    if client.request.count >= limits.maximumRequest || client.doneSending || idle || isComplete(client.request) {
                        client.answer = answer(client.request)
                        if client.answer == nil { client.close() }
                        client.deadline = monotonicSeconds() + limits.clientTimeout
                    }
                }
                if client.answer != nil { send(client) }
                if client.isOpen && monotonicSeconds() >= client.deadline { client.close() }
            }
            clients.removeAll { !$0.isOpen }
            // The whole backlog, so that clients that reconnect as fast as they are dropped cannot keep
            // a newcomer's connection waiting behind theirs; what a newcomer sent with its connection is
            // read at once (a real client asks right away).
            if descriptors[0].revents & Int16(POLLIN) != 0 {
                for _ in 0..<Self.acceptsPerWakeup {
                    guard let newcomer = acceptClient(now: now) else { break }
                    receive(newcomer, into: &buffer, now: now)
                    guard newcomer.isOpen else { continue }
                    admit(newcomer, into: &clients)
                    if newcomer.isOpen && (!newcomer.request.isEmpty || newcomer.doneSending) { newcomerWaits = true }
                }
            }
        }
    }

    /// At most this many connections taken from the backlog per wakeup (a listen backlog's worth).
    static let acceptsPerWakeup = 32

    /// Makes room for `newcomer` (its source's or the table's longest waiting client without a whole
    /// request goes: one that has sent nothing before one that has sent part of a request), or closes it
    /// when none can go.
    private func admit(_ newcomer: Client, into clients: inout [Client]) {
        func longestWaiting(_ candidates: some Sequence<Client>) -> Client? {
            candidates.filter(\.isEvictable).min { ($0.request.isEmpty ? 0 : 1, $0.lastInput) < ($1.request.isEmpty ? 0 : 1, $1.lastInput) }
        }
        if let source = newcomer.source {
            let sameSource = clients.filter { $0.source == source }
            if sameSource.count >= limits.maximumClientsPerSource {
                guard let evicted = longestWaiting(sameSource) else { return newcomer.close() }
                evicted.close()
                clients.removeAll { !$0.isOpen }
            }
        }
        if clients.count >= limits.maximumClients {
            guard let evicted = longestWaiting(clients) else { return newcomer.close() }
            evicted.close()
            clients.removeAll { !$0.isOpen }
        }
        clients.append(newcomer)
    }

    private func acceptClient(now: Double) -> Client? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in retryOnInterrupt { accept(fd, address, &length) } }
        }
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        return Client(fd: client, source: Self.peerAddress(address), now: now, timeout: limits.clientTimeout)
    }

    /// The IP address of a TCP peer (its port left out); nil for any other family.
    static func peerAddress(_ address: sockaddr_storage) -> [UInt8]? {
        var copy = address
        return withUnsafeBytes(of: &copy) { raw -> [UInt8]? in
            switch Int32(address.ss_family) {
            case AF_INET: Array(raw[4..<8])     // sin_addr
            case AF_INET6: Array(raw[8..<24])   // sin6_addr
            default: nil
            }
        }
    }

    /// Reads what is there, up to the request limit.
    private func receive(_ client: Client, into buffer: inout [UInt8], now: Double) {
        let room = min(buffer.count, limits.maximumRequest - client.request.count)
        guard room > 0 else { return }
        let count = buffer.withUnsafeMutableBytes { bytes in retryOnInterrupt { recv(client.fd, bytes.baseAddress, room, Int32(MSG_DONTWAIT)) } }
        if count > 0 {
            client.request += buffer[0..<count]
            client.lastInput = now
        } else if count == 0 {
            client.doneSending = true
        } else if errno != EAGAIN {
            client.close()
        }
    }

    /// Writes as much of the answer as the socket takes without blocking; closes when all of it went.
    private func send(_ client: Client) {
        guard let answer = client.answer else { return }
        while client.written < answer.count {
            let count = answer[client.written...].withUnsafeBytes { bytes in
                retryOnInterrupt { Glibc.send(client.fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
            if count > 0 {
                client.written += count
            } else if count < 0 && errno == EAGAIN {
                return   // the socket buffer is full: poll says when to go on
            } else {
                break
            }
        }
        client.close()
    }
}

extension StreamServer {
    /// A TCP listener on `address:port` (the metrics endpoint).
    public static func listenTCP(_ endpoint: GatewayConfig.ListenAddress, limits: Limits) throws(SystemError) -> StreamServer {
        let family = if case .v6 = endpoint.host { AF_INET6 } else { AF_INET }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.fromErrno("open a TCP socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        switch endpoint.host {
        case .v4(let address):
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = endpoint.port.bigEndian
            socketAddress.sin_addr.s_addr = address.value.bigEndian
            bound = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let address):
            // This address only, not the IPv4 ones mapped into `::`.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = endpoint.port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { address.bytes.withUnsafeBytes($0.copyMemory(from:)) }
            bound = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let error = SystemError.fromErrno("listen on \(endpoint)")
            close(fd)
            throw error
        }
        return StreamServer(listening: fd, limits: limits)
    }

    /// A Unix stream socket at `path`, mode 0600 from the moment it exists (the control socket). A stale
    /// socket (or anything else) at `path` is removed first; unlink(2) never follows a symbolic link.
    public static func listenUnix(path: String, limits: Limits) throws(SystemError) -> StreamServer {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.fromErrno("open a Unix socket") }
        unlink(path)
        // bind(2) creates the file with the umask's mode; set it so that there is no moment at which
        // anyone but the owner could connect.
        let previousMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previousMask)
        guard bound == 0, listen(fd, 64) == 0 else {
            let error = SystemError.fromErrno("listen on \(path)")
            close(fd)
            throw error
        }
        return StreamServer(listening: fd, limits: limits)
    }

    static func unixAddress(_ path: String) throws(SystemError) -> sockaddr_un {
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
}
