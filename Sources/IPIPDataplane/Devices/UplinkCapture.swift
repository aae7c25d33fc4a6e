#if canImport(Glibc)
import Glibc
#endif
import CPcap
import CIPIPShims
import IPIPCore

/// The capture engine's socket on the uplink: a packet socket, inbound only, with the kernel BPF filter
/// libpcap compiles from `CaptureFilter.tunnel`, that hands over each frame whole — also the frames the
/// interface's GRO or LRO merged out of many (up to 64 KiB of IP) — preceded by the virtio-net header
/// in which the kernel says how it merged them: the segment size, the kind of segments, and whether the
/// inner TCP checksum was left partial (PACKET_VNET_HDR).
///
/// Not a libpcap handle, for two measured reasons (docs/BENCHMARKS.md, "GRO on the uplink"): libpcap's
/// socket cannot ask for that header (it must be set before the ring pcap_activate creates, EBUSY after),
/// and without it a merged frame's segment size and checksum state cannot be known; and a TPACKET_V2 ring
/// with room for 64 KiB frames holds 32 frames per 4 MiB (one per 128 KiB block), where a receive queue
/// charges each frame what it takes. One recvmmsg(2) takes a burst; it blocks until the first frame, so
/// a lone packet costs one system call, as libpcap's ring did with its poll(2).
public final class UplinkCapture: @unchecked Sendable {
    /// A frame as the kernel handed it over.
    public struct Frame {
        /// The frame from its Ethernet header (valid until the next `receive`).
        public var bytes: UnsafeRawBufferPointer
        /// Its length on the wire (or as merged); larger than `bytes.count` when it did not fit.
        public var wireLength: Int
        /// How the kernel merged it, if it did, and its checksum state; offsets from the Ethernet header.
        public var offload: VirtioNetHeader
    }

    /// Room for a virtio-net header, Ethernet with two 802.1Q tags, and the largest IP packet.
    public static let frameCapacity = VirtioNetHeader.size + EthernetFrameView.maximumHeaderLength + PacketSlot.maximumPacketLength
    /// Frames taken per system call.
    public static let burst = 32

    public let interface: String
    private let fd: Int32
    /// For poll(2) next to another descriptor; `receive` reads it.
    public var fileDescriptor: Int32 { fd }
    private let interfaceIndex: UInt32
    private let storage: UnsafeMutableRawPointer
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let lengths: UnsafeMutablePointer<Int>

    /// `waitMilliseconds`: how long a waiting `receive` blocks at most (the loop's stop-signal interval).
    public init(interface: String, filter: String, bufferBytes: Int32 = 4 << 20, waitMilliseconds: Int32) throws(SystemError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw SystemError("capture on \(interface)", errno: ENODEV, detail: "no such interface") }
        let program = try Self.compile(filter)
        let fd = program.withUnsafeBufferPointer {
            CIPIPShims_openUplinkCapture(index, $0.baseAddress, UInt32($0.count), bufferBytes, waitMilliseconds)
        }
        guard fd >= 0 else {
            let error = SystemError.fromErrno("open the capture on \(interface)")
            throw error.errno == EPERM ? SystemError("open the capture on \(interface)", errno: EPERM,
                                                     detail: "permission denied (needs CAP_NET_RAW)") : error
        }
        self.fd = fd
        self.interface = interface
        interfaceIndex = index
        storage = .allocate(byteCount: Self.burst * Self.frameCapacity, alignment: 64)
        buffers = .allocate(capacity: Self.burst)
        lengths = .allocate(capacity: Self.burst)
        for slot in 0..<Self.burst { buffers[slot] = storage + slot * Self.frameCapacity }
    }

    deinit {
        close(fd)
        storage.deallocate()
        buffers.deallocate()
        lengths.deallocate()
    }

    /// The kernel BPF program for `filter`, compiled by libpcap for Ethernet as tcpdump would (its
    /// `ret` keeps the whole frame).
    static func compile(_ filter: String) throws(SystemError) -> [bpf_insn] {
        guard let dead = pcap_open_dead(DLT_EN10MB, 262_144) else {
            throw SystemError("compile filter `\(filter)`", detail: "libpcap could not open a handle to compile with")
        }
        defer { pcap_close(dead) }
        var program = bpf_program()
        guard pcap_compile(dead, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw SystemError("compile filter `\(filter)`", detail: String(cString: pcap_geterr(dead)))
        }
        defer { pcap_freecode(&program) }
        // libpcap's struct bpf_insn is the kernel's struct sock_filter (code, jt, jf, k): the shim passes it on.
        return Array(UnsafeBufferPointer(start: program.bf_insns, count: Int(program.bf_len)))
    }

    /// Takes the frames that are queued, up to `burst`, and returns how many; `frame(at:)` gives each, valid
    /// until the next call. `wait`: block until the first one (at most the wait given at init) instead of
    /// returning 0 at once. Throws what the kernel reported on the socket (ENETDOWN when the interface went
    /// down), which also clears it.
    @inline(__always)
    public func receive(wait: Bool) throws(SystemError) -> Int {
        let count = Int(CIPIPShims_receiveBatch(fd, buffers, Self.frameCapacity, UInt32(Self.burst), wait ? 1 : 0, lengths))
        guard count >= 0 else {
            // A frame the kernel could not describe in a virtio-net header (a GSO kind it has no name for):
            // it is gone, and said so by failing this call.
            if errno == EINVAL {
                undescribedFrames += 1
                return 0
            }
            throw SystemError.fromErrno("read from the capture on \(interface)")
        }
        received = count
        return count
    }

    private var received = 0
    /// Frames dropped because the kernel could not give their virtio-net header (see `receive`), for the
    /// capture's accounting; the loop takes them.
    public var undescribedFrames = 0

    /// Frame `index` of the last `receive`.
    @inline(__always)
    public func frame(at index: Int) -> Frame {
        precondition(index < received)
        let start = UnsafeRawPointer(buffers[index]!)
        let length = max(lengths[index], VirtioNetHeader.size)
        let captured = min(length, Self.frameCapacity)
        return Frame(bytes: UnsafeRawBufferPointer(start: start + VirtioNetHeader.size, count: captured - VirtioNetHeader.size),
                     wireLength: length - VirtioNetHeader.size,
                     offload: VirtioNetHeader(UnsafeRawBufferPointer(start: start, count: VirtioNetHeader.size)))
    }

    /// False when `interface` no longer exists or is another interface now: nothing would arrive again.
    public var isStillBound: Bool { if_nametoindex(interface) == interfaceIndex }

    /// What the kernel counted since the last reading: frames that passed the filter (those it dropped
    /// included), and those it dropped because the receive buffer was full.
    public func kernelCounts() -> (received: UInt64, dropped: UInt64) {
        var received: UInt32 = 0, dropped: UInt32 = 0
        guard CIPIPShims_packetStatistics(fd, &received, &dropped) == 0 else { return (0, 0) }
        return (UInt64(received), UInt64(dropped))
    }
}
