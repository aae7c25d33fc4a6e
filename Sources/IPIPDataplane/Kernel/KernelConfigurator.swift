#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// What the steps of a plan opened that the gateway's threads use. Every plan has the steps behind the
/// non-optional handles (`KernelPlan.init` is the only maker of plans and puts them in each, as
/// `KernelPlanTests.everyPlanHasTheStepsTheGatewayNeeds` checks), so a gateway never starts without one.
public struct GatewayHandles {
    public let tun: TUNDevice
    public let capture: UplinkCapture
    /// Outer packets to the peers over an IPv4 underlay.
    public let encapsulationSender: RawIPv4Sender
    /// Outer packets to the peers over an IPv6 underlay.
    public let outerIPv6Sender: RawIPv6Sender?
    /// Decapsulated packets (routed delivery) and ICMP errors back into the kernel.
    public let reinjectionSender: RawIPv4Sender
    /// ICMPv6 errors to IPv6 senders, when the tunnel carries IPv6.
    public let icmpv6Sender: RawICMPv6Sender?
    /// Status and reload, when the plan listens for them.
    public let controlSocket: ControlSocket?
    public let metricsServer: StreamServer?
}

/// One LAN interface's neighbour-proxy capture, with the interface's MAC address.
public struct NeighbourCapture {
    public let capture: PacketCapture
    public let mac: MACAddress
}

/// Takes the steps of a `KernelPlan` in its order — the TUN device, MTU, addresses, sysctls and routes,
/// then the protocol claim, sockets, captures, ingress program, neighbour captures and listeners — all
/// or nothing, logging each as `step N/M: <what plan prints>`, and takes it all back on teardown. What
/// the steps open, the gateway's threads use (`GatewayHandles`).
///
/// Every change is recorded, before it is made, in a state file in the runtime directory, so that
/// after a SIGKILL the next start knows what its predecessor changed (`LeftoverAdoption`): it deletes
/// the routes it left and restores sysctls to the values from before the first run, instead of
/// failing on "File exists".
public final class KernelConfigurator: @unchecked Sendable {
    private enum Undo {
        case closeTUN
        case restoreSysctl(key: String, value: String)
        case deleteRoute(Netlink.RouteMessage, description: String)
    }

    private let netlink: NetlinkSocket
    private let logger: Logger
    private let state: StateFile
    private var undoLog: [Undo] = []
    /// What the steps taken so far opened; closed at teardown.
    private var tun: TUNDevice?
    private var protocolClaims: [ProtocolClaim] = []
    private var portClaims: [UDPPortClaim] = []
    private var ingressConsumer: IngressConsumer?
    private var encapsulationSender: RawIPv4Sender?
    private var reinjectionSender: RawIPv4Sender?
    private var outerIPv6Sender: RawIPv6Sender?
    private var icmpv6Sender: RawICMPv6Sender?
    private var capture: UplinkCapture?
    private var controlSocket: ControlSocket?
    private var metricsServer: StreamServer?
    /// The neighbour-proxy captures (ARP and NDP) opened so far, by interface; a reload may add some.
    public private(set) var neighbourCaptures: [String: NeighbourCapture] = [:]

    private let runtimeDirectory: RuntimeDirectory
    private let tunnelName: String

    public init(runtimeDirectory: RuntimeDirectory, tunnelName: String, logger: Logger) throws(SystemError) {
        netlink = try NetlinkSocket()
        self.logger = logger
        self.runtimeDirectory = runtimeDirectory
        self.tunnelName = tunnelName
        state = StateFile(directory: runtimeDirectory, name: "\(tunnelName).state")
        failPoint = FailPoint.fromEnvironment()
    }

    private let failPoint: FailPoint

