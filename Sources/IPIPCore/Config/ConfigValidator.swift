/// Semantic checks across the whole config, run after every value was read. Each finding names the key
/// and the line it came from.
struct ConfigValidator {
    /// The parts of the file that could not be read (each reported where it was): the checks that
    /// depend on them are skipped, so that one mistake gives one error, at its cause.
    struct Unreadable: Sendable {
        /// A peer entry (or the whole list) was left out.
        var peers = false
        /// A route prefix was left out.
        var routes = false
        var uplink = false
        var tunnel = false
    }

    let config: GatewayConfig
    let locations: SourceLocations
    let file: String
    let unreadable: Unreadable
    var diagnostics: [ConfigDiagnostic] = []

    init(config: GatewayConfig, locations: SourceLocations, file: String, unreadable: Unreadable = Unreadable()) {
        self.config = config
        self.locations = locations
        self.file = file
        self.unreadable = unreadable
    }

    mutating func report(_ key: String, _ message: String, _ severity: ConfigDiagnostic.Severity = .error) {
        diagnostics.append(ConfigDiagnostic(severity, file: file, line: locations.line(of: key),
                                            column: locations.column(of: key), key: key, message: message))
    }

    mutating func validate() {
        checkTunnelOptions()
        checkPeers()
        checkNestedRoutes()
        checkGhostHosts()
        checkGhostHosts6()
        checkEndpointsCanBePinned()
    }

    mutating func checkTunnelOptions() {
        if case .fixed = config.tunnel.ttl, !config.tunnel.pmtudisc {
            // iproute2: "ttl != 0 and nopmtudisc are incompatible"; the kernel forces DF with a fixed TTL.
            report("tunnel.pmtudisc", "a fixed ttl needs path-MTU discovery (iproute2 refuses `ttl N nopmtudisc`): "
                   + "with fragmentation allowed, a fixed TTL lets a looping tunnel live forever; use ttl: inherit or pmtudisc: yes")
        }
        if config.tunnel.name == "tunl0" {
            report("tunnel.name", "tunl0 is the name of the kernel ipip module's fallback device; choose another name",
                   .warning)
        }
        if config.tunnel.name == config.uplink.interface && !unreadable.uplink {
            report("tunnel.name", "the tunnel device cannot have the uplink's name `\(config.uplink.interface)`")
        }
        if let mtu = config.tunnel.mtu, mtu < Self.minimumIPv6MTU, config.peers.contains(where: { !$0.routes6.isEmpty }) {
            report("tunnel.mtu", "\(mtu) is below 1280, the least MTU IPv6 allows on a link (RFC 8200 §5), and some peer has IPv6 routes; "
                   + "set at least 1280 (with an uplink of 1300 or more) or remove the IPv6 prefixes")
        }
        if let address = config.tunnel.address, address == config.uplink.address, !unreadable.uplink {
            report("tunnel.address", "\(address) is already the uplink address; the tunnel needs its own address (or none)")
        }
    }

    /// RFC 8200 §5: every link that carries IPv6 has an MTU of 1280 or more.
    static let minimumIPv6MTU = 1280

    /// The file key of a peer's IPv4 (or IPv6) route: one `routes` list holds both families.
    func routeKey(peer position: Int, route: Int, ipv6: Bool = false) -> String {
        let positions = ipv6 ? locations.routePositions6 : locations.routePositions
        let index = positions.indices.contains(position) && positions[position].indices.contains(route) ? positions[position][route] : route
        return "peers[\(locations.peerIndex[position])].routes[\(index)]"
    }

