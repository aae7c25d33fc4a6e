#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import Logging

/// Least privilege once the TUN device, captures and raw sockets are open: run as an unprivileged user
/// with only CAP_NET_ADMIN (routes, addresses and net sysctls on reload and at exit) and CAP_NET_RAW
/// (captures opened by a reload). Called before any thread starts, so that every thread inherits it.
public enum PrivilegeDrop {
    public static let defaultUser = "ipipd"

    public static func apply(user: String, runtimeDirectory: RuntimeDirectory?, logger: Logger) throws(SystemError) {
        guard user != "root", geteuid() == 0 else { return }
        guard let entry = getpwnam(user) else {
            if user == defaultUser {
                logger.warning("user \(user) does not exist; staying root (scripts/install.sh creates it, or pass --user)")
                return
            }
            throw SystemError("switch to user \(user)", errno: ENOENT, detail: "no such user")
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        // The daemon must still update its state file and remove its socket and state at exit: it gets
        // the directory (through its descriptor), not what is in it.
        try runtimeDirectory?.hand(to: uid, group: gid)
        guard CIPIPShims_switchUserKeepingNetworkCapabilities(uid, gid) == 0 else {
            throw SystemError.fromErrno("switch to user \(user) keeping CAP_NET_ADMIN and CAP_NET_RAW")
        }
        logger.info("dropped privileges", metadata: ["user": "\(user)", "uid": "\(uid)", "capabilities": "cap_net_admin,cap_net_raw"])
    }

    /// Drops every capability of the calling thread: what the threads that parse packets (and the
    /// metrics endpoint's, which parses requests) run with once their handles are open. Linux keeps
    /// capabilities per thread; the main and control threads keep CAP_NET_ADMIN and CAP_NET_RAW for
    /// reloads and the cleanup at exit.
    public static func dropCapabilitiesOfThisThread(_ logger: Logger, thread: String) {
        if CIPIPShims_dropThreadCapabilities() != 0 {
            logger.warning("cannot drop the capabilities of a thread", metadata: ["thread": "\(thread)", "error": "\(String(cString: strerror(errno)))"])
        }
    }
}