    /// Takes every step of `plan`; on any failure undoes what was done and rethrows.
    public func apply(_ plan: KernelPlan) throws(SystemError) -> GatewayHandles {
        try LeftoverAdoption(state: state, netlink: netlink, tunnelName: tunnelName, logger: logger).adopt(plan)
        state.record.pid = getpid()
        let changes = plan.changes
        do {
            var index = 0
            while index < changes.count {
                try failPoint.check(step: index + 1, of: changes)
                // A run of tunnel routes goes to the kernel in batches: a hub's 100,000 in seconds.
                var end = index
                while end < changes.count, case .addTunnelRoute = changes[end] { end += 1 }
                end = failPoint.end(ofBatchFrom: index, to: end)
                if end > index {
                    try addTunnelRoutes(changes[index..<end], step: { "\($0 + index + 1)/\(changes.count)" })
                    index = end
                } else {
                    try apply(changes[index], step: "\(index + 1)/\(changes.count)")
                    index += 1
                }
            }
        } catch {
            logger.error("setup failed, undoing what was done", metadata: ["error": "\(error)"])
            teardown()
            throw error
        }
        guard let tun, let capture, let encapsulationSender, let reinjectionSender else {
            preconditionFailure("a KernelPlan without the steps every plan has (createTUN, openRawSockets, capture)")
        }
        return GatewayHandles(tun: tun, capture: capture, encapsulationSender: encapsulationSender, outerIPv6Sender: outerIPv6Sender,
                              reinjectionSender: reinjectionSender, icmpv6Sender: icmpv6Sender, controlSocket: controlSocket,
                              metricsServer: metricsServer)
    }

    /// Takes one step, then logs it as `step <step>: <description>` (the line `plan` prints for it).
    private func apply(_ change: KernelChange, step: String) throws(SystemError) {
        var outcome = ""
        switch change {
        case .createTUN(let name):
            let device = try TUNDevice(name: name)
            tun = device
            undoLog.append(.closeTUN)
            outcome = device.segmentationOffload ? "" : " (the kernel refused segmentation offload: packets come whole)"
        case let .setMTU(interface, mtu):
            let index = try interfaceIndex(interface)
            try netlink.change("set the MTU of \(interface) to \(mtu)") { Netlink.setLink(interface: index, mtu: mtu, up: nil, sequence: $0) }
        case let .addAddress(interface, address):
            let index = try interfaceIndex(interface)
            try netlink.change("add address \(address)/\(address.isIPv6 ? 128 : 32) to \(interface)") {
                Netlink.addAddress(address, interface: index, sequence: $0)
            }
        case .linkUp(let interface):
            let index = try interfaceIndex(interface)
            try netlink.change("bring \(interface) up") { Netlink.setLink(interface: index, mtu: nil, up: true, sequence: $0) }
        case let .setSysctl(key, value):
            outcome = try setSysctl(key, value)
        case let .pinEndpoint(peer, endpoint, interface, gateway):
            let route = Netlink.RouteMessage(prefix: IPPrefix(host: endpoint), outputInterface: try interfaceIndex(interface), gateway: gateway)
            do {
                state.record.pins.append(.init(endpoint: endpoint, gateway: gateway, interface: interface))
                try state.save()
                try netlink.change("pin a host route to \(endpoint)") { Netlink.addRoute(route, sequence: $0) }
                undoLog.append(.deleteRoute(route, description: "pinned route to \(endpoint)"))
            } catch where error.errno == EEXIST {
                state.record.pins.removeLast()
                try state.save()
                outcome = " (a route to \(endpoint) exists already: kept as it is, for peer \(peer))"
            }
        case .addTunnelRoute:
            try addTunnelRoutes([change][...], step: { _ in step })
            return
        case let .claimProtocol(number, ipv6):
            protocolClaims.append(try ProtocolClaim(protocolNumber: number, ipv6: ipv6))
        case let .claimUDPPort(port, address):
            portClaims.append(try UDPPortClaim(port: port.port, address: address))
        case .openICMPv6Socket:
            icmpv6Sender = try RawICMPv6Sender()
        case let .openRawSockets(mark, outerIPv6):
            encapsulationSender = try RawIPv4Sender()
            reinjectionSender = try RawIPv4Sender(mark: mark ?? 0)
            if outerIPv6 { outerIPv6Sender = try RawIPv6Sender() }
        case let .capture(interface, filter):
            capture = try UplinkCapture(interface: interface, filter: filter, waitMilliseconds: StopSignal.pollIntervalMilliseconds)
        case let .consumeAfterCapture(interface, local, ports):
            do {
                ingressConsumer = try IngressConsumer(interface: interface, local: local, ports: ports)
            } catch {
                // Best effort: without it the kernel also delivers the packets locally (the claim drops them).
                outcome = " (skipped: \(error))"
            }
        case let .captureNeighbours(interface, filter):
            guard let mac = SystemProbe.interfaceMAC(interface) else {
                throw SystemError("find the MAC address of \(interface)", errno: ENODEV)
            }
            var settings = PacketCapture.Settings(snapshotLength: 128)
            settings.bufferBytes = 1 << 20
            if let open = neighbourCaptures[interface] {
                try open.capture.setFilter(filter)
            } else {
                neighbourCaptures[interface] = NeighbourCapture(capture: try PacketCapture(interface: interface, filter: filter, settings: settings),
                                                                mac: mac)
            }
        case .answerARP, .answerNDP:
            break   // the responder of the interface's capture answers for it (and joins the multicast groups)
        case .listenControlSocket(let path):
            controlSocket = try ControlSocket(path: path, in: runtimeDirectory)
        case .serveMetrics(let listen):
            metricsServer = try StreamServer.listenTCP(listen, limits: StreamServer.Limits())
        }
        logger.info("step \(step): \(change)\(outcome)")
    }

