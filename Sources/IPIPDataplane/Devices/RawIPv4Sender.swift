#if canImport(Glibc)
import Glibc
#endif
import CLibnet

/// Sends whole IPv4 packets (header included) through the kernel's routing with libnet's LIBNET_RAW4
/// (a raw IPPROTO_RAW socket with IP_HDRINCL). One context per sending thread: libnet contexts are not
/// thread-safe. The packet passes the kernel's OUTPUT path, so it is routed and ARP-resolved like a
/// locally generated one.
public final class RawIPv4Sender: @unchecked Sendable {
    private let context: UnsafeMutablePointer<libnet_t>

    /// `mark`: SO_MARK on every packet sent (0: none), for a firewall to recognise them.
    public init(mark: UInt32 = 0) throws(SystemError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(LIBNET_ERRBUF_SIZE))
        guard let context = libnet_init(LIBNET_RAW4, nil, &errorBuffer) else {
            throw SystemError("open a raw IPv4 socket (libnet)", detail: Self.message(errorBuffer))
        }
        self.context = context
        // The kernel learns path MTUs from any ICMP "fragmentation needed" it receives — forged ones too,
        // and the protocol claim's raw socket makes it accept those about protocol 4 — and would then
        // drop our outer packets to that peer silently. ipipd keeps its own path MTU per peer, from
        // reports it checked; this socket sends by the device's MTU alone.
        var probe = Int32(IP_PMTUDISC_PROBE)
        if setsockopt(libnet_getfd(context), Int32(IPPROTO_IP), IP_MTU_DISCOVER, &probe, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let error = SystemError.fromErrno("set IP_MTU_DISCOVER to IP_PMTUDISC_PROBE on the raw socket")
            libnet_destroy(context)
            throw error
        }
        var value = mark
        if mark != 0 && setsockopt(libnet_getfd(context), SOL_SOCKET, SO_MARK, &value, socklen_t(MemoryLayout<UInt32>.size)) != 0 {
            let error = SystemError.fromErrno("set SO_MARK \(mark) on the raw socket")
            libnet_destroy(context)
            throw error
        }
    }

    deinit { libnet_destroy(context) }

    /// libnet's raw socket (IPPROTO_RAW, IP_HDRINCL), for batched sends with sendmmsg.
    public var fileDescriptor: Int32 { libnet_getfd(context) }

    static func message(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .droppingTrailingNewlines
    }
}

/// Sends whole IPv6 packets (header and extension headers included) through the kernel's routing with
/// libnet's LIBNET_RAW6 (a raw IPPROTO_RAW socket, which implies IPV6_HDRINCL): an IPv6 underlay's outer
/// packets, 64 per sendmmsg(2). The kernel routes each by its destination and sends it as it is, no
/// larger than the device's MTU (it neither fragments it nor consults a learned path MTU: ipipd keeps its
/// own per peer, from reports it checked). One context per sending thread.
public final class RawIPv6Sender: @unchecked Sendable {
    private let context: UnsafeMutablePointer<libnet_t>

    public init() throws(SystemError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(LIBNET_ERRBUF_SIZE))
        guard let context = libnet_init(LIBNET_RAW6, nil, &errorBuffer) else {
            throw SystemError("open a raw IPv6 socket (libnet)", detail: RawIPv4Sender.message(errorBuffer))
        }
        self.context = context
    }

    deinit { libnet_destroy(context) }

    /// libnet's raw IPv6 socket, for batched sends with sendmmsg.
    public var fileDescriptor: Int32 { libnet_getfd(context) }
}
