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

    public static func apply(user: String, runtimeDirectory: String, logger: Logger) throws(SystemError) {
        guard user != "root", geteuid() == 0 else { return }
        guard let entry = getpwnam(user) else {
            if user == defaultUser {
                logger.warning("user \(user) does not exist; staying root (scripts/install.sh creates it, or pass --user)")
                return
            }
            throw SystemError("switch to user \(user)", errno: ENOENT, detail: "no such user")
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        // The daemon must still update its state file and remove its socket and state at exit.
        for path in [runtimeDirectory] + directoryEntries(runtimeDirectory).map({ "\(runtimeDirectory)/\($0)" }) {
            guard chown(path, uid, gid) == 0 else { throw SystemError.fromErrno("hand \(path) to \(user)") }
        }
        guard CIPIPShims_switchUserKeepingNetworkCapabilities(uid, gid) == 0 else {
            throw SystemError.fromErrno("switch to user \(user) keeping CAP_NET_ADMIN and CAP_NET_RAW")
        }
        logger.info("dropped privileges", metadata: ["user": "\(user)", "uid": "\(uid)", "capabilities": "cap_net_admin,cap_net_raw"])
    }

    static func directoryEntries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
