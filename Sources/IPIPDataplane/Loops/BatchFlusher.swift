#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore
import Logging

/// Sends a `PacketBatch` through a raw IPv4 socket (libnet's IPPROTO_RAW with IP_HDRINCL), 64 packets
/// per sendmmsg(2), and counts each packet as what it is once the kernel took it; a packet the kernel
/// refuses is counted as a drop of its peer and logged (throttled). Used by one loop's thread.
final class BatchFlusher {
    private let fd: Int32
    /// The counters of the snapshot the batch was filled from; replaced by the loop on a reload, after
    /// it flushed what the old snapshot queued.
    var counters: TunnelCounters
    private let failures: ThrottledLog

    init(rawSocket fd: Int32, counters: TunnelCounters, failures: ThrottledLog) {
        self.fd = fd
        self.counters = counters
        self.failures = failures
    }

    func flush(_ batch: PacketBatch) {
        var start = 0
        while start < batch.count {
            let result = CIPIPShims_sendBatch(fd, batch.starts + start, batch.lengths + start, batch.destinations + start,
                                              UInt32(batch.count - start))
            if result > 0 {
                for index in start..<(start + Int(result)) { countSent(batch.kind(at: index)) }
                start += Int(result)
            } else {
                let code = errno
                if result < 0 && code == EINTR { continue }
                countFailed(batch.kind(at: start), errno: code)
                start += 1
            }
        }
        batch.removeAll()
    }

    @inline(__always)
    private func countSent(_ kind: PacketBatch.Kind) {
        switch kind {
        case let .encapsulated(peer, innerLength):
            counters.peers[peer].encapsulatedPackets.add()
            counters.peers[peer].encapsulatedBytes.add(UInt64(innerLength))
        case let .decapsulated(peer, innerLength):
            counters.peers[peer].decapsulatedPackets.add()
            counters.peers[peer].decapsulatedBytes.add(UInt64(innerLength))
            counters.capture.delivered.add()
        case .icmpError(let peer):
            counters.peers[peer].icmpErrorsSent.add()
        }
    }

    private func countFailed(_ kind: PacketBatch.Kind, errno code: Int32) {
        let peer: Int
        switch kind {
        case .encapsulated(let p, _):
            peer = p
            counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
        case .decapsulated(let p, _):
            peer = p
            counters.dropCaptured(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
        case .icmpError(let p):
            peer = p
        }
        failures.note(["peer": "\(counters.peers[peer].name)", "error": "\(String(cString: strerror(code)))"])
    }
}
