#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The route watcher's thread (RFC 2003 §4, the seed's "looping tunnel"): it keeps, for every peer,
/// whether the kernel would send outer packets to its endpoint into the tunnel itself, and sets the
/// peer's loop guard so the encapsulator drops its traffic instead of looping; and it publishes the MTU
/// of the interface each destination leaves by and the prefixes the kernel routes as local (AnyIP
/// ranges among them, which no interface shows), for the routed delivery. It listens for the kernel's
/// route-change notifications and then reads the main table once (one dump, not a query per peer), a
/// few times a second at most, and every 30 s in any case (the local table's changes are notified too); no dataplane thread does any of it. The
/// routes through the tunnel — ipipd's own, a hub's 100,000 — are skipped as the dump is read: what
/// they decide is known from the config (`tunnelRoutes`), so the work grows with the other routes only.
struct RouteWatcherLoop {
    let context: LoopContext
    let health: LoopHealth
    let tunnel: String
    let routeFacts: RouteFacts

    /// The main table's unicast routes as a longest-prefix-match table of output interfaces (routes to
    /// one prefix: the lowest metric wins). Policy routing beyond the main table is not seen.
    static func outputInterfaces<Address: NetlinkAddress>(_ routes: [Netlink.RouteInfo<Address>])
        -> LongestPrefixMatch<Address, (interface: Int32?, priority: UInt32)> {
        LongestPrefixMatch(routes.lazy
            .filter { $0.table == Netlink.mainTable && $0.type == Netlink.routeTypeUnicast }
            .map { ($0.prefix, (interface: $0.outputInterface, priority: $0.priority)) },
            uniquingPrefixesWith: { earlier, later in later.priority < earlier.priority ? later : earlier })
    }

    /// Whether the kernel sends each endpoint into the tunnel: the longest match among the tunnel's
    /// prefixes (`tunnelRoutes`, ipipd's routes through the TUN device) against the longest among the other
    /// routes (`routes`, `routes6` for IPv6 endpoints, the tunnel's left out); on a tie the tunnel's wins, as
    /// its routes have the lowest metric.
    static func looping(_ endpoints: [IPAddress], tunnelRoutes: PrefixTable<Int>, routes: [Netlink.RouteInfo<IPv4Address>],
                        routes6: [Netlink.RouteInfo<IPv6Address>] = []) -> [Bool] {
        let outside = PrefixTable(ipv4: outputInterfaces(routes), ipv6: outputInterfaces(routes6))
        return endpoints.map { endpoint in
            guard let inside = tunnelRoutes.lookupEntry(endpoint) else { return false }
            return (outside.lookupEntry(endpoint)?.prefix.length ?? -1) <= inside.prefix.length
        }
    }

    /// Each route's prefix with the MTU of its output interface.
    static func egressMTUs(_ routes: [Netlink.RouteInfo<IPv4Address>]) -> PrefixTable<Int> {
        var byInterface: [Int32: Int] = [:]
        let withMTUs = outputInterfaces(routes).entries.compactMap { prefix, route -> (IPv4Prefix, Int)? in
            guard let index = route.interface else { return nil }
            if byInterface[index] == nil {
                byInterface[index] = SystemProbe.interfaceName(index: index).flatMap(SystemProbe.interfaceMTU) ?? 0
            }
            guard let mtu = byInterface[index], mtu > 0 else { return nil }
            return (prefix, mtu)
        }
        return PrefixTable(withMTUs, uniquingPrefixesWith: { _, later in later })
    }

    /// The routes of type local, in any table (the local table's, and any an admin put elsewhere).
    static func localRoutes(_ routes: [Netlink.RouteInfo<IPv4Address>]) -> LocalRoutes {
        LocalRoutes(routes.lazy.filter { $0.type == Netlink.routeTypeLocal }.map(\.prefix))
    }

    static func facts(_ routes: [Netlink.RouteInfo<IPv4Address>]) -> RouteFacts.Snapshot {
        RouteFacts.Snapshot(egressMTUs: egressMTUs(routes), localRoutes: localRoutes(routes))
    }

    /// One read of the routes, for the start: the capture thread knows the local routes before its first packet.
    static func readFacts(tunnel: String) throws(SystemError) -> RouteFacts.Snapshot {
        facts(try NetlinkSocket().routes(IPv4Address.self, skippingInterface: SystemProbe.interfaceIndex(tunnel)))
    }

    func run() {
        let (box, stop, logger) = (context.box, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        let loopLog = ThrottledLog(logger: logger, message: "the route to a peer's endpoint leads into the tunnel; dropping its traffic instead of looping")
        let notifications: NetlinkSocket, netlink: NetlinkSocket
        do {
            notifications = try NetlinkSocket(subscribingTo: Netlink.ipv4RouteGroup | Netlink.ipv6RouteGroup)
            netlink = try NetlinkSocket()
        } catch {
            health.noteError("\(error)")
            logger.error("cannot watch routes; the loop guard relies on the per-packet check alone", metadata: ["error": "\(error)"])
            return
        }
        var snapshot = box.current
        var tunnelRoutes = snapshot.config.routingTable
        var changed = true
        var lastCheck = -Double.infinity
        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                tunnelRoutes = snapshot.config.routingTable
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
                let routes = try netlink.routes(IPv4Address.self, skippingInterface: tunnelIndex)
                routeFacts.publish(Self.facts(routes))
                // An IPv6 underlay's endpoints are IPv6: their routes too.
                let routes6 = snapshot.config.uplink.isIPv6 ? try netlink.routes(IPv6Address.self, skippingInterface: tunnelIndex) : []
                let loops = Self.looping(endpoints, tunnelRoutes: tunnelIndex == nil ? PrefixTable() : tunnelRoutes, routes: routes,
                                         routes6: routes6)
                for (peer, looping) in loops.enumerated() {
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