    mutating func checkPeers() {
        if config.peers.isEmpty && !unreadable.peers {
            report("peers", "at least one peer is needed: a tunnel with nobody at the other end carries nothing")
        }
        var peerByName: [String: Int] = [:]
        var peerByRemote: [IPv4Address: Int] = [:]
        for (position, peer) in config.peers.enumerated() {
            let index = locations.peerIndex[position]
            let key = "peers[\(index)]"
            if let first = peerByName[peer.name] {
                report("\(key).name", "duplicate peer name `\(peer.name)` (first used by peers[\(first)]\(lineSuffix("peers[\(first)].name")))")
            } else {
                peerByName[peer.name] = index
            }
            if let first = peerByRemote[peer.remote] {
                report("\(key).remote", "peers `\(config.peers[locations.peerIndex.firstIndex(of: first)!].name)` and `\(peer.name)` have the same remote \(peer.remote); "
                       + "ipipd tells peers apart by their endpoint")
            } else {
                peerByRemote[peer.remote] = index
            }
            if peer.remote == config.uplink.address && !unreadable.uplink {
                report("\(key).remote", "\(peer.remote) is this gateway's own uplink address")
            }
            if peer.routes.isEmpty && peer.routes6.isEmpty {
                report("\(key).routes", "peer `\(peer.name)` has no routes: nothing will be sent to it (packets from it are still accepted)",
                       .warning)
            }
            if let sources = peer.acceptSources {
                if sources.isEmpty {
                    report("\(key).accept-sources", "no inner source is accepted from `\(peer.name)`: everything it sends is dropped", .warning)
                } else if sources.contains(where: { $0.length == 0 }) {
                    report("\(key).accept-sources", "0.0.0.0/0 accepts any inner source from `\(peer.name)`, as Linux's ipip does: "
                           + "anyone who forges its address can put packets from any address on this side", .warning)
                }
            }
            if peer.acceptSources6?.contains(where: { $0.length == 0 }) == true {
                report("\(key).accept-sources", "::/0 accepts any inner IPv6 source from `\(peer.name)`, as Linux's sit does: "
                       + "anyone who forges its address can put packets from any address on this side", .warning)
            }
        }
        // A prefix routed twice: found by sorting (a hub has 100,000), reported at each later mention.
        var duplicates: [(kept: (peer: Int, route: Int), repeated: (peer: Int, route: Int), prefix: IPv4Prefix)] = []
        let mentions = config.peers.indices.flatMap { position in
            config.peers[position].routes.enumerated().map { ($1, (peer: position, route: $0)) }
        }
        _ = PrefixMerge.uniqueSorted(mentions) { kept, repeated in
            duplicates.append((kept, repeated, config.peers[repeated.peer].routes[repeated.route]))
        }
        for (kept, repeated, prefix) in duplicates {
            reportDuplicateRoute(prefix, kept: kept, repeated: repeated, ipv6: false)
        }
        var seen6: [IPv6Prefix: (peer: Int, route: Int)] = [:]
        for (position, peer) in config.peers.enumerated() {
            for (route, prefix) in peer.routes6.enumerated() {
                if let kept = seen6[prefix] {
                    reportDuplicateRoute(prefix, kept: kept, repeated: (position, route), ipv6: true)
                } else {
                    seen6[prefix] = (position, route)
                }
            }
        }
    }

    /// A prefix of one peer inside a prefix of another: legal (the longer prefix wins, as in any routing
    /// table) but easy to get wrong, and the outer peer's default accept-sources then let it send with the
    /// inner peer's source addresses. Found in one pass over the sorted prefixes (a hub has 100,000); at
    /// most `nestedReported` are reported one by one.
    mutating func checkNestedRoutes() {
        func scan<Prefix: Comparable & CustomStringConvertible>(_ routes: (GatewayConfig.Peer) -> [Prefix], ipv6: Bool,
                                                                contains: (Prefix, Prefix) -> Bool) -> [(outer: (Int, Int), inner: (Int, Int))] {
            let mentions = config.peers.indices.flatMap { position in
                routes(config.peers[position]).enumerated().map { (prefix: $1, peer: position, route: $0) }
            }.sorted { $0.prefix < $1.prefix }
            var enclosing: [(prefix: Prefix, peer: Int, route: Int)] = []
            var found: [(outer: (Int, Int), inner: (Int, Int))] = []
            for mention in mentions {
                while let top = enclosing.last, !contains(top.prefix, mention.prefix) { enclosing.removeLast() }
                if let outer = enclosing.last, outer.peer != mention.peer, outer.prefix != mention.prefix {
                    found.append(((outer.peer, outer.route), (mention.peer, mention.route)))
                }
                enclosing.append(mention)
            }
            return found
        }
        typealias Nesting = (outer: (Int, Int), inner: (Int, Int), ipv6: Bool)
        let nested4: [Nesting] = scan({ $0.routes }, ipv6: false, contains: { (a: IPv4Prefix, b: IPv4Prefix) in a.contains(b) })
            .map { (outer: $0.outer, inner: $0.inner, ipv6: false) }
        let nested6: [Nesting] = scan({ $0.routes6 }, ipv6: true, contains: { (a: IPv6Prefix, b: IPv6Prefix) in a.contains(b) })
            .map { (outer: $0.outer, inner: $0.inner, ipv6: true) }
        let nested = nested4 + nested6
        for (outer, inner, ipv6) in nested.prefix(Self.nestedReported) {
            let outerPeer = config.peers[outer.0], innerPeer = config.peers[inner.0]
            let outerPrefix = ipv6 ? outerPeer.routes6[outer.1].description : outerPeer.routes[outer.1].description
            let innerPrefix = ipv6 ? innerPeer.routes6[inner.1].description : innerPeer.routes[inner.1].description
            let outerKey = routeKey(peer: outer.0, route: outer.1, ipv6: ipv6)
            var message = "\(innerPrefix) lies inside \(outerPrefix), routed to `\(outerPeer.name)` by \(outerKey)\(lineSuffix(outerKey)): "
                + "packets to \(innerPrefix) go to `\(innerPeer.name)` (the longer prefix wins), the rest of \(outerPrefix) to `\(outerPeer.name)`"
            if ipv6 ? outerPeer.acceptSources6 == nil : outerPeer.acceptSources == nil {
                message += "; `\(outerPeer.name)`'s accept-sources (by default its routes) take in \(innerPrefix), so `\(outerPeer.name)` "
                    + "may send with `\(innerPeer.name)`'s source addresses — list its accept-sources without them if that is not meant"
            }
            report(routeKey(peer: inner.0, route: inner.1, ipv6: ipv6), message, .warning)
        }
        if nested.count > Self.nestedReported {
            report("peers", "\(nested.count - Self.nestedReported) more prefixes lie inside another peer's prefix (the first \(Self.nestedReported) are listed)",
                   .warning)
        }
    }

