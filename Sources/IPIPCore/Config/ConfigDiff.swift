/// What changes between the running config and a new one, for a reload. Settings that are baked into
/// open handles (the uplink, the TUN device's name, address and MTU) need a restart; the rest is
/// applied as a diff while traffic flows.
public struct ConfigDiff: Sendable, Equatable {
    /// Why the new config cannot be applied by a reload; empty when it can.
    public var needsRestart: [String] = []
    public var peersAdded: [String] = []
    public var peersRemoved: [String] = []
    /// Peers whose endpoint changed (their learned path state is reset).
    public var endpointsChanged: [String] = []
    public var routesAdded: [IPv4Prefix] = []
    public var routesRemoved: [IPv4Prefix] = []
    /// Prefixes that now lead to a different peer (the kernel route stays; ipipd's table changes).
    public var routesMoved: [IPv4Prefix] = []
    public var ghostsAdded: [IPv4Address] = []
    public var ghostsRemoved: [IPv4Address] = []
    public var routesAdded6: [IPv6Prefix] = []
    public var routesRemoved6: [IPv6Prefix] = []
    public var routesMoved6: [IPv6Prefix] = []
    public var ghostsAdded6: [IPv6Address] = []
    public var ghostsRemoved6: [IPv6Address] = []
    public var tunnelOptionsChanged = false
    /// Peers whose accepted inner sources changed.
    public var acceptSourcesChanged: [String] = []
    public var proxyARPOptionsChanged = false

