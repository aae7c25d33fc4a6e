import IPIPCore
import Logging

/// The proxy-ARP responder's thread for one LAN interface: ARP frames for ghost addresses from libpcap
/// → `ProxyARPResponder` → replies with pcap_inject; plus the scheduled announcements. As an HA pair's
/// standby it reads and discards (the active box answers; its announcements are no conflict), and on
/// becoming active it announces every ghost host at once (`wakeUp` ends its wait).
struct ProxyARPLoop {
    let context: LoopContext
    let health: LoopHealth
    let capture: PacketCapture
    let mac: MACAddress
    let wakeUp: WakeUp?

    func run() {
        let (box, stop, logger) = (context.box, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        var failures = context.failures(for: health)
        let interface = capture.interface
        var snapshot = box.current
        var responder = ProxyARPResponder(interface: interface, mac: mac, config: snapshot.config, now: monotonicSeconds())
        var active = context.role.isActive
        if !active { responder.cancelAnnouncements() }
        var ghostCounters: [IPv4Address: GhostCounters] = [:]
        func takeCounters() {
            ghostCounters = Dictionary(snapshot.counters.ghosts.filter { $0.interface == interface }.map { ($0.address, $0) },
                                       uniquingKeysWith: { a, _ in a })
        }
        takeCounters()
        var conflictLogs: [IPv4Address: ThrottledLog] = [:]
        let injectErrors = ThrottledLog(logger: logger, message: "cannot send an ARP frame")
        func inject(_ frame: [UInt8]) -> Bool {
            let sent = frame.withUnsafeBytes { capture.inject($0) }
            if !sent { injectErrors.note(["interface": "\(interface)"]) }
            return sent
        }
        func handle(_ frame: PacketCapture.Frame) {
            switch responder.handle(frame.bytes, now: monotonicSeconds()) {
            case let .reply(ghost, reply):
                if inject(reply) { ghostCounters[ghost]?.replies.add() }
            case let .conflict(ghost, mac, sender, defense):
                ghostCounters[ghost]?.conflicts.add()
                if let defense, inject(defense) { ghostCounters[ghost]?.announcements.add() }
                let action = responder.options.yieldOnConflict ? "not answering for it while the conflict lasts"
                    : "still answering for it and announcing it (at most every 10 s)"
                let log = conflictLogs[ghost] ?? ThrottledLog(logger: logger, message: "another machine claims a ghost address")
                conflictLogs[ghost] = log
                log.note(["ghost": "\(ghost)", "interface": "\(interface)", "mac": "\(mac)", "sender": "\(sender)",
                          "action": "\(action)"])
            case .ignore(.probe, let ghost?):
                ghostCounters[ghost]?.probesIgnored.add()
            case .ignore(_, let ghost?):
                ghostCounters[ghost]?.otherIgnored.add()
            case .ignore(_, nil):
                break
            }
        }
        var kernelCounts = KernelCaptureCounts()
        var lastHousekeeping = monotonicSeconds()
        while !stop.isStopped {
            if monotonicSeconds() - lastHousekeeping >= 1 {
                lastHousekeeping = monotonicSeconds()
                snapshot.counters.drops.count(.captureDrop, times: kernelCounts.update(from: capture).dropped)
            }
            if box.generation != snapshot.generation {
                let previous = snapshot.config
                snapshot = box.current
                takeCounters()
                responder = responder.reconfigured(for: snapshot.config, interface: interface, previous: previous, now: monotonicSeconds())
                if !active { responder.cancelAnnouncements() }
                let ghosts = snapshot.config.ghostHosts.filter { $0.interface == interface }.map(\.address)
                conflictLogs = conflictLogs.filter { ghosts.contains($0.key) }
                do {
                    try capture.setFilter(CaptureFilter.proxyARP(ghosts: ghosts))
                } catch {
                    logger.error("cannot update the ARP filter", metadata: ["interface": "\(interface)", "error": "\(error)"])
                }
            }
            if context.role.isActive != active {
                active.toggle()
                if active { responder.announceAll(now: monotonicSeconds()) } else { responder.cancelAnnouncements() }
            }
            if active {
                for (ghost, frame) in responder.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                    ghostCounters[ghost]?.announcements.add()
                }
            }
            do {
                guard try capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds, orWakeUp: wakeUp) else { continue }
                try capture.dispatch(limit: 256, active ? handle : { _ in })
                failures.succeeded()
            } catch {
                guard failures.failed(error) else { return }
            }
        }
    }
}
