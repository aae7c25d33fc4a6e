/// What changes between the running config and a new one, for a reload. Settings that are baked into
/// open handles (the uplink, the TUN device's name, address and MTU) need a restart; the rest is
/// applied as a diff while traffic flows.
public struct ConfigDiff: Sendable, Equatable {
    /// Why the new config cannot be applied by a reload; empty when it can.
    public var needsRestart: [String] = []
    public var peersAdded: [String] = []
    public var peersRemoved: [String] = []
    /// Peers whose endpoint or encapsulation changed (their learned path state is reset).
    public var endpointsChanged: [String] = []
    /// Routes of both families, IPv4 first, each sorted.
    public var routesAdded: [IPPrefix] = []
    public var routesRemoved: [IPPrefix] = []
    /// Prefixes that now lead to a different peer (the kernel route stays; ipipd's table changes).
    public var routesMoved: [IPPrefix] = []
    /// Ghost hosts of both families, in the file's order.
    public var ghostsAdded: [IPAddress] = []
    public var ghostsRemoved: [IPAddress] = []
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
        if old.fouPorts != new.fouPorts { needsRestart.append("fou (the UDP ports claimed and captured)") }
        tunnelOptionsChanged = EncapsulationRules(old.tunnel) != EncapsulationRules(new.tunnel)
            || old.tunnel.minimumPathMTU != new.tunnel.minimumPathMTU || old.tunnel.clampMSS != new.tunnel.clampMSS
            || old.tunnel.encapsulationLimit != new.tunnel.encapsulationLimit
        proxyARPOptionsChanged = old.proxyARP != new.proxyARP

        let oldPeers = Dictionary(old.peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newPeers = Dictionary(new.peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        peersAdded = new.peers.map(\.name).filter { oldPeers[$0] == nil }
        peersRemoved = old.peers.map(\.name).filter { newPeers[$0] == nil }
        // A new outer header (another endpoint, or another `encap`) makes what was learned of the path meaningless.
        endpointsChanged = new.peers.filter { peer in
            oldPeers[peer.name].map { $0.remote != peer.remote || $0.encapsulation != peer.encapsulation } ?? false
        }.map(\.name)
        acceptSourcesChanged = new.peers.filter { peer in oldPeers[peer.name].map { $0.allowedSources != peer.allowedSources } ?? false }
            .map(\.name)

        // Each prefix's peer, by position (names compared only where a prefix is in both): a hub has 100,000.
        func owners(_ config: GatewayConfig) -> [(prefix: IPPrefix, owner: Int)] {
            PrefixMerge.uniqueSorted(config.peers.enumerated().flatMap { index, peer in peer.routes.map { ($0, index) } })
        }
        var added: [IPPrefix] = [], removed: [IPPrefix] = [], moved: [IPPrefix] = []
        PrefixMerge.compare(owners(old), owners(new),
                            onlyOld: { prefix, _ in removed.append(prefix) },
                            onlyNew: { prefix, _ in added.append(prefix) },
                            both: { prefix, oldOwner, newOwner in
                                if old.peers[oldOwner].name != new.peers[newOwner].name { moved.append(prefix) }
                            })
        (routesAdded, routesRemoved, routesMoved) = (added, removed, moved)

        let oldGhosts = Dictionary(old.ghostHosts.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        let newGhosts = Dictionary(new.ghostHosts.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        // A ghost that moved interface or MAC is removed and added again (and announced again).
        ghostsAdded = new.ghostHosts.filter { oldGhosts[$0.address] != $0 }.map(\.address)
        ghostsRemoved = old.ghostHosts.filter { newGhosts[$0.address] != $0 }.map(\.address)
    }

    public var isEmpty: Bool {
        needsRestart.isEmpty && peersAdded.isEmpty && peersRemoved.isEmpty && endpointsChanged.isEmpty
            && routesAdded.isEmpty && routesRemoved.isEmpty && routesMoved.isEmpty && ghostsAdded.isEmpty
            && ghostsRemoved.isEmpty && !tunnelOptionsChanged && !proxyARPOptionsChanged && acceptSourcesChanged.isEmpty
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
            + lines(endpointsChanged, { "peer \($0): endpoint or encap changed" }, many: "peers with a new endpoint or encap")
            + lines(acceptSourcesChanged, { "peer \($0): accepted inner sources changed" }, many: "peers whose accepted inner sources changed")
            + lines(routesAdded.map(\.description), { "route \($0) added" }, many: "routes added")
            + lines(routesRemoved.map(\.description), { "route \($0) removed" }, many: "routes removed")
            + lines(routesMoved.map(\.description), { "route \($0) now leads to another peer" }, many: "routes that now lead to another peer")
            + lines(ghostsAdded.map(\.description), { "ghost host \($0) added" }, many: "ghost hosts added")
            + lines(ghostsRemoved.map(\.description), { "ghost host \($0) removed" }, many: "ghost hosts removed")
            + (tunnelOptionsChanged ? ["tunnel ttl/tos/pmtudisc/min-pmtu/clamp-mss changed"] : [])
            + (proxyARPOptionsChanged ? ["proxy-arp options changed"] : [])
    }

    /// Up to this many changes of one kind are described one per line.
    public static let itemsListedOneByOne = 16
}
