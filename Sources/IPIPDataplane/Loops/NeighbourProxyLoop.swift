import IPIPCore
import Logging

/// The neighbour proxy's thread for one LAN interface: ARP frames for IPv4 ghost addresses and Neighbor
/// Solicitations/Advertisements for IPv6 ones, from libpcap → `NeighbourProxy` → replies with
/// pcap_inject; plus the scheduled announcements. As an HA pair's standby it reads and discards (the
/// active box answers; its announcements are no conflict), and on becoming active it announces every
/// ghost host at once (`wakeUp` ends its wait).
struct NeighbourProxyLoop {
    let context: LoopContext
    let health: LoopHealth
    let capture: PacketCapture
    let mac: MACAddress
    let wakeUp: WakeUp?

    /// Thread names are cut to 15 bytes: `ipipd-neigh-eth0` shows as `ipipd-neigh-eth` in ps.
    static func threadName(_ interface: String) -> String { "ipipd-neigh-\(interface)" }

    func run() {
        PrivilegeDrop.dropCapabilitiesOfThisThread(context.logger, thread: health.name)
        defer { health.set(.stopped) }
        var state = State(loop: self)
        state.run()
    }

    /// What the thread keeps between frames; each step of its loop is one method.
    private struct State {
        let loop: NeighbourProxyLoop
        let interface: String
        var logger: Logger { loop.context.logger }
        var failures: LoopFailures
        var snapshot: DataplaneSnapshot
        var proxy: NeighbourProxy
        var active: Bool
        /// The solicited-node groups of the IPv6 ghosts joined (and left when their last ghost goes).
        var joinedGroups: Set<MACAddress> = []
        /// This interface's ghost counters, by address text.
        var ghostCounters: [String: GhostCounters] = [:]
        var conflictLogs: [String: ThrottledLog] = [:]
        /// An HA box that is active sees its partner claim the endpoint or a ghost: a split brain.
        var splitBrain = SplitBrainWatch(confirmationSeconds: 1)
        let splitBrainLog: ThrottledLog
        let injectErrors: ThrottledLog
        var kernelCounts = KernelCaptureCounts()
        var lastHousekeeping = monotonicSeconds()

        init(loop: NeighbourProxyLoop) {
            self.loop = loop
            interface = loop.capture.interface
            failures = loop.context.failures(for: loop.health)
            snapshot = loop.context.box.current
            active = loop.context.role.isActive
            proxy = NeighbourProxy(interface: interface, mac: loop.mac, config: snapshot.config, announcing: active, now: monotonicSeconds())
            splitBrainLog = ThrottledLog(logger: loop.context.logger, message: Self.splitBrainMessage)
            injectErrors = ThrottledLog(logger: loop.context.logger, message: "cannot send an ARP or NDP frame")
            joinSolicitedNodeGroups()
            takeGhostCounters()
        }

        static let splitBrainMessage: Logger.Message = """
            split brain? another machine claims what only the active box may while this box is active: \
            is the HA partner active too (VRRP between the boxes cut)?
            """

        mutating func run() {
            while !loop.context.stop.isStopped {
                countKernelDrops()
                followReload()
                followRole()
                reportSplitBrain()
                sendDueAnnouncements()
                guard readFrames() else { return }
            }
        }

        /// Once a second: the frames the kernel dropped before the capture could take them.
        mutating func countKernelDrops() {
            guard monotonicSeconds() - lastHousekeeping >= 1 else { return }
            lastHousekeeping = monotonicSeconds()
            snapshot.counters.drops.count(.captureDrop, times: kernelCounts.update(from: loop.capture).dropped)
        }

        /// A reload published a new snapshot: new ghosts, groups, counters and the capture's filter.
        mutating func followReload() {
            guard loop.context.box.generation != snapshot.generation else { return }
            let previous = snapshot.config
            snapshot = loop.context.box.current
            takeGhostCounters()
            proxy.reconfigure(for: snapshot.config, interface: interface, previous: previous, announcing: active, now: monotonicSeconds())
            joinSolicitedNodeGroups()
            let names = Set(snapshot.config.ghostCounterKeys.filter { $0.interface == interface }.map(\.address))
            conflictLogs = conflictLogs.filter { names.contains($0.key) }
            do {
                try loop.capture.setFilter(CaptureFilter.neighbourProxy(interface: interface, config: snapshot.config))
            } catch {
                logger.error("cannot update the ARP and NDP filter", metadata: ["interface": "\(interface)", "error": "\(error)"])
            }
        }

        /// Becoming active announces every ghost host; becoming the standby announces nothing more.
        mutating func followRole() {
            guard loop.context.role.isActive != active else { return }
            active.toggle()
            if active { proxy.announceAll(now: monotonicSeconds()) } else { proxy.cancelAnnouncements() }
        }

