#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims

/// Keeps the kernel from answering every tunnel packet with ICMP "protocol unreachable".
///
/// With no ipip module, protocol 4 has no handler in the kernel, and ip_local_deliver answers each
/// such packet with ICMP type 3 code 2 unless a raw socket for the protocol exists. A libpcap capture
/// does not count. This raw IPPROTO_IPIP socket exists for that alone: a drop-all socket filter makes
/// the kernel queue nothing on it, so it costs no memory and is never read.
public final class ProtocolClaim: @unchecked Sendable {
    private let fd: Int32

    public init() throws(SystemError) {
        fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_IPIP))
        guard fd >= 0 else { throw SystemError.fromErrno("open a raw IPPROTO_IPIP socket") }
        guard CIPIPShims_attachDropAllFilter(fd) == 0 else {
            let error = SystemError.fromErrno("attach a drop-all filter to the IPPROTO_IPIP socket")
            Glibc.close(fd)
            throw error
        }
    }

    deinit { Glibc.close(fd) }
}
