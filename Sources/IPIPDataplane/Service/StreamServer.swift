#if canImport(Glibc)
import Glibc
#endif
import IPIPCore

/// A listening stream socket served by one thread, for the control socket and the metrics endpoint:
/// each client sends one request and gets one answer. Bounded as a daemon facing clients it does not
/// trust must be: at most `maximumClients` served at once (`maximumClientsPerSource` per TCP source)
/// and `maximumWaiting` waiting for a place, requests cut at `maximumRequest` bytes, `firstByteTimeout`
/// seconds to start a request and `clientTimeout` for a whole exchange, and writes that never block, so
/// no client can stall the thread, and a stop is noticed within 100 ms whatever the clients do.
///
/// Clients that connect, send nothing and reconnect the moment they are dropped cannot hold the places
/// either: a newcomer takes the place of the client that has waited longest without a whole request,
/// but only once that client has had `evictionGrace` to send it. The grace bounds how fast such
/// clients can turn the places over; without it a burst of them pushed out a real client whose request
/// was a moment behind its connection. Newcomers wait their turn in order (those that have sent
/// something first) in the waiting room, then in the kernel's backlog.
public final class StreamServer: @unchecked Sendable {
    public struct Limits: Sendable {
        public var maximumClients = 8
        /// Per peer address (TCP; every client of a Unix socket is one source, and the cap is then the total).
        public var maximumClientsPerSource = 4
        /// Accepted clients waiting for a place; beyond them, newcomers wait in the listen backlog.
        public var maximumWaiting = 32
        public var maximumRequest = 4096
        public var clientTimeout = 5.0
        /// A client that has sent nothing for this long after connecting is closed.
        public var firstByteTimeout = 1.0
        /// A client without a whole request keeps its place for at least this long.
        public var evictionGrace = 0.25
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
        let accepted: Double
        /// When it got a place (nil while it waits for one).
        var placed: Double?
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
            accepted = now
            deadline = now + timeout
            lastInput = now
        }

        var isOpen: Bool { fd >= 0 }
        var hasSentSomething: Bool { !request.isEmpty || doneSending }

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
        var waiting: [Client] = []
        defer { for client in clients + waiting { client.close() } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A client placed with its request already in hand waits for no event: the next round must
        // not sleep a poll interval before answering it (every status and scrape took 100 ms more).
        var placedWithRequest = false
        while !stop.isStopped {
            var descriptors = [pollfd(fd: fd, events: waiting.count < limits.maximumWaiting ? Int16(POLLIN) : 0, revents: 0)]
            for client in clients {
                descriptors.append(pollfd(fd: client.fd, events: Int16(client.answer == nil ? POLLIN : POLLOUT), revents: 0))
            }
            // A waiting client is read until its request is whole or cut (then only a hang-up is news).
            for client in waiting {
                let reads = !client.doneSending && client.request.count < limits.maximumRequest && !isComplete(client.request)
                descriptors.append(pollfd(fd: client.fd, events: reads ? Int16(POLLIN) : 0, revents: 0))
            }
            _ = poll(&descriptors, nfds_t(descriptors.count), placedWithRequest ? 0 : StopSignal.pollIntervalMilliseconds)
            let now = monotonicSeconds()
            for (client, descriptor) in zip(clients, descriptors.dropFirst()) {
                if client.answer == nil {
                    if descriptor.revents != 0 { receive(client, into: &buffer, now: now) }
                    guard client.isOpen, !closeIfSilent(client, now: now) else { continue }
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
            for (client, descriptor) in zip(waiting, descriptors.dropFirst(1 + clients.count)) {
                if descriptor.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                    client.close()
                } else if descriptor.revents != 0 {
                    receive(client, into: &buffer, now: now)
                }
                if client.isOpen && !closeIfSilent(client, now: now) && now >= client.deadline { client.close() }
            }
            clients.removeAll { !$0.isOpen }
            waiting.removeAll { !$0.isOpen }
            // The whole backlog, so that clients that reconnect as fast as they are dropped cannot keep
            // a newcomer's connection waiting behind theirs; what a newcomer sent with its connection is
            // read at once (a real client asks right away).
            if descriptors[0].revents & Int16(POLLIN) != 0 {
                while waiting.count < limits.maximumWaiting, let newcomer = acceptClient(now: now) {
                    receive(newcomer, into: &buffer, now: now)
                    if newcomer.isOpen { waiting.append(newcomer) }
                }
            }
            placedWithRequest = place(&waiting, into: &clients, now: now)
        }
    }

    /// Closes a client that has sent nothing for `firstByteTimeout` since it connected.
    private func closeIfSilent(_ client: Client, now: Double) -> Bool {
        guard !client.hasSentSomething && now - client.lastInput >= limits.firstByteTimeout else { return false }
        client.close()
        return true
    }

    /// Gives waiting clients the places there are or can be made, those that have sent something first,
    /// then in the order they came; says whether one placed has sent something.
    private func place(_ waiting: inout [Client], into clients: inout [Client], now: Double) -> Bool {
        var placedWithRequest = false
        let order = waiting.filter(\.hasSentSomething) + waiting.filter { !$0.hasSentSomething }
        for newcomer in order where makeRoom(for: newcomer, in: &clients, now: now) {
            newcomer.placed = now
            clients.append(newcomer)
            placedWithRequest = placedWithRequest || newcomer.hasSentSomething
        }
        waiting.removeAll { $0.placed != nil }
        return placedWithRequest
    }

    /// Frees a place for `newcomer` under the per-source and total caps: the longest waiting client
    /// without a whole request that has had its grace goes (one that has sent nothing before one that
    /// has sent part of a request). False when no place can be made now.
    private func makeRoom(for newcomer: Client, in clients: inout [Client], now: Double) -> Bool {
        func evictLongestWaiting(_ candidates: [Client]) -> Bool {
            let evictable = candidates.filter { $0.answer == nil && now - ($0.placed ?? now) >= limits.evictionGrace }
            guard let evicted = evictable.min(by: { ($0.request.isEmpty ? 0 : 1, $0.lastInput) < ($1.request.isEmpty ? 0 : 1, $1.lastInput) })
            else { return false }
            evicted.close()
            clients.removeAll { !$0.isOpen }
            return true
        }
        if let source = newcomer.source {
            let sameSource = clients.filter { $0.source == source }
            if sameSource.count >= limits.maximumClientsPerSource && !evictLongestWaiting(sameSource) { return false }
        }
        if clients.count >= limits.maximumClients && !evictLongestWaiting(clients) { return false }
        return true
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
