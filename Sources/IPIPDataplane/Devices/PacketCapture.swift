#if canImport(Glibc)
import Glibc
#endif
import CPcap
import CIPIPShims
import IPIPCore

/// A libpcap capture handle on one interface, inbound only, with a kernel BPF filter.
///
/// Opened with pcap_create and explicit settings rather than pcap_open_live: immediate mode (each
/// packet is handed over as it arrives: TPACKET_V2, no block-retire latency; a 10 ms timeout instead
/// added ~10 ms to every round trip, see docs/BENCHMARKS.md), a snaplen that covers the
/// largest frame, and a kernel buffer large enough to absorb bursts. Non-blocking, so the owning thread
/// can poll with a timeout and notice a stop request.
public final class PacketCapture: @unchecked Sendable {
    public struct Settings: Sendable {
        public var snapshotLength: Int32
        public var bufferBytes: Int32 = 4 << 20
        public var immediate = true
        public init(snapshotLength: Int32) { self.snapshotLength = snapshotLength }
    }

    public struct Frame {
        /// The captured bytes (valid until the next `next()` call).
        public var bytes: UnsafeRawBufferPointer
        /// The frame's length on the wire; larger than `bytes.count` when the capture was truncated.
        public var wireLength: Int
    }

    private let handle: OpaquePointer
    public let interface: String
    public let selectableFD: Int32
    /// The interface index the capture is bound to: if the interface goes away (or is replaced by one
    /// of the same name), nothing will ever arrive again.
    private let interfaceIndex: UInt32

