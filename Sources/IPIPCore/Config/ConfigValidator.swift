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
        checkUnderlay()
        checkTunnelOptions()
        checkPeers()
        checkEncapsulations()
        checkNestedRoutes()
        checkGhostHosts()
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
        if let mtu = config.tunnel.mtu, mtu < Self.minimumIPv6MTU, config.peers.contains(where: { $0.routes.contains(where: \.isIPv6) }) {
            report("tunnel.mtu", "\(mtu) is below 1280, the least MTU IPv6 allows on a link (RFC 8200 §5), and some peer has IPv6 routes; "
                   + "set at least 1280 (with an uplink of 1300 or more) or remove the IPv6 prefixes")
        }
        if let address = config.tunnel.address, .v4(address) == config.uplink.address, !unreadable.uplink {
            report("tunnel.address", "\(address) is already the uplink address; the tunnel needs its own address (or none)")
        }
    }

    /// What the capture's and the ingress program's filters list.
    static let maximumFOUPorts = 8

    /// RFC 8200 §5: every link that carries IPv6 has an MTU of 1280 or more.
    static let minimumIPv6MTU = Encapsulator.minimumIPv6MTU

    /// The file key of a peer's route.
    func routeKey(peer position: Int, route: Int) -> String {
        let positions = locations.routePositions
        let index = positions.indices.contains(position) && positions[position].indices.contains(route) ? positions[position][route] : route
        return "peers[\(locations.peerIndex[position])].routes[\(index)]"
    }

    mutating func checkPeers() {
        if config.peers.isEmpty && !unreadable.peers {
            report("peers", "at least one peer is needed: a tunnel with nobody at the other end carries nothing")
        }
        var peerByName: [String: Int] = [:]
        var peerByRemote: [IPAddress: Int] = [:]
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
            } else if peer.remote.isIPv6 != config.uplink.isIPv6 && !unreadable.uplink {
                let (family, other) = peer.remote.isIPv6 ? ("IPv6", "IPv4") : ("IPv4", "IPv6")
                report("\(key).remote", "\(peer.remote) is \(family), but uplink.address \(config.uplink.address) is \(other): a gateway's "
                       + "outer packets are of the uplink address's family, as a Linux tunnel device has one `local` "
                       + "(run a second ipipd on another uplink address for peers of the other family)")
            }
            if peer.routes.isEmpty {
                report("\(key).routes", "peer `\(peer.name)` has no routes: nothing will be sent to it (packets from it are still accepted)",
                       .warning)
            }
            if let sources = peer.acceptSources {
                if sources.isEmpty {
                    report("\(key).accept-sources", "no inner source is accepted from `\(peer.name)`: everything it sends is dropped", .warning)
                }
                for everything in Set(sources.filter { $0.length == 0 }).sorted() {
                    report("\(key).accept-sources", "\(everything) accepts any inner \(everything.isIPv6 ? "IPv6 " : "")source from `\(peer.name)`, "
                           + "as Linux's \(everything.isIPv6 ? "sit" : "ipip") does: "
                           + "anyone who forges its address can put packets from any address on this side", .warning)
                }
            }
        }
        // A prefix routed twice: found by sorting (a hub has 100,000), reported at each later mention.
        var duplicates: [(kept: (peer: Int, route: Int), repeated: (peer: Int, route: Int))] = []
        let mentions = config.peers.indices.flatMap { position in
            config.peers[position].routes.indices.map { (config.peers[position].routes[$0], (peer: position, route: $0)) }
        }
        _ = PrefixMerge.uniqueSorted(mentions) { kept, repeated in duplicates.append((kept, repeated)) }
        for (kept, repeated) in duplicates {
            let firstKey = routeKey(peer: kept.peer, route: kept.route)
            report(routeKey(peer: repeated.peer, route: repeated.route),
                   "duplicate prefix \(config.peers[repeated.peer].routes[repeated.route]): already routed to "
                   + "`\(config.peers[kept.peer].name)` by \(firstKey)\(lineSuffix(firstKey))")
        }
    }

    /// A prefix of one peer inside a prefix of another: legal (the longer prefix wins, as in any routing
    /// table) but easy to get wrong, and the outer peer's default accept-sources then let it send with the
    /// inner peer's source addresses. Found in one pass over the sorted prefixes (a hub has 100,000); at
    /// most `nestedReported` are reported one by one.
    mutating func checkNestedRoutes() {
        let mentions = config.peers.indices.flatMap { position in
            config.peers[position].routes.enumerated().map { (prefix: $1, peer: position, route: $0) }
        }.sorted { $0.prefix < $1.prefix }
        // Sorted, a prefix comes after every prefix that holds it: a stack of the enclosing ones suffices.
        var enclosing: [(prefix: IPPrefix, peer: Int, route: Int)] = []
        var nested: [(outer: (peer: Int, route: Int), inner: (peer: Int, route: Int))] = []
        for mention in mentions {
            while let top = enclosing.last, !top.prefix.contains(mention.prefix) { enclosing.removeLast() }
            if let outer = enclosing.last, outer.peer != mention.peer, outer.prefix != mention.prefix {
                nested.append(((outer.peer, outer.route), (mention.peer, mention.route)))
            }
            enclosing.append(mention)
        }
        for (outer, inner) in nested.prefix(Self.nestedReported) {
            let outerPeer = config.peers[outer.peer], innerPeer = config.peers[inner.peer]
            let outerPrefix = outerPeer.routes[outer.route], innerPrefix = innerPeer.routes[inner.route]
            let outerKey = routeKey(peer: outer.peer, route: outer.route)
            var message = "\(innerPrefix) lies inside \(outerPrefix), routed to `\(outerPeer.name)` by \(outerKey)\(lineSuffix(outerKey)): "
                + "packets to \(innerPrefix) go to `\(innerPeer.name)` (the longer prefix wins), the rest of \(outerPrefix) to `\(outerPeer.name)`"
            if outerPeer.acceptSources == nil {
                message += "; `\(outerPeer.name)`'s accept-sources (by default its routes) take in \(innerPrefix), so `\(outerPeer.name)` "
                    + "may send with `\(innerPeer.name)`'s source addresses — list its accept-sources without them if that is not meant"
            }
            report(routeKey(peer: inner.peer, route: inner.route), message, .warning)
        }
        if nested.count > Self.nestedReported {
            report("peers", "\(nested.count - Self.nestedReported) more prefixes lie inside another peer's prefix (the first \(Self.nestedReported) are listed)",
                   .warning)
        }
    }

    static let nestedReported = 16

    /// What every ghost host must be, whichever family: listed once, covered by a peer route of its
    /// family, and none of this gateway's own addresses.
    mutating func checkGhostHosts() {
        let table = config.routingTable
        let own = Set([config.uplink.address] + [config.tunnel.address].compactMap { $0 }.map(IPAddress.v4)
                      + [config.tunnel.address6].compactMap { $0 }.map(IPAddress.v6))
        var seen: [IPAddress: Int] = [:]
        for (position, ghost) in config.ghostHosts.enumerated() {
            let (address, index) = (ghost.address, locations.ghostIndex[position])
            let key = "ghost-hosts[\(index)].address"
            if let first = seen[address] {
                report(key, "duplicate ghost host \(address) (first listed as ghost-hosts[\(first)])")
            } else {
                seen[address] = index
            }
            // Without every peer and route read, the route that covers it may be the one left out.
            if table.lookup(address) == nil && !unreadable.peers && !unreadable.routes {
                report(key, "no peer route covers ghost host \(address): ipipd would answer "
                       + (address.isIPv6 ? "Neighbor Solicitations" : "ARP") + " for it but have nowhere to send its traffic; add "
                       + (address.isIPv6 ? "an IPv6 prefix" : "a prefix") + " containing it to a peer's routes")
            }
            if own.contains(address) {
                report(key, "\(address) is " + (address.isIPv6 ? "this gateway's own tunnel address" : "one of this gateway's own addresses")
                       + ", not a ghost")
            }
        }
    }

    mutating func checkEndpointsCanBePinned() {
        let ghosts = Set(config.ghostHosts.map(\.address))
        for (position, peer) in config.peers.enumerated() {
            let key = "peers[\(locations.peerIndex[position])].remote"
            let tunnelAddresses = [config.tunnel.address.map(IPAddress.v4), config.tunnel.address6.map(IPAddress.v6)]
            if tunnelAddresses.contains(peer.remote) {
                report(key, "\(peer.remote) is the tunnel's own address: outer packets to it would be delivered "
                       + "locally, never reach the peer; the endpoint must be the peer's uplink address")
            } else if ghosts.contains(peer.remote) {
                report(key, "\(peer.remote) is a ghost host of this gateway, which is reachable only through the tunnel: "
                       + "the endpoint must be an address reachable outside the tunnel")
            }
        }
    }

    /// What an IPv6 underlay cannot do yet.
    mutating func checkUnderlay() {
        guard config.uplink.isIPv6, !unreadable.uplink else {
            if locations.line(of: "tunnel.encaplimit") != nil {
                report("tunnel.encaplimit", "the encapsulation limit is an IPv6 option: with an IPv4 uplink.address it is not sent", .warning)
            }
            return
        }
        if config.uplink.standbyWhenAbsent {
            report("uplink.standby-when-absent", "an HA pair follows an IPv4 uplink address (keepalived's virtual address, "
                   + "watched with ARP on the uplink); with an IPv6 uplink.address it is not supported")
        }
    }

    /// FOU and GUE: every port listed once; a peer's packets must have a port to arrive on; FOU sends IPv6
    /// to a port of its own.
    mutating func checkEncapsulations() {
        if config.fouPorts.count > Self.maximumFOUPorts {
            report("fou", "\(config.fouPorts.count) ports listed; ipipd receives on at most \(Self.maximumFOUPorts) (one per inner family and "
                   + "kind is what a peer needs)")
        }
        var seen: [UInt16: Int] = [:]
        for (index, port) in config.fouPorts.enumerated() {
            if let first = seen[port.port] {
                report("fou[\(index)].port", "port \(port.port) is already fou[\(first)]\(lineSuffix("fou[\(first)].port")): "
                       + "a port carries one kind of packet")
            } else {
                seen[port.port] = index
            }
        }
        let receives4 = config.fouPorts.contains { $0.payload == .fou(innerProtocol: IPProtocolNumber.ipip) }
        let receives6 = config.fouPorts.contains { $0.payload == .fou(innerProtocol: IPProtocolNumber.ipv6) }
        let receivesGUE = config.fouPorts.contains { $0.payload == .gue }
        var usesFOU = false, usesGUE = false
        for (position, peer) in config.peers.enumerated() {
            guard let encapsulation = peer.encapsulation else { continue }
            let key = "peers[\(locations.peerIndex[position])].encap"
            switch encapsulation.kind {
            case .fou:
                usesFOU = true
                if peer.carriesIPv4 && !receives4 {
                    report("\(key).type", "`\(peer.name)` sends FOU, but no `fou` port here takes IPv4 (ipproto 4): its packets would be "
                           + "answered with \"port unreachable\"; add `fou: [{port: \(encapsulation.destinationPort), ipproto: 4}]`")
                }
                if peer.carriesIPv6 && !receives6 {
                    report("\(key).type", "`\(peer.name)` carries IPv6 over FOU, but no `fou` port here takes IPv6 (ipproto 41): "
                           + "add one, e.g. `{port: \(encapsulation.destinationPort6 ?? encapsulation.destinationPort &+ 1), ipproto: 41}`")
                }
                if peer.routes.contains(where: \.isIPv6) && encapsulation.destinationPort6 == nil {
                    report("\(key).dport", "`\(peer.name)` has IPv6 routes and FOU names no inner protocol: the peer takes IPv6 on a port "
                           + "of its own (`ip fou add port P ipproto 41`); set `dport6`")
                }
            case .gue:
                usesGUE = true
                if !receivesGUE {
                    report("\(key).type", "`\(peer.name)` sends GUE, but no `fou` port here takes it: add "
                           + "`fou: [{port: \(encapsulation.destinationPort), gue: yes}]`")
                }
            }
        }
        for (index, port) in config.fouPorts.enumerated() where port.kind == .fou ? !usesFOU : !usesGUE {
            report("fou[\(index)].port", "no peer sends \(port.kind == .fou ? "FOU" : "GUE") (peers[].encap): whatever arrives on port "
                   + "\(port.port) is dropped", .warning)
        }
    }

    func lineSuffix(_ key: String) -> String {
        locations.line(of: key).map { ", line \($0)" } ?? ""
    }
}
