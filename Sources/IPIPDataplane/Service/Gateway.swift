#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IPIPCore
import Logging
import Synchronization

/// A running tunnel gateway: the kernel setup, the encapsulator (TUN → peers), the capture engine and
/// decapsulator (uplink → kernel), a neighbour proxy (ARP and NDP) per LAN interface, and the control socket,
/// each loop on its own thread. A reload publishes a new snapshot to the running loops.
public final class Gateway: @unchecked Sendable {
    public struct Options: Sendable {
        public var configFile: String
        public var runtimeDirectory: String
        public var version: String
        /// How long a dataplane loop may fail to read before the daemon ends (to be restarted).
        public var loopFailureTimeout: Double
        public init(configFile: String, runtimeDirectory: String, version: String, loopFailureTimeout: Double = 30) {
            self.configFile = configFile
            self.runtimeDirectory = runtimeDirectory
            self.version = version
            self.loopFailureTimeout = loopFailureTimeout
        }
    }

    /// The outcome of a reload, as logged and as `ipipd reload` prints it.
    public struct ReloadOutcome: Codable, Sendable {
        public var applied: Bool
        public var messages: [String]
    }

    private let options: Options
    private let logger: Logger
    private let stop = StopSignal()
    private let startedAt = Date()
    private let box: SnapshotBox
    /// Active, or an HA pair's standby while keepalived gives the uplink address to the other box.
    private let role: RoleState
    /// The neighbour-proxy loops' wake-ups, signalled when the role changes.
    private let roleWakeUps = WakeUpList()
    /// The plan of the running config (routes and pins in the kernel); changed only by `reload`.
    private var plan: KernelPlan
    private var tunnelMTU = 0
    /// The uplink's MTU when the tunnel came up (each peer's inner MTU follows from it and its outer header).
    private var uplinkMTU: Int?
    private let reloadLock = Mutex(())
    /// Called around a reload (sd_notify RELOADING=1 / READY=1).
    public var onReload: (@Sendable (_ starting: Bool) -> Void)?
    /// Called (from a loop's thread) when a dataplane loop gave up: the daemon must end, non-zero.
    public var onFatal: (@Sendable (_ reason: String) -> Void)?
    /// Each loop's health, in the order they started, for the status.
    private let loopHealth = Mutex<[LoopHealth]>([])

    private var configurator: KernelConfigurator?
    /// What the plan's steps opened, once `start` has taken them.
    private var handles: GatewayHandles?
    /// Where the control socket and state file are; handed to the daemon's user at the privilege drop.
    public private(set) var runtimeDirectory: RuntimeDirectory?
    private var threads: [DedicatedThread] = []
    private var neighbourProxyInterfaces: Set<String> = []

    public init(config: GatewayConfig, configText: String, plan: KernelPlan, options: Options, logger: Logger) {
        self.plan = plan
        self.options = options
        self.logger = logger
        let absent = config.uplink.standbyWhenAbsent && !SystemProbe.isAssigned(config.uplink.address, to: config.uplink.interface)
        role = RoleState(absent ? .standby : .active, now: monotonicSeconds())
        box = SnapshotBox(DataplaneSnapshot(
            generation: 0, config: config,
            counters: TunnelCounters(peerNames: config.peers.map(\.name), ghostHosts: config.ghostCounterKeys),
            paths: config.peers.map { _ in PeerPathState() }, configSHA256: SHA256.hex(Array(configText.utf8))))
    }

    public var config: GatewayConfig { box.current.config }

    public static func controlSocketPath(runtimeDirectory: String, tunnel: String) -> String {
        "\(runtimeDirectory)/\(tunnel).sock"
    }

    private var controlSocketPath: String {
        Self.controlSocketPath(runtimeDirectory: options.runtimeDirectory, tunnel: config.tunnel.name)
    }

