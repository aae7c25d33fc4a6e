import IPIPCore
import Logging

/// The proxy-ARP and proxy-NDP responders' thread for one LAN interface: ARP frames for IPv4 ghost
/// addresses and Neighbor Solicitations/Advertisements from libpcap → `ProxyARPResponder` or
/// `ProxyNDPResponder` → replies with pcap_inject; plus the scheduled announcements. As an HA pair's
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
        var responder6 = ProxyNDPResponder(interface: interface, mac: mac, config: snapshot.config, now: monotonicSeconds())
        var active = context.role.isActive
        if !active {
            responder.cancelAnnouncements()
            responder6.cancelAnnouncements()
        }
        var joined: Set<MACAddress> = []
        /// The solicited-node groups of the IPv6 ghosts, joined (and left when their last ghost goes):
        /// NICs that filter multicast must deliver their solicitations.
        func joinGroups() {
            let ghosts = snapshot.config.ghosts(IPv6Address.self, on: interface)
            for ghost in ghosts where !joined.contains(ghost.address.solicitedNode.multicastMAC) {
                let group = ghost.address.solicitedNode.multicastMAC
                do {
                    try capture.setMulticast(group, joined: true)
                    joined.insert(group)
                    logger.info("joined solicited-node group", metadata: ["interface": "\(interface)", "ghost": "\(ghost.address)",
                                                                          "group": "\(ghost.address.solicitedNode)", "mac": "\(group)"])
                } catch {
                    logger.error("cannot join a solicited-node group; Neighbor Solicitations may not reach ipipd",
                                 metadata: ["interface": "\(interface)", "ghost": "\(ghost.address)", "error": "\(error)"])
                }
            }
            for group in joined.subtracting(ghosts.map(\.address.solicitedNode.multicastMAC)) {
                try? capture.setMulticast(group, joined: false)
                joined.remove(group)
            }
        }
        joinGroups()
        var ghostCounters: [String: GhostCounters] = [:]
        func takeCounters() {
            ghostCounters = Dictionary(snapshot.counters.ghosts.filter { $0.interface == interface }.map { ($0.address, $0) },
                                       uniquingKeysWith: { a, _ in a })
        }
        takeCounters()
        var conflictLogs: [String: ThrottledLog] = [:]
        // An HA box that is active sees its partner claim the endpoint or a ghost: a split brain.
        var splitBrain = SplitBrainWatch(confirmationSeconds: 1)
        let splitBrainLog = ThrottledLog(logger: logger, message: "split brain? another machine claims what only the active box may while this box is active: is the HA partner active too (VRRP between the boxes cut)?")
        func claimed(_ address: String, by mac: MACAddress) {
            guard snapshot.config.uplink.standbyWhenAbsent else { return }
            splitBrain.claimed(address, by: mac, now: monotonicSeconds())
        }
        let injectErrors = ThrottledLog(logger: logger, message: "cannot send an ARP or NDP frame")
        func inject(_ frame: [UInt8]) -> Bool {
            let sent = frame.withUnsafeBytes { capture.inject($0) }
            if !sent { injectErrors.note(["interface": "\(interface)"]) }
            return sent
        }
        func conflict(_ ghost: String, mac: MACAddress, sender: String, defense: [UInt8]?) {
            ghostCounters[ghost]?.conflicts.add()
            claimed(ghost, by: mac)
            if let defense, inject(defense) { ghostCounters[ghost]?.announcements.add() }
            let action = responder.options.yieldOnConflict ? "not answering for it while the conflict lasts"
                : "still answering for it and announcing it (at most every \(responder.options.defendIntervalSeconds) s)"
            let log = conflictLogs[ghost] ?? ThrottledLog(logger: logger, message: "another machine claims a ghost address")
            conflictLogs[ghost] = log
            log.note(["ghost": "\(ghost)", "interface": "\(interface)", "mac": "\(mac)", "sender": "\(sender)", "action": "\(action)"])
        }
        func ignored(_ reason: ProxyARPResponder.Ignored, _ ghost: String?) {
            guard let ghost else { return }
            if reason == .probe { ghostCounters[ghost]?.probesIgnored.add() } else { ghostCounters[ghost]?.otherIgnored.add() }
        }
        func handle(_ frame: PacketCapture.Frame) {
            let now = monotonicSeconds()
            if let ethernet = try? EthernetFrameView(parsing: frame.bytes), ethernet.etherType == EtherType.ipv6 {
                switch responder6.handle(frame.bytes, now: now) {
                case let .reply(ghost, reply):
                    if inject(reply) { ghostCounters["\(ghost)"]?.replies.add() }
                case let .conflict(ghost, mac, defense):
                    conflict("\(ghost)", mac: mac, sender: "\(ghost)", defense: defense)
                case let .ignore(reason, ghost):
                    ignored(reason, ghost.map { "\($0)" })
                }
                return
            }
            switch responder.handle(frame.bytes, now: now) {
            case let .reply(ghost, reply):
                if inject(reply) { ghostCounters["\(ghost)"]?.replies.add() }
            case let .conflict(ghost, mac, sender, defense):
                conflict("\(ghost)", mac: mac, sender: "\(sender)", defense: defense)
            case let .endpointClaim(mac):
                claimed(responder.endpoint.map { "\($0)" } ?? "", by: mac)
            case let .ignore(reason, ghost):
                ignored(reason, ghost.map { "\($0)" })
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
                responder6 = responder6.reconfigured(for: snapshot.config, interface: interface, previous: previous, now: monotonicSeconds())
                if !active {
                    responder.cancelAnnouncements()
                    responder6.cancelAnnouncements()
                }
                joinGroups()
                let names = Set(snapshot.config.ghostCounterKeys.filter { $0.interface == interface }.map(\.address))
                conflictLogs = conflictLogs.filter { names.contains($0.key) }
                do {
                    try capture.setFilter(CaptureFilter.proxyARP(interface: interface, config: snapshot.config))
                } catch {
                    logger.error("cannot update the ARP filter", metadata: ["interface": "\(interface)", "error": "\(error)"])
                }
            }
            if context.role.isActive != active {
                active.toggle()
                if active {
                    responder.announceAll(now: monotonicSeconds())
                    responder6.announceAll(now: monotonicSeconds())
                } else {
                    responder.cancelAnnouncements()
                    responder6.cancelAnnouncements()
                }
            }
            let now = monotonicSeconds()
            for claim in splitBrain.confirmed(active: active, now: now) {
                let at = wallClockSeconds() - (now - claim.at)
                snapshot.counters.splitBrain.note(SplitBrainWatch.Claim(mac: claim.mac, address: claim.address, at: at))
                splitBrainLog.note(["interface": "\(interface)", "mac": "\(claim.mac)", "claimed": "\(claim.address)",
                                    "claims": "\(snapshot.counters.splitBrain.claims.value)"])
            }
            if active {
                for (ghost, frame) in responder.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                    ghostCounters["\(ghost)"]?.announcements.add()
                }
                for (ghost, frame) in responder6.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                    ghostCounters["\(ghost)"]?.announcements.add()
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
