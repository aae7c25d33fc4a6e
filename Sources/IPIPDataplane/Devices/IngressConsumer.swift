#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// Spares the kernel its own pass over every outer packet the capture has already taken.
///
/// The kernel has no use for protocol-4 packets to our address: without an ipip module it routes each
/// one to local delivery, clones it for the protocol claim's raw socket (whose filter drops it) and frees
/// both. A small eBPF program at the uplink's TCX ingress hook, which runs after packet sockets (libpcap)
/// have their copy, drops them there instead. It needs Linux 6.6 (TCX) and CAP_BPF or CAP_SYS_ADMIN at
/// start; without it everything works as before, only with that extra kernel work. The kernel detaches
/// the program when the descriptor is closed, also if ipipd is killed, so nothing is left behind.
public final class IngressConsumer: @unchecked Sendable {
    private let linkFD: Int32
    public let interface: String

    public init(interface: String, local: IPv4Address) throws(SystemError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw SystemError.fromErrno("find interface \(interface)") }
        linkFD = CIPIPShims_attachIngressConsumer(index, local.value.bigEndian)
        guard linkFD >= 0 else {
            throw SystemError.fromErrno("attach the eBPF ingress program to \(interface) (needs Linux 6.6 TCX and CAP_BPF)")
        }
        self.interface = interface
    }

    deinit { Glibc.close(linkFD) }
}
