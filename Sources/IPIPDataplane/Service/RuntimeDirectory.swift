#if canImport(Glibc)
import Glibc
#endif

/// The daemon's runtime directory (default /run/ipipd): its control socket and state file.
///
/// Root writes there before the privilege drop and at the next start, and the daemon's unprivileged
/// user owns it in between, so nothing found in it is trusted: the directory is opened once, refusing a
/// symbolic link and a directory others may write to, and every file in it is reached relative to that
/// descriptor, never through a symbolic link — a link planted where the state file goes is removed, not
/// followed, and the hand-over to the daemon's user changes the directory's owner through its
/// descriptor, not the owners of what it holds.
public final class RuntimeDirectory: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    /// Files larger than this are not state files ipipd wrote.
    static let maximumFileSize = 1 << 20

    /// Opens `path`, creating it (mode 0750) when it does not exist.
    public init(path: String) throws(SystemError) {
        if mkdir(path, 0o750) != 0 && errno != EEXIST {
            throw SystemError.fromErrno("create the runtime directory \(path)")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let error = errno
            throw SystemError("open the runtime directory \(path)", errno: error,
                              detail: error == ELOOP || error == ENOTDIR ? "it is a symbolic link or not a directory" : nil)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = SystemError.fromErrno("inspect the runtime directory \(path)")
            close(fd)
            throw error
        }
        if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            close(fd)
            throw SystemError("use the runtime directory \(path)", errno: EPERM,
                              detail: "others may write to it (mode \(String(info.st_mode & 0o7777, radix: 8))); make it 0750 or 0700")
        }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// The path by which the directory as opened is reached, for calls that take a path (bind(2)):
    /// through the descriptor, so that the directory cannot be swapped underneath.
    public func pinnedPath(_ name: String) -> String { "/proc/self/fd/\(fd)/\(name)" }

    /// The text of `name`, or nil when there is none. A symbolic link, or anything but a regular file of
    /// reasonable size, is refused.
    func read(_ name: String) throws(SystemError) -> String? {
        try readOwned(name)?.text
    }

    /// The text of `name` and whether the calling user wrote it: the file is its own and has no
    /// other name (a hard link to a file of the same owner elsewhere is not a record made here).
    /// A file of the daemon's unprivileged user, read by root, is not.
    func readOwned(_ name: String) throws(SystemError) -> (text: String, ownedByCaller: Bool)? {
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("read \(path)/\(name)", errno: errno, detail: errno == ELOOP ? "it is a symbolic link" : nil)
        }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= Self.maximumFileSize else {
            throw SystemError("read \(path)/\(name)", detail: "not a regular file of at most 1 MiB")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let read = bytes[count...].withUnsafeMutableBytes { free in retryOnInterrupt { Glibc.read(file, free.baseAddress, free.count) } }
            guard read > 0 else { break }
            count += read
        }
        return (String(decoding: bytes[0..<count], as: UTF8.self), info.st_uid == geteuid() && info.st_nlink == 1)
    }

    /// Replaces `name` with `text` atomically: written to a new file (created exclusively, mode 0600,
    /// never through a link) and renamed over the old one, so that a crash never leaves half of it.
    func write(_ name: String, _ text: String) throws(SystemError) {
        let temporary = name + ".tmp"
        unlinkat(fd, temporary, 0)
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw SystemError.fromErrno("write \(path)/\(temporary)") }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { rest in retryOnInterrupt { Glibc.write(file, rest.baseAddress, rest.count) } }
            guard count > 0 else { break }
            written += count
        }
        close(file)
        guard written == bytes.count, renameat(fd, temporary, fd, name) == 0 else {
            let error = SystemError.fromErrno("write \(path)/\(name)")
            unlinkat(fd, temporary, 0)
            throw error
        }
    }

    /// Removes `name` (a link itself, never what it points to); true when something was removed.
    @discardableResult
    func remove(_ name: String) -> Bool {
        unlinkat(fd, name, 0) == 0
    }

    /// Whether `name` is a symbolic link (which ipipd never makes there).
    func isSymbolicLink(_ name: String) -> Bool {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    /// Gives the directory to the daemon's user, which must update the state file and remove what it
    /// made at exit; the files in it keep their owners.
    func hand(to uid: uid_t, group gid: gid_t) throws(SystemError) {
        guard fchown(fd, uid, gid) == 0 else { throw SystemError.fromErrno("hand \(path) to uid \(uid)") }
    }
}
