#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// A NETLINK_ROUTE socket that sends one request at a time and reads its answer.
public final class NetlinkSocket {
    private let fd: Int32
    private var sequence: UInt32 = 1

    public init() throws(SystemError) {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw SystemError.fromErrno("open a netlink socket") }
    }

    /// A socket that also receives the kernel's notifications of `groups` (e.g. `Netlink.ipv4RouteGroup`).
    public convenience init(subscribingTo groups: UInt32) throws(SystemError) {
        try self.init()
        guard CIPIPShims_netlinkSubscribe(fd, groups) == 0 else { throw SystemError.fromErrno("subscribe to netlink notifications") }
    }

    deinit { close(fd) }

    /// Waits up to `timeoutMilliseconds` for notifications and reads all that are queued; true when
    /// there were any (or the kernel dropped some: ENOBUFS, which also means "something changed").
    public func drainNotifications(timeoutMilliseconds: Int32) -> Bool {
        guard waitReadable(fd, timeoutMilliseconds: timeoutMilliseconds) else { return false }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while buffer.withUnsafeMutableBytes({ free in retryOnInterrupt { recv(fd, free.baseAddress, free.count, Int32(MSG_DONTWAIT)) } }) > 0
                || errno == ENOBUFS {}
        return true
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Sends `build(sequence)` and collects every reply message until an error/ack, a DONE, or a
    /// single non-multipart answer.
    public func request(_ what: String, _ build: (UInt32) -> [UInt8]) throws(SystemError) -> [Netlink.Message] {
        let seq = nextSequence()
        let bytes = build(seq)
        let sent = bytes.withUnsafeBytes { message in retryOnInterrupt { send(fd, message.baseAddress, message.count, 0) } }
        guard sent == bytes.count else { throw SystemError.fromErrno(what) }
        var replies: [Netlink.Message] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = try retryingOnInterrupt(what) {
                buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            }
            for message in Netlink.parse(Array(buffer[0..<received])) where message.sequence == seq {
                if let code = Netlink.errorCode(of: message) {
                    if code != 0 { throw SystemError(what, errno: code) }
                    return replies
                }
                if message.type == Netlink.done { return replies }
                replies.append(message)
                if message.flags & 0x2 /* NLM_F_MULTI */ == 0 { return replies }
            }
        }
    }

    /// Sends a change and waits for the kernel's acknowledgement.
    public func change(_ what: String, _ build: (UInt32) -> [UInt8]) throws(SystemError) {
        _ = try request(what, build)
    }

    /// Changes sent per datagram by `changeAll`: the kernel queues one acknowledgement per change on
    /// this socket before we read any, and they must fit its receive buffer (an acknowledgement that does
    /// not is lost, not delayed).
    static let changesPerBatch = 128

    /// Sends `count` changes, `changesPerBatch` to a datagram, and reads every acknowledgement: one
    /// system call per batch instead of a round trip per change (a hub's 100,000 routes). The kernel
    /// takes each change on its own, as `ip -batch` does; returns those it refused, by index, with their errno.
    public func changeAll(_ what: String, count: Int, _ build: (_ index: Int, _ sequence: UInt32) -> [UInt8])
        throws(SystemError) -> [(index: Int, errno: Int32)] {
        var refused: [(index: Int, errno: Int32)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var next = 0
        while next < count {
            var datagram: [UInt8] = []
            var waiting: [UInt32: Int] = [:]   // sequence → index of the change
            while next < count && waiting.count < Self.changesPerBatch {
                let seq = nextSequence()
                datagram += build(next, seq)
                waiting[seq] = next
                next += 1
            }
            let sent = datagram.withUnsafeBytes { message in retryOnInterrupt { send(fd, message.baseAddress, message.count, 0) } }
            guard sent == datagram.count else { throw SystemError.fromErrno(what) }
            while !waiting.isEmpty {
                guard waitReadable(fd, timeoutMilliseconds: 5000) else {
                    throw SystemError(what, errno: ETIMEDOUT, detail: "the kernel acknowledged \(count - waiting.count) of \(count) changes")
                }
                let received = try retryingOnInterrupt(what) {
                    buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                }
                for message in Netlink.parse(Array(buffer[0..<received])) {
                    guard let index = waiting[message.sequence], let code = Netlink.errorCode(of: message) else { continue }
                    waiting[message.sequence] = nil
                    if code != 0 { refused.append((index, code)) }
                }
            }
        }
        return refused.sorted { $0.index < $1.index }
    }

    /// The kernel's route to `destination` (`ip route get`), or nil when it has none.
    public func route<Address: NetlinkAddress>(to destination: Address) throws(SystemError) -> Netlink.RouteInfo<Address>? {
        do {
            let replies = try request("look up the route to \(destination)") { Netlink.getRoute(to: destination.ipAddress, sequence: $0) }
            return replies.lazy.compactMap { Netlink.route(Address.self, from: $0) }.first
        } catch where error.errno == ENETUNREACH || error.errno == EHOSTUNREACH {
            return nil
        }
    }

    /// The kernel's proxy-neighbour entries of one family (`ip [-6] neigh show proxy`).
    public func proxyNeighbours<Address: NetlinkAddress>(_ family: Address.Type) throws(SystemError) -> [(interface: Int32, address: Address)] {
        try request("list proxy neighbours") {
            Netlink.dumpProxyNeighbours(family: Address.netlinkFamily, sequence: $0)
        }.compactMap { Netlink.proxyNeighbour(Address.self, from: $0) }
    }

    /// Every route of one family in every table, but those out of `skippingInterface` (not kept: a
    /// hub's tunnel routes would be most of the list).
    public func routes<Address: NetlinkAddress>(_ family: Address.Type, skippingInterface: Int32? = nil) throws(SystemError)
        -> [Netlink.RouteInfo<Address>] {
        try request("list routes") { Netlink.dumpRoutes(family: Address.netlinkFamily, sequence: $0) }.compactMap { message in
            Netlink.route(Address.self, from: message).flatMap { $0.outputInterface == skippingInterface && skippingInterface != nil ? nil : $0 }
        }
    }
}
