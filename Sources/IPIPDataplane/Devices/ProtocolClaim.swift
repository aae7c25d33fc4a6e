#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims

/// Keeps the kernel from answering every tunnel packet with ICMP "protocol unreachable".
///
/// With no ipip (or sit) module, protocol 4 (41) has no handler in the kernel, and ip_local_deliver
/// answers each such packet with ICMP type 3 code 2 unless a raw socket for the protocol exists. A
/// libpcap capture does not count. This raw socket exists for that alone: a drop-all socket filter
/// makes the kernel queue nothing on it, so it costs no memory and is never read.
public final class ProtocolClaim: @unchecked Sendable {
    private let fd: Int32

    public init(protocolNumber: UInt8) throws(SystemError) {
        fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(protocolNumber))
        guard fd >= 0 else { throw SystemError.fromErrno("open a raw IPv4 socket for protocol \(protocolNumber)") }
        guard CIPIPShims_attachDropAllFilter(fd) == 0 else {
            let error = SystemError.fromErrno("attach a drop-all filter to the raw socket for protocol \(protocolNumber)")
            Glibc.close(fd)
            throw error
        }
    }

    deinit { Glibc.close(fd) }
}
