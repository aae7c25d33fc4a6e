#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The capture engine's thread: takes the frames the uplink's capture has queued, a burst per system
/// call, hands each to the `DecapsulationPath`, and delivers what it queued (TUN writes, one sendmmsg(2)
/// per 64 packets); then it takes a turn at the TUN device for what its deliveries produced in return
/// (`TUNReader`) before it waits again — while traffic is light, for the TUN device's packets as well.
struct DecapsulationLoop {
    let context: LoopContext
    let health: LoopHealth
    let capture: UplinkCapture
    let sender: RawIPv4Sender
    /// Where ICMPv6 errors go (nil: the tunnel carries no IPv6).
    let icmpv6: RawICMPv6Sender?
    /// Where the kernel's receive path starts: decapsulated packets are written to it.
    let tun: TUNDevice
    /// The TUN device's reading side, shared with the encapsulator's thread.
    let tunReader: TUNReader
    let routeFacts: RouteFacts
    let tunnelMTU: Int
    let uplinkMTU: Int

    func run() {
        let (box, stop, logger) = (context.box, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        var failures = context.failures(for: health)
        var snapshot = box.current
        let path = DecapsulationPath(config: snapshot.config, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU, counters: snapshot.counters,
                                     paths: snapshot.paths, localNetworks: SystemProbe.localNetworks(),
                                     localRoutes: routeFacts.current.localRoutes)
        let batch = PacketBatch()
        let flusher = BatchFlusher(rawSocket: sender.fileDescriptor, tun: tun.fd, icmpv6: icmpv6, counters: snapshot.counters,
                                   failures: ThrottledLog(logger: logger, message: "cannot reinject a decapsulated packet"))
        batch.whenFull = flusher.flush
        let pathLog = ThrottledLog(logger: logger, message: "a router reported a problem on the path to a peer", interval: 5)
        path.report = { event in
            let peers = snapshot.counters.peers
            switch event {
            case let .pathMTULowered(peer, mtu):
                pathLog.note(["peer": "\(peers[peer].name)", "report": "fragmentation needed", "path-mtu": "\(mtu)"])
            case let .peerReportedUnreachable(peer, reporter):
                pathLog.note(["peer": "\(peers[peer].name)", "report": "unreachable", "from": "\(reporter)"])
            }
        }
        var routeFactsGeneration = -1
        var lastHousekeeping = -Double.infinity

        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                path.reconfigure(snapshot.config, counters: snapshot.counters, paths: snapshot.paths)
                flusher.counters = snapshot.counters
            }
            if routeFacts.generation != routeFactsGeneration {
                routeFactsGeneration = routeFacts.generation
                let facts = routeFacts.current
                path.egressMTUs = facts.egressMTUs
                path.localRoutes = facts.localRoutes
            }
            var now = monotonicSeconds()
            if now - lastHousekeeping >= 1 {
                lastHousekeeping = now
                let counts = capture.kernelCounts()
                snapshot.counters.drops.count(.captureDrop, times: counts.dropped)
                snapshot.counters.capture.kernelReceived.add(counts.received)
                if capture.undescribedFrames > 0 {
                    snapshot.counters.capture.frames.add(UInt64(capture.undescribedFrames))
                    snapshot.counters.dropCaptured(.unsupportedOffload, count: capture.undescribedFrames)
                    capture.undescribedFrames = 0
                }
                path.expire(now: now)
                // Addresses come and go (DHCP, admins): no inner packet may claim to come from one.
                path.localNetworks = SystemProbe.localNetworks()
                // A capture bound to an interface that went away receives nothing, silently, forever.
                if !capture.isStillBound {
                    guard failures.failed(SystemError("capture on \(capture.interface)", errno: ENODEV,
                                                      detail: "the interface went away or was replaced")) else { return }
                    continue
                }
            }
            let flushesBefore = batch.flushes
            var tunReadable = false
            var taken = 0
            let watching = tunReader.captureThreadWatches()
            do {
                var count: Int
                if watching {
                    // Until one of the two has something (or the stop-signal interval passes).
                    let ready = waitReadable(capture.fileDescriptor, tunReader.tun.fd, timeoutMilliseconds: StopSignal.pollIntervalMilliseconds)
                    tunReadable = ready.second
                    count = ready.first ? try capture.receive(wait: false) : 0
                } else {
                    // Blocks until a frame comes (or the stop-signal interval passes): one system call per wakeup.
                    count = try capture.receive(wait: true)
                }
                guard count > 0 || tunReadable else { continue }
                now = monotonicSeconds()
                path.standby = !context.role.isActive   // as it is now, not before the wait
                // Drain what is queued, a burst per call, but come back to check the stop signal now and then.
                while true {
                    for index in 0..<count {
                        let frame = capture.frame(at: index)
                        path.process(frame: frame.bytes, wireLength: frame.wireLength, offload: frame.offload, in: batch, now: now)
                    }
                    taken += count
                    guard count == UplinkCapture.burst, taken < 256 else { break }
                    count = try capture.receive(wait: false)
                }
                failures.succeeded()
            } catch {
                if !batch.isEmpty { flusher.flush(batch) }
                guard failures.failed(error) else { return }
                continue
            }
            if !batch.isEmpty { flusher.flush(batch) }
            // Also when the burst filled the batch and `whenFull` sent it: the usual case under load.
            let delivered = batch.flushes != flushesBefore
            // While this thread watches the TUN device: what the kernel answered within those deliveries
            // (a reply from the LAN) waits there, and so do the LAN's own packets — sent from here.
            let sent = watching && (delivered || tunReadable) && tunReader.captureThreadTurn(now: now, frames: taken).sent
            if delivered || sent { yieldToWhatTheBurstWoke() }
        }
    }
}
