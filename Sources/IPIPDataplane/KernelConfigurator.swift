#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// Applies the kernel side of a `KernelPlan` (TUN device, MTU, addresses, sysctls, routes) all or
/// nothing, and takes it all back on teardown.
///
/// Every change is recorded, before it is made, in a state file in the runtime directory, so that
/// after a SIGKILL the next start knows what its predecessor changed: it deletes the routes it left
/// and restores sysctls to the values from before the first run, instead of failing on "File exists".
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
    public private(set) var tun: TUNDevice?

    public init(runtimeDirectory: String, tunnelName: String, logger: Logger) throws(SystemError) {
        netlink = try NetlinkSocket()
        self.logger = logger
        state = StateFile(path: "\(runtimeDirectory)/\(tunnelName).state")
    }

    /// Makes every kernel change of `plan`; on any failure undoes what was done and rethrows.
    public func apply(_ plan: KernelPlan, uplink: String) throws(SystemError) {
        try takeOverLeftovers(plan)
        state.record.pid = getpid()
        do {
            for change in plan.changes {
                try apply(change)
            }
        } catch {
            logger.error("setup failed, undoing what was done", metadata: ["error": "\(error)"])
            teardown()
            throw error
        }
    }

    private func apply(_ change: KernelChange) throws(SystemError) {
        switch change {
        case .createTUN(let name):
            let device = try TUNDevice(name: name)
            tun = device
            undoLog.append(.closeTUN)
            logger.info("created TUN device", metadata: ["device": "\(device.name)",
                                                         "segmentation-offload": "\(device.segmentationOffload ? "on" : "off (refused by the kernel)")"])
        case let .setMTU(interface, mtu):
            let index = try interfaceIndex(interface)
            try netlink.change("set the MTU of \(interface) to \(mtu)") { Netlink.setLink(interface: index, mtu: mtu, up: nil, sequence: $0) }
            logger.info("set MTU", metadata: ["device": "\(interface)", "mtu": "\(mtu)"])
        case let .addAddress(interface, address):
            let index = try interfaceIndex(interface)
            try netlink.change("add address \(address)/32 to \(interface)") { Netlink.addAddress(address, interface: index, sequence: $0) }
            logger.info("added address", metadata: ["device": "\(interface)", "address": "\(address)/32"])
        case .linkUp(let interface):
            let index = try interfaceIndex(interface)
            try netlink.change("bring \(interface) up") { Netlink.setLink(interface: index, mtu: nil, up: true, sequence: $0) }
        case let .setSysctl(key, value):
            try setSysctl(key, value)
        case let .pinEndpoint(peer, endpoint, interface, gateway):
            let route = Netlink.RouteMessage(prefix: IPv4Prefix(endpoint, length: 32), outputInterface: try interfaceIndex(interface), gateway: gateway)
            do {
                state.record.pins.append(.init(endpoint: endpoint, gateway: gateway, interface: interface))
                try state.save()
                try netlink.change("pin a host route to \(endpoint)") { Netlink.addRoute(route, sequence: $0) }
                undoLog.append(.deleteRoute(route, description: "pinned route to \(endpoint)"))
                logger.info("pinned peer endpoint outside the tunnel", metadata: [
                    "peer": "\(peer)", "route": "\(endpoint)/32\(gateway.map { " via \($0)" } ?? "") dev \(interface)"])
            } catch where error.errno == EEXIST {
                state.record.pins.removeLast()
                try state.save()
                logger.notice("an existing route already pins the peer endpoint; keeping it as it is", metadata: ["peer": "\(peer)", "endpoint": "\(endpoint)"])
            }
        case let .addTunnelRoute(prefix, interface, peer):
            let route = Netlink.RouteMessage(prefix: prefix, outputInterface: try interfaceIndex(interface))
            do {
                try netlink.change("add route \(prefix) dev \(interface)") { Netlink.addRoute(route, sequence: $0) }
            } catch where error.errno == EEXIST {
                throw SystemError("add route \(prefix) dev \(interface)", errno: EEXIST,
                                  detail: "a route to \(prefix) already exists (see `ip route show \(prefix)`); remove it or take the prefix out of the config")
            }
            // Routes through the TUN disappear with the device; nothing to undo separately.
            logger.info("routed prefix into the tunnel", metadata: ["peer": "\(peer)", "prefix": "\(prefix)"])
        case .claimProtocol4, .capture, .consumeAfterCapture, .answerARP:
            break   // handles, opened by the gateway itself
        }
    }

    /// Applies the difference between two plans' routes (a reload): new pinned endpoints and tunnel
    /// routes are added, old ones removed. All or nothing: on a failure what this call did is undone.
    public func reconcile(from old: KernelPlan, to new: KernelPlan) throws(SystemError) {
        func pins(_ plan: KernelPlan) -> [IPv4Address: KernelChange] {
            Dictionary(plan.changes.compactMap { change in
                if case let .pinEndpoint(_, endpoint, _, _) = change { (endpoint, change) } else { nil }
            }, uniquingKeysWith: { a, _ in a })
        }
        func routes(_ plan: KernelPlan) -> [IPv4Prefix: KernelChange] {
            Dictionary(plan.changes.compactMap { change in
                if case let .addTunnelRoute(prefix, _, _) = change { (prefix, change) } else { nil }
            }, uniquingKeysWith: { a, _ in a })
        }
        let oldPins = pins(old), newPins = pins(new), oldRoutes = routes(old), newRoutes = routes(new)
        var done: [() -> Void] = []
        do {
            for (endpoint, change) in newPins where oldPins[endpoint] != change {
                if oldPins[endpoint] != nil { try removePin(endpoint) }
                try apply(change)
                done.append { [self] in try? removePin(endpoint) }
            }
            for (prefix, change) in newRoutes where oldRoutes[prefix] == nil {
                try apply(change)
                done.append { [self] in try? deleteTunnelRoute(prefix) }
            }
            for (prefix, change) in oldRoutes where newRoutes[prefix] == nil {
                try deleteTunnelRoute(prefix)
                done.append { [self] in try? apply(change) }
            }
            for (endpoint, change) in oldPins where newPins[endpoint] == nil {
                try removePin(endpoint)
                done.append { [self] in try? apply(change) }
            }
        } catch {
            for undo in done.reversed() { undo() }
            throw error
        }
    }

    private func deleteTunnelRoute(_ prefix: IPv4Prefix) throws(SystemError) {
        guard let tun else { return }
        let route = Netlink.RouteMessage(prefix: prefix, outputInterface: try interfaceIndex(tun.name))
        try netlink.change("delete route \(prefix) dev \(tun.name)") { Netlink.deleteRoute(route, sequence: $0) }
        logger.info("removed prefix from the tunnel", metadata: ["prefix": "\(prefix)"])
    }

    /// Deletes a pinned endpoint route this instance added, and forgets it.
    private func removePin(_ endpoint: IPv4Address) throws(SystemError) {
        guard let index = undoLog.firstIndex(where: {
            if case let .deleteRoute(route, _) = $0 { route.prefix == IPv4Prefix(endpoint, length: 32) } else { false }
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

    private func setSysctl(_ key: String, _ value: String) throws(SystemError) {
        let path = sysctlPath(key)
        let perDevice = tun.map { key.contains(".\($0.name).") } ?? false
        if perDevice && key.hasPrefix("net.ipv6.") && access(path, F_OK) != 0 {
            // The kernel keeps no IPv6 state on a device whose MTU is below 1280: nothing to disable.
            return
        }
        let current = try readSmallFile(path)
        if !perDevice {
            // The value before the first ipipd touched it: from the state file after a crash.
            let original = state.record.sysctls[key] ?? current
            state.record.sysctls[key] = original
            try state.save()
            undoLog.append(.restoreSysctl(key: key, value: original))
        }
        if current != value {
            try writeSysctl(path, value)
            logger.info("set sysctl", metadata: ["key": "\(key)", "value": "\(value)", "was": "\(current)"])
        }
    }

    /// Removes what a predecessor that was killed left behind: its pinned routes (recorded in the
    /// state file, and any route ipipd marked with its protocol number to a configured endpoint).
    private func takeOverLeftovers(_ plan: KernelPlan) throws(SystemError) {
        try state.load()
        if let pid = state.record.pid, pid != getpid() {
            if kill(pid, 0) == 0, Self.isIpipd(pid) {
                throw SystemError("start", errno: EEXIST, detail: "ipipd (pid \(pid)) is already running for this tunnel")
            }
            logger.notice("found the state of an ipipd that ended without cleaning up; taking over", metadata: ["pid": "\(pid)"])
        }
        var pinned = Set(state.record.pins.map(\.endpoint))
        for change in plan.changes {
            if case let .pinEndpoint(_, endpoint, _, _) = change { pinned.insert(endpoint) }
        }
        let leftovers = try netlink.routes().filter {
            $0.protocolNumber == Netlink.ipipdRouteProtocol && $0.table == Netlink.mainTable
                && $0.prefix.length == 32 && pinned.contains($0.prefix.address)
        }
        for route in leftovers {
            let message = Netlink.RouteMessage(prefix: route.prefix, outputInterface: route.outputInterface, gateway: route.gateway)
            try? netlink.change("delete leftover route \(route.prefix)") { Netlink.deleteRoute(message, sequence: $0) }
            logger.notice("removed a leftover pinned route", metadata: ["route": "\(route.prefix)"])
        }
        state.record.pins = []
    }

    static func isIpipd(_ pid: Int32) -> Bool {
        guard let comm = try? readSmallFile("/proc/\(pid)/comm") else { return false }
        return comm.hasPrefix("ipipd")
    }

    /// Undoes every recorded change, newest first. Safe to call more than once.
    public func teardown() {
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

/// A small text file (a sysctl, /proc/PID/comm, the state file), without its final newline.
func readSmallFile(_ path: String) throws(SystemError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError.fromErrno("read \(path)") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fd, &buffer, buffer.count)
        guard count >= 0 else {
            if errno == EINTR { continue }
            throw SystemError.fromErrno("read \(path)")
        }
        if count == 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n")
}

func writeSysctl(_ path: String, _ value: String) throws(SystemError) {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError.fromErrno("write \(path)") }
    defer { close(fd) }
    let bytes = Array((value + "\n").utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw SystemError.fromErrno("write \(value) to \(path)") }
}