        mutating func reportSplitBrain() {
            let now = monotonicSeconds()
            for claim in splitBrain.confirmed(active: active, now: now) {
                let at = wallClockSeconds() - (now - claim.at)
                snapshot.counters.splitBrain.note(SplitBrainWatch.Claim(mac: claim.mac, address: claim.address, at: at))
                splitBrainLog.note(["interface": "\(interface)", "mac": "\(claim.mac)", "claimed": "\(claim.address)",
                                    "claims": "\(snapshot.counters.splitBrain.claims.value)"])
            }
        }

        mutating func sendDueAnnouncements() {
            guard active else { return }
            for (ghost, frame) in proxy.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                ghostCounters["\(ghost)"]?.announcements.add()
            }
        }

        /// Waits for frames (or the role's wake-up) and answers them; the standby reads and discards.
        /// False: the capture failed for too long, and the loop ends.
        mutating func readFrames() -> Bool {
            do {
                guard try loop.capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds, orWakeUp: loop.wakeUp)
                else { return true }
                if active {
                    try loop.capture.dispatch(limit: 256) { frame in handle(frame) }
                } else {
                    try loop.capture.dispatch(limit: 256) { _ in }
                }
                failures.succeeded()
                return true
            } catch {
                return failures.failed(error)
            }
        }

        mutating func handle(_ frame: PacketCapture.Frame) {
            switch proxy.handle(frame.bytes, now: monotonicSeconds()) {
            case let .reply(ghost, reply):
                if inject(reply) { ghostCounters["\(ghost)"]?.replies.add() }
            case let .conflict(ghost, mac, sender, defense):
                conflict("\(ghost)", mac: mac, sender: "\(sender)", defense: defense)
            case let .endpointClaim(endpoint, mac):
                claimed("\(endpoint)", by: mac)
            case let .ignore(reason, ghost):
                guard let ghost else { return }
                if reason == .probe { ghostCounters["\(ghost)"]?.probesIgnored.add() } else { ghostCounters["\(ghost)"]?.otherIgnored.add() }
            }
        }

        mutating func conflict(_ ghost: String, mac: MACAddress, sender: String, defense: [UInt8]?) {
            ghostCounters[ghost]?.conflicts.add()
            claimed(ghost, by: mac)
            if let defense, inject(defense) { ghostCounters[ghost]?.announcements.add() }
            let action = proxy.options.yieldOnConflict ? "not answering for it while the conflict lasts"
                : "still answering for it and announcing it (at most every \(proxy.options.defendIntervalSeconds) s)"
            let log = conflictLogs[ghost] ?? ThrottledLog(logger: logger, message: "another machine claims a ghost address")
            conflictLogs[ghost] = log
            log.note(["ghost": "\(ghost)", "interface": "\(interface)", "mac": "\(mac)", "sender": "\(sender)", "action": "\(action)"])
        }

        /// Only an HA pair watches for claims: elsewhere another machine's claim is a conflict, no split brain.
        mutating func claimed(_ address: String, by mac: MACAddress) {
            guard snapshot.config.uplink.standbyWhenAbsent else { return }
            splitBrain.claimed(address, by: mac, now: monotonicSeconds())
        }

        func inject(_ frame: [UInt8]) -> Bool {
            let sent = frame.withUnsafeBytes { loop.capture.inject($0) }
            if !sent { injectErrors.note(["interface": "\(interface)"]) }
            return sent
        }

        /// The solicited-node groups of the IPv6 ghosts, joined (and left when their last ghost goes):
        /// NICs that filter multicast must deliver their solicitations.
        mutating func joinSolicitedNodeGroups() {
            let ghosts = snapshot.config.ghosts(IPv6Address.self, on: interface)
            for ghost in ghosts where !joinedGroups.contains(ghost.address.solicitedNode.multicastMAC) {
                let group = ghost.address.solicitedNode.multicastMAC
                do {
                    try loop.capture.setMulticast(group, joined: true)
                    joinedGroups.insert(group)
                    logger.info("joined solicited-node group", metadata: ["interface": "\(interface)", "ghost": "\(ghost.address)",
                                                                          "group": "\(ghost.address.solicitedNode)", "mac": "\(group)"])
                } catch {
                    logger.error("cannot join a solicited-node group; Neighbor Solicitations may not reach ipipd",
                                 metadata: ["interface": "\(interface)", "ghost": "\(ghost.address)", "error": "\(error)"])
                }
            }
            for group in joinedGroups.subtracting(ghosts.map(\.address.solicitedNode.multicastMAC)) {
                try? loop.capture.setMulticast(group, joined: false)
                joinedGroups.remove(group)
            }
        }

        mutating func takeGhostCounters() {
            ghostCounters = Dictionary(snapshot.counters.ghosts.filter { $0.interface == interface }.map { ($0.address, $0) },
                                       uniquingKeysWith: { a, _ in a })
        }
    }
}
