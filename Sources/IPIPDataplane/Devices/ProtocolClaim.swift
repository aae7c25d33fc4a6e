#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// Keeps the kernel from answering every tunnel packet with ICMP "protocol unreachable" (over an IPv6
/// underlay, ICMPv6 "parameter problem, unrecognized next header").
///
/// With no ipip, sit or ip6tnl module, protocol 4 (41) has no handler in the kernel, and local delivery
/// answers each such packet with an ICMP error unless a raw socket for the protocol exists. A libpcap
/// capture does not count. This raw socket exists for that alone: a drop-all socket filter makes the
/// kernel queue nothing on it, so it costs no memory and is never read.
public final class ProtocolClaim: @unchecked Sendable {
    private let fd: Int32

    public init(protocolNumber: UInt8, ipv6: Bool = false) throws(SystemError) {
        let family = ipv6 ? "IPv6" : "IPv4"
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(protocolNumber))
        guard fd >= 0 else { throw SystemError.fromErrno("open a raw \(family) socket for protocol \(protocolNumber)") }
        guard CIPIPShims_attachDropAllFilter(fd) == 0 else {
            let error = SystemError.fromErrno("attach a drop-all filter to the raw \(family) socket for protocol \(protocolNumber)")
            Glibc.close(fd)
            throw error
        }
    }

    deinit { Glibc.close(fd) }
}

/// Keeps the kernel from answering FOU and GUE packets with ICMP "port unreachable", as the socket that
/// `ip fou add port P` opens does, and keeps any other program from binding the port: a UDP socket bound
/// to the port on the uplink address, with a drop-all filter, so that nothing is ever queued on it (the
/// capture takes the packets). IP_FREEBIND lets an HA pair's standby hold it before the address arrives.
public final class UDPPortClaim: @unchecked Sendable {
    private let fd: Int32
    public let port: UInt16

    public init(port: UInt16, address: IPAddress) throws(SystemError) {
        let bytes: [UInt8] = switch address {
        case .v4(let address): [address.octets.0, address.octets.1, address.octets.2, address.octets.3]
        case .v6(let address): address.bytes
        }
        fd = CIPIPShims_openUDPPortClaim(address.isIPv6 ? 1 : 0, bytes, port)
        guard fd >= 0 else {
            let error = SystemError.fromErrno("bind UDP port \(port) on \(address)")
            throw error.errno == EADDRINUSE
                ? SystemError("bind UDP port \(port) on \(address)", errno: EADDRINUSE,
                              detail: "another socket holds it (`ss -ulnp 'sport = :\(port)'`): free the port or choose another in `fou`")
                : error
        }
        self.port = port
    }

    deinit { Glibc.close(fd) }
}
