#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// Outgoing IPv4 packets gathered in preallocated slots and sent with one sendmmsg(2) on libnet's raw
/// socket: one system call per burst instead of one per packet. Each slot is large enough for any IPv4
/// packet plus the outer header; the loops build packets in place, so nothing is copied or allocated.
final class SendBatch {
    static let capacity = 64
    static let slotSize = 20 + 65535 + 64

    private let storage: UnsafeMutableRawBufferPointer
    private let pointers: UnsafeMutablePointer<UnsafeRawPointer?>
    private let lengths: UnsafeMutablePointer<Int>
    private let destinations: UnsafeMutablePointer<UInt32>
    private let peers: UnsafeMutablePointer<Int>
    private let innerLengths: UnsafeMutablePointer<Int>
    private(set) var count = 0

    init() {
        storage = .allocate(byteCount: Self.capacity * Self.slotSize, alignment: 16)
        pointers = .allocate(capacity: Self.capacity)
        lengths = .allocate(capacity: Self.capacity)
        destinations = .allocate(capacity: Self.capacity)
        peers = .allocate(capacity: Self.capacity)
        innerLengths = .allocate(capacity: Self.capacity)
    }

    deinit {
        storage.deallocate()
        pointers.deallocate()
        lengths.deallocate()
        destinations.deallocate()
        peers.deallocate()
        innerLengths.deallocate()
    }

    var isFull: Bool { count == Self.capacity }
    var isEmpty: Bool { count == 0 }

    /// The slot the next packet is built in.
    @inline(__always)
    var nextSlot: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: storage[(count * Self.slotSize)..<((count + 1) * Self.slotSize)])
    }

    /// Queues `nextSlot[range]`, an IPv4 packet to `destination`, carrying `innerLength` bytes for `peer`.
    @inline(__always)
    func commit(_ range: Range<Int>, destination: IPv4Address, peer: Int, innerLength: Int) {
        pointers[count] = UnsafeRawPointer(nextSlot.baseAddress!.advanced(by: range.lowerBound))
        lengths[count] = range.count
        destinations[count] = destination.value.bigEndian
        peers[count] = peer
        innerLengths[count] = innerLength
        count += 1
    }

    /// Sends everything queued. A packet the kernel refuses is reported with its errno and skipped.
    func flush(on fd: Int32, sent: (_ peer: Int, _ innerLength: Int) -> Void, failed: (_ peer: Int, _ errno: Int32) -> Void) {
        var start = 0
        while start < count {
            let result = CIPIPShims_sendBatch(fd, pointers + start, lengths + start, destinations + start, UInt32(count - start))
            if result > 0 {
                for index in start..<(start + Int(result)) { sent(peers[index], innerLengths[index]) }
                start += Int(result)
            } else {
                let code = errno
                if result < 0 && code == EINTR { continue }
                failed(peers[start], code)
                start += 1
            }
        }
        count = 0
    }
}
