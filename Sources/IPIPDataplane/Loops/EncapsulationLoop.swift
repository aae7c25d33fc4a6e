#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The encapsulator's thread: reads bursts from the TUN device into the batch's slots, hands each read
/// to the `EncapsulationPath`, and sends what it queued to the peers with one sendmmsg(2) per burst.
struct EncapsulationLoop {
    let context: LoopContext
    let health: LoopHealth
    let tun: TUNDevice
    let sender: RawIPv4Sender
    /// An IPv6 underlay's outer packets (nil: the underlay is IPv4).
    let sender6: RawIPv6Sender?
    /// Where ICMPv6 errors go (nil: the tunnel carries no IPv6).
    let icmpv6: RawICMPv6Sender?
    let tunnelMTU: Int
    let uplinkMTU: Int

    func run() {
        let (box, stop, logger) = (context.box, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        var failures = context.failures(for: health)
        var snapshot = box.current
        let path = EncapsulationPath(config: snapshot.config, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU, counters: snapshot.counters,
                                     paths: snapshot.paths)
        let batch = PacketBatch()
        let flusher = BatchFlusher(rawSocket: sender.fileDescriptor, rawSocket6: sender6?.fileDescriptor ?? -1, icmpv6: icmpv6,
                                   counters: snapshot.counters,
                                   failures: ThrottledLog(logger: logger, message: "cannot send to peer"))
        batch.whenFull = flusher.flush

        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                path.reconfigure(snapshot.config, counters: snapshot.counters, paths: snapshot.paths)
                flusher.counters = snapshot.counters
            }
            let now = monotonicSeconds()
            // Drain what the TUN has queued, a burst at a time; each read lands in the batch's next
            // slot, its virtio header just before the inner packet's place.
            var drained = false
            path.standby = !context.role.isActive
            let flushesBefore = batch.flushes
            do {
                for _ in 0..<PacketBatch.capacity {
                    guard let read = try tun.read(into: UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...])) else {
                        drained = true
                        break
                    }
                    path.process(readLength: read, in: batch, now: now)
                }
                failures.succeeded()
            } catch {
                if !batch.isEmpty { flusher.flush(batch) }
                guard failures.failed(error) else { return }
                continue
            }
            if !batch.isEmpty { flusher.flush(batch) }
            // Also when the burst filled the batch and `whenFull` sent it: the usual case under load.
            if batch.flushes != flushesBefore { yieldToWhatTheBurstWoke() }
            // The queue was empty: sleep until it is not (rather than one more read to find out).
            if drained { _ = tun.waitForPackets(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) }
        }
    }
}