    /// Applies the difference between two plans (a reload, `KernelPlanDiff`): pinned endpoints first (so
    /// that no new tunnel route swallows an endpoint before its pin is there), then tunnel routes added
    /// and removed, pins no longer needed, and the captures of LAN interfaces that get their first ghost
    /// host. All or nothing: on a failure what this call did is undone, newest first.
    public func reconcile(from old: KernelPlan, to new: KernelPlan) throws(SystemError) {
        let diff = KernelPlanDiff(from: old, to: new)
        var done: [() -> Void] = []
        var action = 0
        /// Before each change the kernel could refuse: where a test's fail point strikes.
        func next() throws(SystemError) {
            action += 1
            try failPoint.check(reloadAction: action)
        }
        do {
            for (running, replacement) in diff.pinsReplaced {
                guard let endpoint = KernelPlanDiff.endpoint(running) else { continue }
                try next()
                try removePin(endpoint)
                done.append { [self] in try? apply(running, step: "reload (undone)") }
                try next()
                try apply(replacement, step: "reload")
                done.append { [self] in try? removePin(endpoint) }
            }
            for pin in diff.pinsAdded {
                try next()
                try apply(pin, step: "reload")
                if let endpoint = KernelPlanDiff.endpoint(pin) { done.append { [self] in try? removePin(endpoint) } }
            }
            if !diff.routesAdded.isEmpty {
                try next()
                try addTunnelRoutes(diff.routesAdded[...], step: { _ in "reload" })
                done.append { [self] in try? deleteTunnelRoutes(KernelPlanDiff.prefixes(diff.routesAdded)) }
            }
            if !diff.routesRemoved.isEmpty {
                try next()
                try deleteTunnelRoutes(KernelPlanDiff.prefixes(diff.routesRemoved))
                done.append { [self] in try? addTunnelRoutes(diff.routesRemoved[...], step: { _ in "reload (undone)" }) }
            }
            for pin in diff.pinsRemoved {
                guard let endpoint = KernelPlanDiff.endpoint(pin) else { continue }
                try next()
                try removePin(endpoint)
                done.append { [self] in try? apply(pin, step: "reload (undone)") }
            }
            // The responders of interfaces already captured on update their own filters; an interface
            // whose ghosts all went keeps its capture (and thread) until the daemon ends.
            for change in diff.capturesOpened {
                guard case let .captureNeighbours(interface, _) = change, neighbourCaptures[interface] == nil else { continue }
                try next()
                try apply(change, step: "reload")
                done.append { [self] in neighbourCaptures[interface] = nil }
            }
        } catch {
            for undo in done.reversed() { undo() }
            throw error
        }
    }