    public init(from old: GatewayConfig, to new: GatewayConfig) {
        if old.uplink != new.uplink { needsRestart.append("uplink (the capture and the outer source address)") }
        if old.tunnel.name != new.tunnel.name { needsRestart.append("tunnel.name (the TUN device)") }
        if old.tunnel.address != new.tunnel.address { needsRestart.append("tunnel.address") }
        if old.tunnel.address6 != new.tunnel.address6 { needsRestart.append("tunnel.address6") }
        if old.carriesIPv6 != new.carriesIPv6 {
            needsRestart.append("whether the tunnel carries IPv6 (the capture filter, the protocol-41 claim, IPv6 on the TUN device)")
        }
        if old.tunnel.mtu != new.tunnel.mtu { needsRestart.append("tunnel.mtu") }
        if old.tunnel.delivery != new.tunnel.delivery { needsRestart.append("tunnel.delivery") }
        if old.tunnel.reinjectionMark != new.tunnel.reinjectionMark { needsRestart.append("tunnel.reinjection-mark") }
        if old.metricsListen != new.metricsListen {
            needsRestart.append("metrics.listen")
        }
        tunnelOptionsChanged = EncapsulationRules(old.tunnel) != EncapsulationRules(new.tunnel)
            || old.tunnel.minimumPathMTU != new.tunnel.minimumPathMTU
        proxyARPOptionsChanged = old.proxyARP != new.proxyARP

        let oldPeers = Dictionary(old.peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newPeers = Dictionary(new.peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        peersAdded = new.peers.map(\.name).filter { oldPeers[$0] == nil }
        peersRemoved = old.peers.map(\.name).filter { newPeers[$0] == nil }
        endpointsChanged = new.peers.filter { peer in oldPeers[peer.name].map { $0.remote != peer.remote } ?? false }.map(\.name)
        acceptSourcesChanged = new.peers.filter { peer in oldPeers[peer.name].map { $0.allowedSources != peer.allowedSources || $0.allowedSources6 != peer.allowedSources6 } ?? false }
            .map(\.name)

        // Each prefix's peer, by position (names compared only where a prefix is in both): a hub has 100,000.
        func owners(_ config: GatewayConfig) -> [(prefix: IPv4Prefix, owner: Int)] {
            PrefixMerge.uniqueSorted(config.peers.enumerated().flatMap { index, peer in peer.routes.map { ($0, index) } })
        }
        var added: [IPv4Prefix] = [], removed: [IPv4Prefix] = [], moved: [IPv4Prefix] = []
        PrefixMerge.compare(owners(old), owners(new),
                            onlyOld: { prefix, _ in removed.append(prefix) },
                            onlyNew: { prefix, _ in added.append(prefix) },
                            both: { prefix, oldOwner, newOwner in
                                if old.peers[oldOwner].name != new.peers[newOwner].name { moved.append(prefix) }
                            })
        (routesAdded, routesRemoved, routesMoved) = (added, removed, moved)

        func owners6(_ config: GatewayConfig) -> [IPv6Prefix: String] {
            Dictionary(config.peers.flatMap { peer in peer.routes6.map { ($0, peer.name) } }, uniquingKeysWith: { a, _ in a })
        }
        let oldOwners6 = owners6(old), newOwners6 = owners6(new)
        routesAdded6 = newOwners6.keys.filter { oldOwners6[$0] == nil }.sorted()
        routesRemoved6 = oldOwners6.keys.filter { newOwners6[$0] == nil }.sorted()
        routesMoved6 = newOwners6.filter { prefix, owner in oldOwners6[prefix].map { $0 != owner } ?? false }.keys.sorted()
        let oldGhosts6 = Set(old.ghostHosts6), newGhosts6 = Set(new.ghostHosts6)
        ghostsAdded6 = new.ghostHosts6.filter { !oldGhosts6.contains($0) }.map(\.address)
        ghostsRemoved6 = old.ghostHosts6.filter { !newGhosts6.contains($0) }.map(\.address)

        let oldGhosts = Dictionary(old.ghostHosts.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        let newGhosts = Dictionary(new.ghostHosts.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        // A ghost that moved interface or MAC is removed and added again (and announced again).
        ghostsAdded = new.ghostHosts.filter { oldGhosts[$0.address] != $0 }.map(\.address)
        ghostsRemoved = old.ghostHosts.filter { newGhosts[$0.address] != $0 }.map(\.address)
    }

    public var isEmpty: Bool {
        needsRestart.isEmpty && peersAdded.isEmpty && peersRemoved.isEmpty && endpointsChanged.isEmpty
            && routesAdded.isEmpty && routesRemoved.isEmpty && routesMoved.isEmpty && ghostsAdded.isEmpty
            && ghostsRemoved.isEmpty && routesAdded6.isEmpty && routesRemoved6.isEmpty && routesMoved6.isEmpty
            && ghostsAdded6.isEmpty && ghostsRemoved6.isEmpty && !tunnelOptionsChanged && !proxyARPOptionsChanged && acceptSourcesChanged.isEmpty
    }

    /// One line per change, for the log and `ipipd reload` — or, for more than `itemsListedOneByOne`
    /// of a kind (a hub's reload may move thousands of routes), one line for them all.
    public var descriptions: [String] {
        func lines(_ items: [String], _ one: (String) -> String, many: String) -> [String] {
            guard items.count > Self.itemsListedOneByOne else { return items.map(one) }
            return ["\(items.count) \(many): " + items.prefix(5).joined(separator: ", ") + ", … (\(items.count - 5) more)"]
        }
        return lines(peersAdded, { "peer \($0) added" }, many: "peers added")
            + lines(peersRemoved, { "peer \($0) removed" }, many: "peers removed")
            + lines(endpointsChanged, { "peer \($0): endpoint changed" }, many: "peers with a new endpoint")
            + lines(acceptSourcesChanged, { "peer \($0): accepted inner sources changed" }, many: "peers whose accepted inner sources changed")
            + lines(routesAdded.map(\.description), { "route \($0) added" }, many: "routes added")
            + lines(routesRemoved.map(\.description), { "route \($0) removed" }, many: "routes removed")
            + lines(routesMoved.map(\.description), { "route \($0) now leads to another peer" }, many: "routes that now lead to another peer")
            + lines(routesAdded6.map(\.description), { "route \($0) added" }, many: "IPv6 routes added")
            + lines(routesRemoved6.map(\.description), { "route \($0) removed" }, many: "IPv6 routes removed")
            + lines(routesMoved6.map(\.description), { "route \($0) now leads to another peer" }, many: "IPv6 routes that now lead to another peer")
            + lines(ghostsAdded.map(\.description) + ghostsAdded6.map(\.description), { "ghost host \($0) added" }, many: "ghost hosts added")
            + lines(ghostsRemoved.map(\.description) + ghostsRemoved6.map(\.description), { "ghost host \($0) removed" }, many: "ghost hosts removed")
            + (tunnelOptionsChanged ? ["tunnel ttl/tos/pmtudisc/min-pmtu changed"] : [])
            + (proxyARPOptionsChanged ? ["proxy-arp options changed"] : [])
    }

    /// Up to this many changes of one kind are described one per line.
    public static let itemsListedOneByOne = 16
}
