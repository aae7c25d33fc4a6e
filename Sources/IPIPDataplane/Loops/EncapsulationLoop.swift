#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The encapsulator's thread: while it watches the TUN device (`TUNReader`: under load), it sleeps until
/// the device has packets, then has the reader take them, a burst at a time, wrap them and send them to
/// the peers with one sendmmsg(2) per burst; after an idle spell it hands the watch back to the capture
/// thread and sleeps until it is handed the watch again.
struct EncapsulationLoop {
    let context: LoopContext
    let health: LoopHealth
    let reader: TUNReader

    func run() {
        PrivilegeDrop.dropCapabilitiesOfThisThread(context.logger, thread: health.name)
        defer { health.set(.stopped) }
        var failures = context.failures(for: health)
        var lastPacket = monotonicSeconds()
        while !context.stop.isStopped {
            if reader.currentWatcher == .captureThread {
                _ = waitReadable(reader.encapsulatorWakeUp.fd, timeoutMilliseconds: StopSignal.pollIntervalMilliseconds)
                reader.encapsulatorWakeUp.clear()
                lastPacket = monotonicSeconds()
                continue
            }
            let now = monotonicSeconds()
            let turn: TUNReader.Turn
            do {
                turn = try reader.drain(now: now)
                failures.succeeded()
            } catch {
                guard failures.failed(error) else { return }
                continue
            }
            if turn.read > 0 { lastPacket = now }
            // Also when the burst filled the batch and `whenFull` sent it: the usual case under load.
            if turn.sent { yieldToWhatTheBurstWoke() }
            guard turn.drained else { continue }
            if now - lastPacket >= TUNReader.handBackAfter { reader.offerWatchBack() }
            // The queue was empty: sleep until it is not (rather than one more read to find out).
            _ = reader.tun.waitForPackets(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds)
        }
    }
}