    /// Adds tunnel routes of both families (`.addTunnelRoute` steps) in netlink batches, all or nothing: when the kernel
    /// refuses one, those it took are deleted again. Logs each step as `step <step(offset)>: …`, or —
    /// a long run, such as a hub's — one line for the run (each route at debug level).
    private func addTunnelRoutes(_ changes: ArraySlice<KernelChange>, step: (Int) -> String) throws(SystemError) {
        var routes: [Netlink.RouteMessage] = []
        var indexes: [String: Int32] = [:]
        for change in changes {
            guard case let .addTunnelRoute(prefix, interface, _) = change else { continue }
            let index: Int32
            if let known = indexes[interface] { index = known } else { index = try interfaceIndex(interface); indexes[interface] = index }
            routes.append(Netlink.RouteMessage(prefix: prefix, outputInterface: index))
        }
        let interface = indexes.keys.sorted().joined(separator: ",")
        let refused = try netlink.changeAll("add routes dev \(interface)", count: routes.count) { Netlink.addRoute(routes[$0], sequence: $1) }
        if let first = refused.first {
            let refusedIndexes = Set(refused.map(\.index))
            let taken = routes.indices.filter { !refusedIndexes.contains($0) }
            _ = try? netlink.changeAll("delete routes dev \(interface)", count: taken.count) { Netlink.deleteRoute(routes[taken[$0]], sequence: $1) }
            let prefix = routes[first.index].prefix
            let ip = prefix.isIPv6 ? "ip -6" : "ip"
            throw SystemError("add route \(prefix) dev \(interface)", errno: first.errno,
                              detail: first.errno == EEXIST
                                ? "a route to \(prefix) already exists (see `\(ip) route show \(prefix)`); remove it or take the prefix out of the config"
                                : "")
        }
        // Routes through the TUN disappear with the device: nothing to undo at teardown.
        let logged = Array(changes)
        if logged.count <= Self.routesLoggedOneByOne {
            for (offset, change) in logged.enumerated() { logger.info("step \(step(offset)): \(change)") }
        } else {
            for (offset, change) in logged.enumerated() { logger.debug("step \(step(offset)): \(change)") }
            let batches = (logged.count + NetlinkSocket.changesPerBatch - 1) / NetlinkSocket.changesPerBatch
            let summary = "steps \(step(0)) to \(step(logged.count - 1)): \(logged.count) routes `ip [-6] route add PREFIX dev \(interface)` "
                + "as `ipipd plan` lists them, in \(batches) netlink batches (each route at --log-level debug)"
            logger.info("\(summary)")
        }
    }

    /// A run of tunnel routes longer than this is logged as one line.
    static let routesLoggedOneByOne = 16

    /// Deletes tunnel routes in netlink batches, all or nothing (a route already gone is no error):
    /// when the kernel refuses one, those it deleted are added back.
    private func deleteTunnelRoutes(_ prefixes: [IPPrefix]) throws(SystemError) {
        guard let tun else { return }
        let index = try interfaceIndex(tun.name)
        let routes = prefixes.map { Netlink.RouteMessage(prefix: $0, outputInterface: index) }
        let refused = try netlink.changeAll("delete routes dev \(tun.name)", count: routes.count) { Netlink.deleteRoute(routes[$0], sequence: $1) }
        if let failure = refused.first(where: { $0.errno != ESRCH }) {
            let refusedIndexes = Set(refused.map(\.index))
            let deleted = routes.indices.filter { !refusedIndexes.contains($0) }
            _ = try? netlink.changeAll("add routes dev \(tun.name)", count: deleted.count) { Netlink.addRoute(routes[deleted[$0]], sequence: $1) }
            throw SystemError("delete route \(prefixes[failure.index]) dev \(tun.name)", errno: failure.errno)
        }
        let listed = prefixes.count <= Self.routesLoggedOneByOne ? prefixes.map(\.description).joined(separator: ",") : "\(prefixes.count)"
        logger.info("removed prefixes from the tunnel", metadata: ["prefixes": "\(listed)"])
    }

