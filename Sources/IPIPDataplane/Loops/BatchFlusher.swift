#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore
import Logging

/// Sends a `PacketBatch`: through a raw IPv4 socket (libnet's IPPROTO_RAW with IP_HDRINCL) or, an IPv6
/// underlay's outer packets, a raw IPv6 one, 64 packets per sendmmsg(2), and the packets for the kernel's
/// receive path to the TUN device, one write(2) each;
/// counts each packet as what it is once the kernel took it. A packet the kernel refuses is counted as
/// a drop of its peer and logged (throttled). Used by one loop's thread.
final class BatchFlusher {
    private let fd: Int32
    /// The raw IPv6 socket for an IPv6 underlay's outer packets (-1: none go there).
    private let fd6: Int32
    /// The TUN device, for packets delivered into the kernel's receive path (-1: none go there).
    private let tunFD: Int32
    /// ICMPv6 errors go here (nil: the tunnel carries no IPv6, and none are queued).
    private let icmpv6: RawICMPv6Sender?
    /// The counters of the snapshot the batch was filled from; replaced by the loop on a reload, after
    /// it flushed what the old snapshot queued.
    var counters: TunnelCounters
    private let failures: ThrottledLog

    init(rawSocket fd: Int32, rawSocket6 fd6: Int32 = -1, tun tunFD: Int32 = -1, icmpv6: RawICMPv6Sender?, counters: TunnelCounters,
         failures: ThrottledLog) {
        self.fd = fd
        self.fd6 = fd6
        self.tunFD = tunFD
        self.icmpv6 = icmpv6
        self.counters = counters
        self.failures = failures
    }

    func flush(_ batch: PacketBatch) {
        receivedAt = 0
        var start = 0
        while start < batch.count {
            if batch.goesToTUN(at: start) {
                let packet = batch.packet(at: start)
                let written = retryOnInterrupt { write(tunFD, packet.baseAddress, packet.count) }
                if written == packet.count { countSent(batch, start) } else { countFailed(batch.kind(at: start), errno: errno) }
                start += 1
                continue
            }
            if batch.goesToICMPv6Socket(at: start) {
                if icmpv6?.send(batch.packet(at: start)) == true { countSent(batch, start) } else { countFailed(batch.kind(at: start), errno: errno) }
                start += 1
                continue
            }
            // The run of packets for one raw socket, up to the next one for another socket or the TUN device.
            let ipv6 = batch.goesToRawIPv6Socket(at: start)
            var end = start + 1
            while end < batch.count && !batch.goesToTUN(at: end) && !batch.goesToICMPv6Socket(at: end)
                    && batch.goesToRawIPv6Socket(at: end) == ipv6 { end += 1 }
            let result = retryOnInterrupt {
                ipv6 ? CIPIPShims_sendBatch6(fd6, batch.starts + start, batch.lengths + start,
                                             batch.destinations6.assumingMemoryBound(to: UInt8.self) + 16 * start, UInt32(end - start))
                     : CIPIPShims_sendBatch(fd, batch.starts + start, batch.lengths + start, batch.destinations + start, UInt32(end - start))
            }
            if result > 0 {
                for index in start..<(start + Int(result)) { countSent(batch, index) }
                start += Int(result)
            } else {
                countFailed(batch.kind(at: start), errno: errno)
                start += 1
            }
        }
        batch.removeAll()
    }

    /// The wall clock of this flush, in milliseconds, read once when a decapsulated packet is counted.
    private var receivedAt: UInt64 = 0

    @inline(__always)
    private func noteReceived(from peer: Int) {
        if receivedAt == 0 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            receivedAt = UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec / 1_000_000)
        }
        counters.peers[peer].lastReceived.set(receivedAt)
    }

    @inline(__always)
    private func countSent(_ batch: PacketBatch, _ index: Int) {
        switch batch.kind(at: index) {
        case .encapsulatedFragment(_, _, first: false):
            break   // counted with the first
        case let .encapsulated(peer, innerLength), let .encapsulatedFragment(peer, innerLength, first: true):
            counters.peers[peer].encapsulatedPackets.add()
            counters.peers[peer].encapsulatedBytes.add(UInt64(innerLength))
            if batch.carriesIPv6(at: index) {
                counters.peers[peer].encapsulatedIPv6Packets.add()
                counters.peers[peer].encapsulatedIPv6Bytes.add(UInt64(innerLength))
            }
        case let .decapsulated(peer, innerLength, _):
            noteReceived(from: peer)
            counters.peers[peer].decapsulatedPackets.add()
            counters.peers[peer].decapsulatedBytes.add(UInt64(innerLength))
            counters.capture.delivered.add()
            if batch.carriesIPv6(at: index) {
                counters.peers[peer].decapsulatedIPv6Packets.add()
                counters.peers[peer].decapsulatedIPv6Bytes.add(UInt64(innerLength))
            }
        case let .decapsulatedPiece(peer, innerLength):
            counters.peers[peer].decapsulatedPackets.add()
            counters.peers[peer].decapsulatedBytes.add(UInt64(innerLength))
        case let .superPacket(peer, innerLength, segments, frames):
            noteReceived(from: peer)
            // The segments as their sender sent them; the captured frames they came in.
            counters.peers[peer].decapsulatedPackets.add(UInt64(segments))
            counters.peers[peer].decapsulatedBytes.add(UInt64(innerLength))
            counters.capture.delivered.add(UInt64(frames))
            if frames > 1 {
                (batch.carriesUDPSuperPacket(at: index) ? counters.udpDatagramsCoalesced : counters.tcpSegmentsCoalesced).add(UInt64(segments))
            }
            if batch.carriesIPv6(at: index) {
                counters.peers[peer].decapsulatedIPv6Packets.add(UInt64(segments))
                counters.peers[peer].decapsulatedIPv6Bytes.add(UInt64(innerLength))
            }
        case .icmpError(let peer), .icmpv6Error(let peer):
            counters.peers[peer].icmpErrorsSent.add()
        }
    }

    private func countFailed(_ kind: PacketBatch.Kind, errno code: Int32) {
        let peer: Int
        switch kind {
        case .encapsulated(let p, _), .encapsulatedFragment(let p, _, _):
            peer = p
            counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
        case .decapsulated(let p, _, _):
            peer = p
            counters.dropCaptured(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
        case let .superPacket(p, _, _, frames):
            peer = p
            counters.dropCaptured(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer, count: frames)
        case .decapsulatedPiece(let p, _):
            peer = p
            counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
        case .icmpError(let p), .icmpv6Error(let p):
            peer = p
        }
        failures.note(["peer": "\(counters.peers[peer].name)", "error": "\(String(cString: strerror(code)))"])
    }
}
