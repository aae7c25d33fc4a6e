import SystemPackage

// Small text files — sysctls, /proc/PID/comm, the state file — read and written through swift-system's
// FileDescriptor, which retries EINTR and finishes partial writes.

/// The text of a small file, without its final newline.
func readSmallFile(_ path: String) throws(SystemError) -> String {
    do {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        return try fd.closeAfter { try readAll(fd) }
    } catch {
        throw SystemError("read \(path)", error)
    }
}

/// A config file's text, whole; errors in the system's words, with the path ("Is a directory",
/// "Permission denied", "No such file or directory"). At most `limit` bytes are read: beyond them, the
/// caller's own size limit speaks.
public func readConfigFile(_ path: String, limit: Int) throws(SystemError) -> String {
    do {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        return try fd.closeAfter {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while bytes.count <= limit {
                let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
                if count == 0 { break }
                bytes += buffer[0..<count]
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    } catch {
        throw SystemError(path, error)
    }
}

/// Everything left to read from `fd`, as text without its final newline.
func readAll(_ fd: FileDescriptor) throws -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
        if count == 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self).droppingTrailingNewlines
}

/// Writes `value` and a newline to a sysctl's /proc/sys file.
func writeSysctl(_ path: String, _ value: String) throws(SystemError) {
    do {
        let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.closeOnExec])
        _ = try fd.closeAfter { try fd.writeAll(Array((value + "\n").utf8)) }
    } catch {
        throw SystemError("write \(value) to \(path)", error)
    }
}

extension String {
    /// The text without the newlines at its end (what /proc files and libnet's messages end with).
    var droppingTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