    /// Deletes a pinned endpoint route this instance added, and forgets it.
    private func removePin(_ endpoint: IPAddress) throws(SystemError) {
        guard let index = undoLog.firstIndex(where: {
            if case let .deleteRoute(route, _) = $0 { route.prefix == IPPrefix(host: endpoint) } else { false }
        }), case let .deleteRoute(route, description) = undoLog[index] else { return }
        try netlink.change("delete \(description)") { Netlink.deleteRoute(route, sequence: $0) }
        undoLog.remove(at: index)
        state.record.pins.removeAll { $0.endpoint == endpoint }
        try state.save()
        logger.info("removed pinned route", metadata: ["endpoint": "\(endpoint)"])
    }

    private func interfaceIndex(_ name: String) throws(SystemError) -> Int32 {
        guard let index = SystemProbe.interfaceIndex(name) else {
            throw SystemError("find interface \(name)", errno: ENODEV)
        }
        return index
    }

    /// Sets a sysctl; returns what it was, for the step's log line.
    private func setSysctl(_ key: String, _ value: String) throws(SystemError) -> String {
        let path = sysctlPath(key)
        let perDevice = tun.map { key.contains(".\($0.name).") } ?? false
        if perDevice && key.hasPrefix("net.ipv6.") && access(path, F_OK) != 0 {
            // The kernel keeps no IPv6 state on a device whose MTU is below 1280: nothing to disable.
            return " (nothing to do: no IPv6 on a device with an MTU below 1280)"
        }
        let current = try readSmallFile(path)
        if !perDevice {
            // The value before the first ipipd touched it: from the state file after a crash.
            let original = state.record.sysctls[key] ?? current
            state.record.sysctls[key] = original
            try state.save()
            undoLog.append(.restoreSysctl(key: key, value: original))
        }
        guard current != value else { return " (already \(value))" }
        try writeSysctl(path, value)
        return " (was \(current))"
    }

    /// Closes what the steps opened and undoes every recorded change, newest first. Safe to call more
    /// than once. The gateway's threads must have ended.
    public func teardown() {
        metricsServer = nil
        controlSocket?.remove()
        controlSocket = nil
        neighbourCaptures = [:]
        ingressConsumer = nil
        capture = nil
        encapsulationSender = nil
        reinjectionSender = nil
        outerIPv6Sender = nil
        protocolClaims = []
        portClaims = []
        icmpv6Sender = nil
        for undo in undoLog.reversed() {
            switch undo {
            case .closeTUN:
                if let tun {
                    tun.close()
                    logger.info("removed TUN device and its routes", metadata: ["device": "\(tun.name)"])
                }
                tun = nil
            case let .restoreSysctl(key, value):
                let path = sysctlPath(key)
                if (try? readSmallFile(path)) != value {
                    do {
                        try writeSysctl(path, value)
                        logger.info("restored sysctl", metadata: ["key": "\(key)", "value": "\(value)"])
                    } catch {
                        logger.warning("could not restore sysctl", metadata: ["key": "\(key)", "error": "\(error)"])
                    }
                }
            case let .deleteRoute(route, description):
                do {
                    try netlink.change("delete \(description)") { Netlink.deleteRoute(route, sequence: $0) }
                    logger.info("removed route", metadata: ["route": "\(description)"])
                } catch where error.errno == ESRCH {
                    // Already gone (e.g. the interface went away).
                } catch {
                    logger.warning("could not remove route", metadata: ["route": "\(description)", "error": "\(error)"])
                }
            }
        }
        undoLog.removeAll()
        state.remove()
    }
}

/// /proc/sys path of a sysctl key. The device part of `net.ipv4.conf.DEV.KEY` keeps its dots (a TUN
/// may be named `tun.0`), as sysctl(8) does when given slashes.
func sysctlPath(_ key: String) -> String {
    for prefix in ["net.ipv4.conf.", "net.ipv6.conf."] where key.hasPrefix(prefix) {
        let rest = key.dropFirst(prefix.count)
        if let lastDot = rest.lastIndex(of: ".") {
            return "/proc/sys/" + prefix.replacingOccurrences(of: ".", with: "/") + rest[..<lastDot] + "/" + rest[rest.index(after: lastDot)...]
        }
    }
    return "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
}