    /// Takes the plan's steps and starts the loops; `beforeThreads` runs once every handle is open and
    /// before any thread starts (dropping privileges there covers every thread). On failure nothing
    /// stays applied.
    public func start(beforeThreads: () throws -> Void = {}) throws {
        let config = self.config
        let directory = try RuntimeDirectory(path: options.runtimeDirectory)
        runtimeDirectory = directory
        let configurator = try KernelConfigurator(runtimeDirectory: directory, tunnelName: config.tunnel.name, logger: logger)
        self.configurator = configurator
        do {
            let handles = try configurator.apply(plan)
            self.handles = handles
            let tun = handles.tun
            // What fits the uplink, even when the config set a larger tunnel MTU: larger inner packets get
            // "fragmentation needed" or are fragmented by ipipd, as raw sends are never fragmented. Each peer's
            // own outer header may leave it less (`Encapsulator.innerMTU`).
            let uplinkMTU = SystemProbe.interfaceMTU(config.uplink.interface) ?? KernelPlan.fallbackUplinkMTU
            tunnelMTU = plan.tunnelMTU
            self.uplinkMTU = uplinkMTU
            try beforeThreads()
            let tunReader = try TUNReader(tun: tun, context: loopContext,
                                          flusher: BatchFlusher(rawSocket: handles.encapsulationSender.fileDescriptor,
                                                                rawSocket6: handles.outerIPv6Sender?.fileDescriptor ?? -1,
                                                                icmpv6: handles.icmpv6Sender, counters: box.current.counters,
                                                                failures: ThrottledLog(logger: logger, message: "cannot send to peer")),
                                          tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU)
            let encapsulation = EncapsulationLoop(context: loopContext, health: health("ipipd-tun"), reader: tunReader)
            // Read before the capture thread starts: until the local routes are known, it hands every packet to
            // the TUN device (nothing may reach an AnyIP address through lo).
            let routeFacts = RouteFacts()
            do {
                routeFacts.publish(try RouteWatcherLoop.readFacts(tunnel: tun.name))
            } catch {
                logger.warning("cannot read the routes; decapsulated packets take the TUN device until the route watcher can",
                               metadata: ["error": "\(error)"])
            }
            let decapsulation = DecapsulationLoop(context: loopContext, health: health("ipipd-capture"), capture: handles.capture,
                                                  sender: handles.reinjectionSender, icmpv6: handles.icmpv6Sender, tun: tun,
                                                  tunReader: tunReader, routeFacts: routeFacts, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU)
            let routes = RouteWatcherLoop(context: loopContext, health: health("ipipd-routes"), tunnel: tun.name, routeFacts: routeFacts)
            threads.append(try DedicatedThread(name: encapsulation.health.name) { encapsulation.run() })
            threads.append(try DedicatedThread(name: decapsulation.health.name) { decapsulation.run() })
            threads.append(try DedicatedThread(name: routes.health.name) { routes.run() })
            if config.uplink.standbyWhenAbsent {
                let roles = RoleWatcherLoop(context: loopContext, health: health("ipipd-role"), uplink: config.uplink, wakeUps: roleWakeUps)
                threads.append(try DedicatedThread(name: roles.health.name) { roles.run() })
            }
            try startNeighbourProxyThreads()
            if let control = handles.controlSocket {
                threads.append(try DedicatedThread(name: "ipipd-control") { [self] in
                    control.serve(until: stop) { command in self.handle(command) }
                })
            }
        } catch {
            shutdownLoops()
            handles = nil   // the teardown closes what no one else holds
            configurator.teardown()
            throw error
        }
        waitForLoopsToStart()
        logger.info("tunnel up", metadata: ["device": "\(config.tunnel.name)", "mtu": "\(plan.tunnelMTU)",
                                           "local": "\(config.uplink.address)", "role": "\(role.current)",
                                           "peers": "\(config.peers.map { "\($0.name)=\($0.remote)" }.joined(separator: ","))"])
    }

    /// Where `serveMetrics` listens, once started (the executable serves it).
    public var metricsServer: StreamServer? { handles?.metricsServer }

    /// A neighbour-proxy thread for each ARP and NDP capture the steps opened that has none yet.
    private func startNeighbourProxyThreads() throws {
        guard let configurator else { return }
        for (interface, opened) in configurator.neighbourCaptures.sorted(by: { $0.key < $1.key }) where !neighbourProxyInterfaces.contains(interface) {
            let wakeUp = try WakeUp()
            roleWakeUps.add(wakeUp)
            let loop = NeighbourProxyLoop(context: loopContext, health: health(NeighbourProxyLoop.threadName(interface)),
                                          capture: opened.capture, mac: opened.mac, wakeUp: wakeUp)
            threads.append(try DedicatedThread(name: loop.health.name) { loop.run() })
            neighbourProxyInterfaces.insert(interface)
        }
    }

    private var loopContext: LoopContext {
        LoopContext(box: box, role: role, stop: stop, logger: logger, giveUpAfter: options.loopFailureTimeout) { [weak self] reason in
            self?.logger.critical("a dataplane loop gave up; ipipd ends so that it can be restarted", metadata: ["reason": "\(reason)"])
            self?.onFatal?(reason)
        }
    }

    /// "tunnel up" (and systemd's READY) once every loop has begun its work, so that the first
    /// `status --check` finds them running; a loop still starting after a second is the health check's to
    /// report.
    private func waitForLoopsToStart() {
        let deadline = monotonicSeconds() + 1
        while loopHealth.withLock({ $0.contains { $0.current == .starting } }) && monotonicSeconds() < deadline {
            usleep(1000)
        }
    }

    /// A new loop's health, listed in the status.
    private func health(_ name: String) -> LoopHealth {
        let health = LoopHealth(name: name)
        loopHealth.withLock { $0.append(health) }
        return health
    }