    static let nestedReported = 16

    /// A prefix routed twice, reported at its later mention.
    mutating func reportDuplicateRoute(_ prefix: some CustomStringConvertible, kept: (peer: Int, route: Int),
                                       repeated: (peer: Int, route: Int), ipv6: Bool) {
        let firstKey = routeKey(peer: kept.peer, route: kept.route, ipv6: ipv6)
        report(routeKey(peer: repeated.peer, route: repeated.route, ipv6: ipv6),
               "duplicate prefix \(prefix): already routed to `\(config.peers[kept.peer].name)` by \(firstKey)\(lineSuffix(firstKey))")
    }

    mutating func checkGhostHosts() {
        let (table, uplink, tunnel) = (config.routingTable, config.uplink.address, config.tunnel.address)
        checkGhosts(config.ghostHosts.map(\.address), positions: locations.ghostIndex, covered: { table.lookup($0) != nil },
                    answeredBy: "ARP", prefix: "a prefix",
                    own: { $0 == uplink || $0 == tunnel }, ownDescription: "one of this gateway's own addresses")
    }

    mutating func checkGhostHosts6() {
        let (table, tunnel) = (config.routingTable, config.tunnel.address6)
        checkGhosts(config.ghostHosts6.map(\.address), positions: locations.ghostIndex6, covered: { table.lookup($0) != nil },
                    answeredBy: "Neighbor Solicitations", prefix: "an IPv6 prefix",
                    own: { $0 == tunnel }, ownDescription: "this gateway's own tunnel address")
    }

    /// What every ghost host must be, whichever family: listed once, covered by a peer route of its
    /// family, and none of this gateway's own addresses. `positions`: each one's place in the file's list.
    mutating func checkGhosts<Address: Hashable & CustomStringConvertible>(
        _ addresses: [Address], positions: [Int], covered: (Address) -> Bool, answeredBy: String, prefix: String,
        own: (Address) -> Bool, ownDescription: String
    ) {
        var seen: [Address: Int] = [:]
        for (position, address) in addresses.enumerated() {
            let index = positions[position]
            let key = "ghost-hosts[\(index)].address"
            if let first = seen[address] {
                report(key, "duplicate ghost host \(address) (first listed as ghost-hosts[\(first)])")
            } else {
                seen[address] = index
            }
            // Without every peer and route read, the route that covers it may be the one left out.
            if !covered(address) && !unreadable.peers && !unreadable.routes {
                report(key, "no peer route covers ghost host \(address): ipipd would answer \(answeredBy) for it "
                       + "but have nowhere to send its traffic; add \(prefix) containing it to a peer's routes")
            }
            if own(address) {
                report(key, "\(address) is \(ownDescription), not a ghost")
            }
        }
    }

    mutating func checkEndpointsCanBePinned() {
        let ghosts = Set(config.ghostHosts.map(\.address))
        for (position, peer) in config.peers.enumerated() {
            let key = "peers[\(locations.peerIndex[position])].remote"
            if let tunnelAddress = config.tunnel.address, peer.remote == tunnelAddress {
                report(key, "\(peer.remote) is the tunnel's own address: outer packets to it would be delivered "
                       + "locally, never reach the peer; the endpoint must be the peer's uplink address")
            } else if ghosts.contains(peer.remote) {
                report(key, "\(peer.remote) is a ghost host of this gateway, which is reachable only through the tunnel: "
                       + "the endpoint must be an address reachable outside the tunnel")
            }
        }
    }

    func lineSuffix(_ key: String) -> String {
        locations.line(of: key).map { ", line \($0)" } ?? ""
    }
}