    public init(interface: String, filter: String, settings: Settings) throws(SystemError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create(interface, &errorBuffer) else {
            throw SystemError("open a capture on \(interface)", detail: RawIPv4Sender.message(errorBuffer))
        }
        self.handle = handle
        self.interface = interface
        func check(_ result: Int32, _ what: String) throws(SystemError) {
            if result < 0 {
                let detail = String(cString: pcap_geterr(handle))
                pcap_close(handle)
                throw SystemError("capture on \(interface): \(what)", detail: detail)
            }
        }
        try check(pcap_set_snaplen(handle, settings.snapshotLength), "set snaplen")
        try check(pcap_set_promisc(handle, 0), "disable promiscuous mode")
        try check(pcap_set_immediate_mode(handle, settings.immediate ? 1 : 0), "set immediate mode")
        try check(pcap_set_buffer_size(handle, settings.bufferBytes), "set buffer size")
        try check(pcap_set_timeout(handle, 10), "set timeout")
        let activation = pcap_activate(handle)
        if activation < 0 {
            let detail = activation == PCAP_ERROR_NO_SUCH_DEVICE ? "no such interface"
                : activation == PCAP_ERROR_PERM_DENIED ? "permission denied (needs CAP_NET_RAW)"
                : String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw SystemError("activate the capture on \(interface)", detail: detail)
        }
        guard pcap_datalink(handle) == DLT_EN10MB else {
            pcap_close(handle)
            throw SystemError("capture on \(interface)", detail: "not an Ethernet interface (link type \(pcap_datalink(handle)))")
        }
        // Our own sends on this interface would otherwise be captured too.
        try check(pcap_setdirection(handle, PCAP_D_IN), "capture inbound packets only")
        // libpcap drops outgoing packets in user space, after the kernel has cloned each one for this
        // socket; the kernel can skip them itself (Linux 4.20+; without it, only that work is lost).
        _ = CIPIPShims_ignoreOutgoingPackets(pcap_fileno(handle))
        var program = bpf_program()
        try check(pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN), "compile filter `\(filter)`")
        let filterResult = pcap_setfilter(handle, &program)
        pcap_freecode(&program)
        try check(filterResult, "install filter")
        try check(pcap_setnonblock(handle, 1, &errorBuffer), "set non-blocking")
        interfaceIndex = if_nametoindex(interface)
        selectableFD = pcap_get_selectable_fd(handle)
        guard selectableFD >= 0 else {
            pcap_close(handle)
            throw SystemError("capture on \(interface)", detail: "no selectable descriptor")
        }
    }

    deinit { pcap_close(handle) }

    /// Replaces the kernel filter of the open handle (on reload: other ghost addresses).
    public func setFilter(_ filter: String) throws(SystemError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw SystemError("compile filter `\(filter)`", detail: String(cString: pcap_geterr(handle)))
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw SystemError("install filter `\(filter)`", detail: String(cString: pcap_geterr(handle)))
        }
    }

    /// Waits up to `timeoutMilliseconds` for traffic; true when frames are waiting. Throws what the
    /// kernel reported on the socket (ENETDOWN when the interface went down, ENODEV when it went away),
    /// which also clears it: a pending error would otherwise make every poll return at once.
    public func waitForTraffic(timeoutMilliseconds: Int32, orWakeUp wakeUp: WakeUp? = nil) throws(SystemError) -> Bool {
        // Two pollfds on the stack (no allocation on the capture's hot path); fd -1 is ignored by poll.
        var descriptors = (pollfd(fd: selectableFD, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakeUp?.fd ?? -1, events: Int16(POLLIN), revents: 0))
        let ready = withUnsafeMutableBytes(of: &descriptors) {
            poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, timeoutMilliseconds)
        }
        guard ready > 0 else { return false }
        if descriptors.1.revents != 0 { wakeUp?.clear() }
        let descriptor = descriptors.0
        if descriptor.revents & Int16(POLLERR) != 0 {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(selectableFD, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { throw SystemError("capture on \(interface)", errno: error) }
        }
        return descriptor.revents & Int16(POLLIN) != 0
    }

    /// False when `interface` no longer exists or is another interface now.
    /// Joins (or leaves) a link-layer multicast group on the capture's packet socket (PACKET_ADD_MEMBERSHIP),
    /// so that a NIC that filters multicast delivers it: a solicited-node group for proxy NDP. The
    /// memberships end with the socket.
    public func setMulticast(_ mac: MACAddress, joined: Bool) throws(SystemError) {
        guard CIPIPShims_linkMulticast(pcap_fileno(handle), Int32(interfaceIndex), mac.array, joined ? 1 : 0) == 0 else {
            throw SystemError.fromErrno("\(joined ? "join" : "leave") link-layer multicast group \(mac) on \(interface)")
        }
    }

    public var isStillBound: Bool { if_nametoindex(interface) == interfaceIndex }

    /// Hands the frames that are waiting, up to `limit`, to `body`, each valid only during its call;
    /// returns how many. Unlike one pcap_next_ex per frame, this makes no system call while frames
    /// are waiting in libpcap's ring, nor when it finds the ring drained (the caller waits with
    /// `waitForTraffic`); so a lone packet is forwarded without an extra poll(2) first.
    @discardableResult @inline(__always)
    public func dispatch(limit: Int32, _ body: (Frame) -> Void) throws(SystemError) -> Int {
        let result = withoutActuallyEscaping(body) { body in
            var handler = body
            return withUnsafeMutablePointer(to: &handler) { handlerPointer in
                pcap_dispatch(handle, limit, { user, header, data in
                    guard let user, let header, let data else { return }
                    let body = UnsafeMutableRawPointer(user).assumingMemoryBound(to: ((Frame) -> Void).self).pointee
                    body(Frame(bytes: UnsafeRawBufferPointer(start: data, count: Int(header.pointee.caplen)),
                               wireLength: Int(header.pointee.len)))
                }, UnsafeMutableRawPointer(handlerPointer).assumingMemoryBound(to: UInt8.self))
            }
        }
        if result < 0 && result != PCAP_ERROR_BREAK {
            throw SystemError("read from the capture on \(interface)", detail: String(cString: pcap_geterr(handle)))
        }
        return Int(max(result, 0))
    }

    /// Whether the kernel skips outgoing packets for this capture instead of copying them to it.
    public var kernelIgnoresOutgoing: Bool { CIPIPShims_ignoresOutgoingPackets(pcap_fileno(handle)) == 1 }

    /// What the kernel counted for this capture (pcap_stats): frames that passed the filter, and those it
    /// dropped because the buffer was full (ps_drop and ps_ifdrop). libpcap's 32-bit counters, which wrap
    /// (see `WrappingCounter32`).
    public var kernelStatistics: (received: UInt32, buffer: UInt32, interface: UInt32)? {
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return nil }
        return (UInt32(truncatingIfNeeded: stats.ps_recv), UInt32(truncatingIfNeeded: stats.ps_drop),
                UInt32(truncatingIfNeeded: stats.ps_ifdrop))
    }

    /// Sends a whole link-layer frame on this interface.
    public func inject(_ frame: UnsafeRawBufferPointer) -> Bool {
        pcap_inject(handle, frame.baseAddress, frame.count) == Int32(frame.count)
    }
}

/// What the kernel counted for one capture since the last reading, as increments to add to the gateway's
/// counters: frames that passed the filter, and frames dropped for want of room (`capture-drop`).
/// libpcap's counters are 32-bit and wrap; several captures add to one counter.
struct KernelCaptureCounts {
    private var received = WrappingCounter32(), buffer = WrappingCounter32(), interface = WrappingCounter32()
    private var reportedReceived: UInt64 = 0, reportedDrops: UInt64 = 0

    mutating func update(from capture: PacketCapture) -> (received: UInt64, dropped: UInt64) {
        guard let statistics = capture.kernelStatistics else { return (0, 0) }
        received.update(statistics.received)
        buffer.update(statistics.buffer)
        interface.update(statistics.interface)
        let drops = buffer.total &+ interface.total
        defer { (reportedReceived, reportedDrops) = (received.total, drops) }
        return (received.total &- reportedReceived, drops &- reportedDrops)
    }
}
