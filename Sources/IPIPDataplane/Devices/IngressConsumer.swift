#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// Spares the kernel its own pass over every outer packet the capture has already taken.
///
/// The kernel has no use for tunnel packets to our address: without an ipip, sit, ip6tnl or fou module
/// it routes each one to local delivery, clones it for the protocol or port claim's socket (whose filter
/// drops it) and frees both — and over IPv6 it judges the packet's options itself and may answer a forged
/// one. A small eBPF program at the uplink's TCX ingress hook, which runs after packet sockets (the
/// capture) have their copy, drops them there instead: protocol 4 and 41 (over IPv6 also behind the
/// encapsulation limit's Destination Options header) and UDP to the `fou` ports. It needs Linux 6.6 (TCX) and CAP_BPF or CAP_SYS_ADMIN at
/// start; without it everything works as before, only with that extra kernel work. The kernel detaches
/// the program when the descriptor is closed, also if ipipd is killed, so nothing is left behind.
public final class IngressConsumer: @unchecked Sendable {
    private let linkFD: Int32
    public let interface: String

    public init(interface: String, local: IPAddress, ports: [UInt16]) throws(SystemError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw SystemError.fromErrno("find interface \(interface)") }
        let address: [UInt8] = switch local {
        case .v4(let address): [address.octets.0, address.octets.1, address.octets.2, address.octets.3]
        case .v6(let address): address.bytes
        }
        linkFD = CIPIPShims_attachIngressConsumer(index, local.isIPv6 ? 1 : 0, address, ports, UInt32(ports.count))
        guard linkFD >= 0 else {
            throw SystemError.fromErrno("attach the eBPF ingress program to \(interface) (needs Linux 6.6 TCX and CAP_BPF)")
        }
        self.interface = interface
    }

    deinit { Glibc.close(linkFD) }
}
