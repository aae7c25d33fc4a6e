#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims

/// A TUN device (IFF_TUN | IFF_NO_PI: every read or write is one bare IP packet). The device exists
/// as long as this descriptor is open; closing it removes the device and every route through it.
public final class TUNDevice: @unchecked Sendable {
    public let fd: Int32
    public let name: String

    public init(name: String) throws(SystemError) {
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.fromErrno("open /dev/net/tun") }
        var chosen = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard CIPIPShims_tunAttach(fd, name, 0, &chosen) == 0 else {
            let error = SystemError.fromErrno("create TUN device \(name)")
            Glibc.close(fd)
            if error.errno == EBUSY {
                throw SystemError("create TUN device \(name)", errno: EBUSY,
                                  detail: "another process (another ipipd?) holds \(name); choose another tunnel.name or stop it")
            }
            if error.errno == EINVAL {
                throw SystemError("create TUN device \(name)", errno: EINVAL,
                                  detail: "an interface named \(name) exists and is not a TUN device")
            }
            throw error
        }
        // Non-blocking: the reader drains what is queued, and polls only when nothing is.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        self.name = String(decoding: chosen.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Reads one queued packet into `buffer`; nil when none is queued.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int? {
        let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return nil }
            throw SystemError.fromErrno("read from \(name)")
        }
        return count
    }

    /// Waits up to `timeoutMilliseconds` for a packet to be queued.
    public func waitForPackets(timeoutMilliseconds: Int32) -> Bool {
        waitReadable(fd, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func close() {
        _ = Glibc.close(fd)
    }
}
