#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims

/// A TUN device (IFF_TUN | IFF_NO_PI | IFF_VNET_HDR: every read is a `VirtioNetHeader` and one bare
/// IP packet). The device exists as long as this descriptor is open; closing it removes the device and
/// every route through it.
///
/// Checksum and TCP segmentation offload are switched on, so that the kernel forwards a TCP stream
/// into the tunnel as packets of up to 64 KiB, each one read instead of one per segment; the reader
/// completes checksums and cuts segments (`ChecksumOffload`, `GSOSegmenter`).
public final class TUNDevice: @unchecked Sendable {
    public let fd: Int32
    public let name: String
    /// False when the kernel refused the offloads: packets then come whole and with their checksums.
    public let segmentationOffload: Bool

    public init(name: String) throws(SystemError) {
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.fromErrno("open /dev/net/tun") }
        var chosen = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard CIPIPShims_tunAttach(fd, name, 1, &chosen) == 0 else {
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
        segmentationOffload = CIPIPShims_tunEnableTCPSegmentationOffload(fd) == 0
        // Non-blocking: the reader drains what is queued, and polls only when nothing is.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        self.name = String(decoding: chosen.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Reads one queued packet, preceded by its `VirtioNetHeader`, into `buffer`; nil when none is queued.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int? {
        let count = retryOnInterrupt { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        if count < 0 {
            if errno == EAGAIN { return nil }
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