    // MARK: - Reload

    /// Reads the config file again and applies it as a diff: peers, prefixes, routes and ghost hosts
    /// added or removed, without recreating the TUN device or restarting a capture. An invalid file,
    /// or a change that needs a restart, leaves the running config as it is.
    public func reload() -> ReloadOutcome {
        reloadLock.withLock { _ in
            guard !stop.isStopped else { return ReloadOutcome(applied: false, messages: ["stopping"]) }
            onReload?(true)
            defer { onReload?(false) }
            let started = monotonicSeconds()
            let outcome = reloadLocked()
            if outcome.applied {
                logger.notice("reloaded", metadata: ["file": "\(options.configFile)", "changes": "\(outcome.messages.joined(separator: "; "))",
                                                     "seconds": "\(((monotonicSeconds() - started) * 1000).rounded() / 1000)"])
            } else {
                for message in outcome.messages { logger.error("reload refused; the running configuration stays", metadata: ["reason": "\(message)"]) }
            }
            return outcome
        }
    }

    private func reloadLocked() -> ReloadOutcome {
        let old = config
        let text: String
        do {
            text = try readConfigFile(options.configFile, limit: YAMLLimits.maximumBytes)
        } catch {
            return ReloadOutcome(applied: false, messages: ["\(options.configFile): error: cannot read the config file: \(error.reason)"])
        }
        let result = ConfigLoader.load(yaml: text, file: options.configFile)
        guard let new = result.config else {
            return ReloadOutcome(applied: false, messages: result.errors.map(\.description))
        }
        let diff = ConfigDiff(from: old, to: new)
        guard diff.needsRestart.isEmpty else {
            return ReloadOutcome(applied: false, messages: diff.needsRestart.map { "changing \($0) needs a restart" })
        }
        let hash = SHA256.hex(Array(text.utf8))
        guard !diff.isEmpty else {
            box.publish(box.current.next(new, configSHA256: hash))   // same config; the file's hash may differ
            return ReloadOutcome(applied: true, messages: ["no changes"])
        }

        var facts = SystemProbe.facts(for: new)
        // This daemon's own claims hold the `fou` ports (unchanged: another list needs a restart).
        facts.udpPortsInUse = [:]
        let newPlan = KernelPlan(config: new, facts: facts, controlSocket: controlSocketPath)
        guard newPlan.problems.isEmpty else { return ReloadOutcome(applied: false, messages: newPlan.problems.map(\.description)) }
        guard let configurator else { return ReloadOutcome(applied: false, messages: ["not running"]) }
        do {
            try configurator.reconcile(from: plan, to: newPlan)
        } catch {
            return ReloadOutcome(applied: false, messages: ["\(error)"])
        }
        box.publish(box.current.next(new, configSHA256: hash))
        plan = newPlan
        do {
            try startNeighbourProxyThreads()
        } catch {
            logger.error("cannot start a neighbour proxy", metadata: ["error": "\(error)"])
        }
        for warning in newPlan.warnings { logger.warning("\(warning)") }
        return ReloadOutcome(applied: true, messages: diff.descriptions)
    }

    // MARK: - Control socket

    private func handle(_ command: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        switch command {
        case "reload":
            return Array((try? encoder.encode(reload())) ?? Data("{}".utf8))
        default:
            return Array((try? encoder.encode(status)) ?? Data("{}".utf8))
        }
    }

    public var status: GatewayStatus {
        let snapshot = box.current
        return GatewayStatus(version: options.version, pid: getpid(), configFile: options.configFile, configSHA256: snapshot.configSHA256,
                             startedAt: startedAt.timeIntervalSince1970, uptimeSeconds: Date().timeIntervalSince(startedAt),
                             config: snapshot.config, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU, counters: snapshot.counters,
                             paths: snapshot.paths, loops: loopHealth.withLock { $0 },
                             role: .init(role: role.current, highAvailability: snapshot.config.uplink.standbyWhenAbsent,
                                         changes: role.changes, seconds: monotonicSeconds() - role.since),
                             tunnelPresent: SystemProbe.interfaceIndex(snapshot.config.tunnel.name) != nil,
                             now: monotonicSeconds())
    }

    /// The current counters (for the metrics endpoint).
    public var counters: TunnelCounters { box.current.counters }

    // MARK: - Shutdown

    /// Stops the loops and undoes every kernel change.
    public func shutdown() {
        shutdownLoops()
        handles = nil   // the teardown closes what no one else holds
        configurator?.teardown()
        configurator = nil
        logger.info("stopped; every change to the kernel was undone")
    }

    private func shutdownLoops() {
        reloadLock.withLock { _ in stop.stop() }   // waits for a reload in progress; none starts after
        for thread in threads { thread.join() }
        threads.removeAll()
    }
}
