#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The encapsulator's thread: reads bursts from the TUN device into the batch's slots, hands each read
/// to the `EncapsulationPath`, and sends what it queued to the peers with one sendmmsg(2) per burst.
struct EncapsulationLoop {
    let box: SnapshotBox
    let stop: StopSignal
    let logger: Logger
    let tun: TUNDevice
    let sender: RawIPv4Sender
    let tunnelMTU: Int

    func run() {
        var snapshot = box.current
        let path = EncapsulationPath(config: snapshot.config, tunnelMTU: tunnelMTU, counters: snapshot.counters,
                                     paths: snapshot.paths, initialIdentification: UInt16.random(in: 1...UInt16.max))
        let batch = PacketBatch()
        let flusher = BatchFlusher(rawSocket: sender.fileDescriptor, counters: snapshot.counters,
                                   failures: ThrottledLog(logger: logger, message: "cannot send to peer"))
        batch.whenFull = flusher.flush
        let loopLog = ThrottledLog(logger: logger, message: "the route to a peer's endpoint leads into the tunnel; dropping its traffic instead of looping")
        var routeWatcher = EndpointRouteWatcher(tunnel: tun.name, endpoints: path.encapsulator.endpoints)
        var lastRouteCheck = -Double.infinity

        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                path.reconfigure(snapshot.config, counters: snapshot.counters, paths: snapshot.paths)
                flusher.counters = snapshot.counters
                routeWatcher = EndpointRouteWatcher(tunnel: tun.name, endpoints: path.encapsulator.endpoints)
                lastRouteCheck = -Double.infinity
            }
            let now = monotonicSeconds()
            if now - lastRouteCheck >= 1 {
                // RFC 2003 §4 / the seed's "looping tunnel": never send outer packets into our own TUN.
                lastRouteCheck = now
                for (peer, looping) in routeWatcher.check().enumerated() {
                    snapshot.paths[peer].setLooping(looping)
                    if looping {
                        loopLog.note(["peer": "\(snapshot.counters.peers[peer].name)", "endpoint": "\(routeWatcher.endpoints[peer])"])
                    }
                }
            }
            // Drain what the TUN has queued, a burst at a time; each read lands in the batch's next
            // slot, its virtio header just before the inner packet's place.
            var drained = false
            for _ in 0..<PacketBatch.capacity {
                let read: Int?
                do {
                    read = try tun.read(into: UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...]))
                } catch {
                    logger.error("TUN read failed; the encapsulator stops", metadata: ["error": "\(error)"])
                    return
                }
                guard let read else {
                    drained = true
                    break
                }
                path.process(readLength: read, in: batch, now: now)
            }
            if !batch.isEmpty {
                flusher.flush(batch)
                yieldToWhatTheBurstWoke()
            }
            // The queue was empty: sleep until it is not (rather than one more read to find out).
            if drained { _ = tun.waitForPackets(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) }
        }
    }
}
