#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The route watcher's thread (RFC 2003 §4, the seed's "looping tunnel"): it keeps, for every peer,
/// whether the kernel would send outer packets to its endpoint into the tunnel itself, and sets the
/// peer's loop guard so the encapsulator drops its traffic instead of looping; and it publishes the MTU
/// of the interface each destination leaves by, for the libnet delivery. It listens for the kernel's
/// route-change notifications and then reads the main table once (one dump, not a query per peer), a
/// few times a second at most, and every 30 s in any case; no dataplane thread does any of it.
struct RouteWatcherLoop {
    let context: LoopContext
    let health: LoopHealth
    let tunnel: String
    let egressMTUs: EgressMTUs

    /// The main table's unicast routes as a longest-prefix-match table of output interfaces (routes to
    /// one prefix: the lowest metric wins). Policy routing beyond the main table is not seen.
    static func outputInterfaces(_ routes: [Netlink.RouteInfo]) -> RoutingTable<(interface: Int32?, priority: UInt32)> {
        RoutingTable(routes.lazy
            .filter { $0.table == Netlink.mainTable && $0.type == Netlink.routeTypeUnicast }
            .map { ($0.prefix, (interface: $0.outputInterface, priority: $0.priority)) },
            uniquingPrefixesWith: { earlier, later in later.priority < earlier.priority ? later : earlier })
    }

    /// The interface each endpoint's route goes out of.
    static func outputInterfaces(for endpoints: [IPv4Address], routes: [Netlink.RouteInfo]) -> [Int32?] {
        let table = outputInterfaces(routes)
        return endpoints.map { table.lookup($0)?.interface ?? nil }
    }

    /// Each route's prefix with the MTU of its output interface.
    static func egressMTUs(_ routes: [Netlink.RouteInfo]) -> RoutingTable<Int> {
        var byInterface: [Int32: Int] = [:]
        let withMTUs = outputInterfaces(routes).entries.compactMap { prefix, route -> (IPv4Prefix, Int)? in
            guard let index = route.interface else { return nil }
            if byInterface[index] == nil {
                byInterface[index] = SystemProbe.interfaceName(index: index).flatMap(SystemProbe.interfaceMTU) ?? 0
            }
            guard let mtu = byInterface[index], mtu > 0 else { return nil }
            return (prefix, mtu)
        }
        return RoutingTable(withMTUs, uniquingPrefixesWith: { _, later in later })
    }

    func run() {
        let (box, stop, logger) = (context.box, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        let loopLog = ThrottledLog(logger: logger, message: "the route to a peer's endpoint leads into the tunnel; dropping its traffic instead of looping")
        let notifications: NetlinkSocket, netlink: NetlinkSocket
        do {
            notifications = try NetlinkSocket(subscribingTo: Netlink.ipv4RouteGroup)
            netlink = try NetlinkSocket()
        } catch {
            health.noteError("\(error)")
            logger.error("cannot watch routes; the loop guard relies on the per-packet check alone", metadata: ["error": "\(error)"])
            return
        }
        var snapshot = box.current
        var changed = true
        var lastCheck = -Double.infinity
        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                changed = true
            }
            if notifications.drainNotifications(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) { changed = true }
            let now = monotonicSeconds()
            guard (changed && now - lastCheck >= 0.2) || now - lastCheck >= 30 else { continue }
            changed = false
            lastCheck = now
            let endpoints = snapshot.config.peers.map(\.remote)
            let tunnelIndex = SystemProbe.interfaceIndex(tunnel)
            do {
                let routes = try netlink.routes()
                egressMTUs.publish(Self.egressMTUs(routes))
                let interfaces = Self.outputInterfaces(for: endpoints, routes: routes)
                for (peer, interface) in interfaces.enumerated() {
                    let looping = tunnelIndex != nil && interface == tunnelIndex
                    snapshot.paths[peer].setLooping(looping)
                    if looping { loopLog.note(["peer": "\(snapshot.config.peers[peer].name)", "endpoint": "\(endpoints[peer])"]) }
                }
                health.set(.running)
            } catch {
                health.noteError("\(error)")
            }
        }
    }
}
