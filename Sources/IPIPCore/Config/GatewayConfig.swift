/// The declarative description of one gateway box, as read from its config file.
/// Everything here has been checked by `ConfigLoader`; values the file left out hold their defaults,
/// except those that depend on the running system (the tunnel MTU), which `KernelPlan` resolves.
public struct GatewayConfig: Sendable, Equatable {
    public struct Uplink: Sendable, Equatable {
        /// The interface captured on for tunnel packets.
        public var interface: String
        /// The local address: outer source of what we send, outer destination of what we accept. Its
        /// family is the underlay's: every peer's endpoint is of the same family (as a Linux tunnel device
        /// has one `local`), and an IPv6 one carries both inner families as ip6tnl does (RFC 2473).
        public var address: IPAddress
        /// HA pair: while `address` is not assigned to `interface` (keepalived holds it on the other box),
        /// run as the standby — everything set up, nothing answered or sent — and become active when it
        /// appears. Without it, `run` refuses an address that is not assigned.
        public var standbyWhenAbsent: Bool
        public init(interface: String, address: IPAddress, standbyWhenAbsent: Bool = false) {
            self.interface = interface
            self.address = address
            self.standbyWhenAbsent = standbyWhenAbsent
        }
        public init(interface: String, address: IPv4Address, standbyWhenAbsent: Bool = false) {
            self.init(interface: interface, address: .v4(address), standbyWhenAbsent: standbyWhenAbsent)
        }
        /// Whether the underlay is IPv6 (ip6tnl's outer header) rather than IPv4.
        public var isIPv6: Bool { address.isIPv6 }
    }

    public enum TTLSetting: Sendable, Equatable, CustomStringConvertible {
        case inherit
        case fixed(UInt8)
        public var description: String {
            switch self {
            case .inherit: "inherit"
            case .fixed(let ttl): "\(ttl)"
            }
        }
    }

    public enum TOSSetting: Sendable, Equatable, CustomStringConvertible {
        case inherit
        case fixed(UInt8)
        public var description: String {
            switch self {
            case .inherit: "inherit"
            case .fixed(let tos): "0x" + (tos < 16 ? "0" : "") + String(tos, radix: 16)
            }
        }
    }

    /// How decapsulated packets reach the kernel.
    public enum Delivery: String, Sendable, Equatable {
        /// Written to the TUN device: the kernel receives them on it, as Linux's ipip receives them on
        /// its tunnel device — PREROUTING, INPUT or FORWARD with `iif tunl`, conntrack, rp_filter, the
        /// forwarding's TTL, fragmentation and ICMP.
        case kernel
        /// Routed by ipipd: sent through a raw socket as locally generated packets (OUTPUT, marked),
        /// with ipipd doing the router's work: martian checks, TTL, fragmentation, ICMP.
        case routed

        /// The spelling before `routed`, named for the library whose socket the packets once left by;
        /// still read, with a note from `check`.
        public static let formerRoutedSpelling = "libnet"
    }

    public struct Tunnel: Sendable, Equatable {
        public static let defaultName = "tunl"
        public var name = Tunnel.defaultName
        /// The tunnel's own address (a /32 on the TUN device), e.g. machine A's ghost address.
        public var address: IPv4Address?
        /// The tunnel's own IPv6 address (a /128 on the TUN device), e.g. machine A's ghost IPv6 address.
        public var address6: IPv6Address?
        /// nil: the uplink MTU minus 20, found at run time.
        public var mtu: Int?
        public var ttl = TTLSetting.inherit
        public var tos = TOSSetting.fixed(0)
        /// Path-MTU discovery: set DF on every outer packet (iproute2's `pmtudisc`, the default).
        public var pmtudisc = true
        /// The lowest outer path MTU a router's report may set (Linux's net.ipv4.route.min_pmtu).
        public var minimumPathMTU = PeerPathState.defaultMinimumPathMTU
        public var delivery = Delivery.kernel
        /// `clamp-mss`: the MSS option of TCP SYNs crossing the tunnel, lowered to what fits the path.
        public var clampMSS = TCPMSSClamp.Setting.off
        /// SO_MARK on what the routed delivery reinjects, for nftables (`meta mark 0x4950`); 0: none.
        public var reinjectionMark: UInt32 = Tunnel.defaultReinjectionMark
        /// An IPv6 underlay's Tunnel Encapsulation Limit option (RFC 2473 §4.1.1, ip6tnl's `encaplimit`):
        /// sent in a Destination Options header in front of the inner packet; nil: none (`encaplimit none`).
        public var encapsulationLimit: UInt8? = Tunnel.defaultEncapsulationLimit
        /// IPV6_DEFAULT_TNL_ENCAP_LIMIT: what ip6tnl sends unless told otherwise.
        public static let defaultEncapsulationLimit: UInt8 = 4
        public static let defaultReinjectionMark: UInt32 = 0x4950   // "IP"
        public init() {}
    }

    public struct Peer: Sendable, Equatable {
        public var name: String
        /// The peer's tunnel endpoint: outer destination of what we send to it, outer source of what it
        /// sends (through a NAT, the NAT's outside address). In the uplink address's family.
        public var remote: IPAddress
        /// What wraps the inner packet above the outer IP header (iproute2's `encap`): nil, the IP header
        /// alone (protocol or next header 4 and 41); FOU or GUE, a UDP header first.
        public var encapsulation: UDPEncapsulation?
        /// Inner prefixes of both families routed into the tunnel towards this peer (IPv6 carried as
        /// protocol 41), in the file's order.
        public var routes: [IPPrefix]
        /// The inner source addresses accepted from this peer, both families, as set in the file (nil: the default).
        public var acceptSources: [IPPrefix]?
        public init(name: String, remote: IPAddress, routes: [IPPrefix], acceptSources: [IPPrefix]? = nil,
                    encapsulation: UDPEncapsulation? = nil) {
            self.name = name
            self.remote = remote
            self.routes = routes
            self.acceptSources = acceptSources
            self.encapsulation = encapsulation
        }
        public init(name: String, remote: IPv4Address, routes: [IPPrefix], acceptSources: [IPPrefix]? = nil,
                    encapsulation: UDPEncapsulation? = nil) {
            self.init(name: name, remote: .v4(remote), routes: routes, acceptSources: acceptSources, encapsulation: encapsulation)
        }

        /// The inner sources a packet from this peer may have (WireGuard's AllowedIPs, for the receiving
        /// side): `accept-sources`, or by default the peer's routes — what lies behind it — and its
        /// endpoint, from which its gateway sends its own ICMP errors.
        public var allowedSources: [IPPrefix] {
            acceptSources ?? routes + [IPPrefix(host: remote)]
        }

        /// Whether the peer's routes or accepted sources hold a prefix of the IPv6 family: the inner
        /// families it carries.
        public var carriesIPv6: Bool { routes.contains(where: \.isIPv6) || acceptSources?.contains(where: \.isIPv6) == true }
        public var carriesIPv4: Bool { routes.contains { !$0.isIPv6 } || allowedSources.contains { !$0.isIPv6 } }
    }

    /// A remote machine's address that ipipd answers for on a LAN interface: ARP for IPv4 (proxy ARP),
    /// Neighbor Solicitations for IPv6 (proxy NDP).
    public struct GhostHost: Sendable, Hashable {
        public var address: IPAddress
        /// The LAN interface on which ipipd answers for `address`.
        public var interface: String
        /// The MAC given in replies and advertisements; nil: the interface's own.
        public var mac: MACAddress?
        public init(address: IPAddress, interface: String, mac: MACAddress?) {
            self.address = address
            self.interface = interface
            self.mac = mac
        }
        public init(address: IPv4Address, interface: String, mac: MACAddress?) {
            self.init(address: .v4(address), interface: interface, mac: mac)
        }
        public init(address: IPv6Address, interface: String, mac: MACAddress?) {
            self.init(address: .v6(address), interface: interface, mac: mac)
        }
    }

    /// How the proxy-ARP responder behaves on every LAN interface with ghost hosts.
    public struct ProxyARP: Sendable, Equatable {
        public enum OnConflict: String, Sendable, Equatable {
            /// Keep answering (RFC 5227 "defend"), log and count the conflict.
            case defend
            /// Stop answering for the address while another machine claims it.
            case yield
        }
        /// Answer RFC 5227 probes (sender 0.0.0.0) for ghost addresses.
        public var answerProbes = false
        public var onConflict = OnConflict.defend
        public init() {}
    }

    public var uplink: Uplink
    public var tunnel: Tunnel
    public var peers: [Peer]
    /// Both families, in the file's order.
    public var ghostHosts: [GhostHost]
    public var proxyARP = ProxyARP()
    /// Where a TCP listener binds: an IPv4 or an IPv6 address and a port.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: IPAddress
        public var port: UInt16
        public init(host: IPAddress, port: UInt16) {
            self.host = host
            self.port = port
        }
        public init(_ address: IPv4Address, port: UInt16) { self.init(host: .v4(address), port: port) }

        /// `127.0.0.1:9473` or `[::1]:9473`, as written in the config and in URLs.
        public var description: String {
            switch host {
            case .v4(let address): "\(address):\(port)"
            case .v6(let address): "[\(address)]:\(port)"
            }
        }

        /// Parses that form.
        public init?(_ text: Substring) {
            guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
            let host = text[..<colon]
            if host.hasPrefix("["), host.hasSuffix("]"), let address = IPv6Address(String(host.dropFirst().dropLast())) {
                self.init(host: .v6(address), port: port)
            } else if let address = IPv4Address(host) {
                self.init(address, port: port)
            } else {
                return nil
            }
        }
    }

    /// Where to serve Prometheus metrics (`metrics.listen: 127.0.0.1:9473`); nil: not served.
    public var metricsListen: ListenAddress?
    /// The UDP ports tunnel packets arrive on (`ip fou add port P ipproto 4`, `… gue`), in the file's order.
    public var fouPorts: [FOUPort] = []

    public init(uplink: Uplink, tunnel: Tunnel = Tunnel(), peers: [Peer], ghostHosts: [GhostHost] = [], proxyARP: ProxyARP = ProxyARP(),
                metricsListen: ListenAddress? = nil, fouPorts: [FOUPort] = []) {
        self.uplink = uplink
        self.tunnel = tunnel
        self.peers = peers
        self.ghostHosts = ghostHosts
        self.proxyARP = proxyARP
        self.metricsListen = metricsListen
        self.fouPorts = fouPorts
    }

    public static func == (lhs: GatewayConfig, rhs: GatewayConfig) -> Bool {
        lhs.uplink == rhs.uplink && lhs.tunnel == rhs.tunnel && lhs.peers == rhs.peers && lhs.ghostHosts == rhs.ghostHosts
            && lhs.proxyARP == rhs.proxyARP && lhs.metricsListen == rhs.metricsListen && lhs.fouPorts == rhs.fouPorts
    }

    /// How each peer's outer packets are built and recognised, by peer index.
    public var encapsulations: [Encapsulation] {
        peers.map { Encapsulation(peer: $0, tunnel: tunnel, local: uplink.address) }
    }

    /// The tunnel-routing table this config describes, both families.
    public var routingTable: PrefixTable<Int> {
        PrefixTable(peers.enumerated().flatMap { index, peer in peer.routes.map { ($0, index) } },
                    uniquingPrefixesWith: { _, later in later })
    }

    /// Whether the tunnel carries IPv6: some peer has IPv6 routes, or the tunnel an IPv6 address.
    public var carriesIPv6: Bool {
        tunnel.address6 != nil || peers.contains { $0.routes.contains(where: \.isIPv6) } || ghostHosts.contains { $0.address.isIPv6 }
    }

    /// Every ghost host of both families as (address text, interface): what ghost counters are kept for.
    public var ghostCounterKeys: [(address: String, interface: String)] {
        ghostHosts.map { ("\($0.address)", $0.interface) }
    }

    /// The LAN interfaces with ghost hosts of either family, sorted.
    public var ghostInterfaces: [String] {
        Set(ghostHosts.map(\.interface)).sorted()
    }

    /// The ghost hosts of one family on `interface`, in the file's order: what its responder answers for.
    public func ghosts<Address: FamilyAddress>(_ family: Address.Type, on interface: String) -> [(address: Address, mac: MACAddress?)] {
        ghostHosts.compactMap { ghost in
            guard ghost.interface == interface, let address = Address(ghost.address) else { return nil }
            return (address, ghost.mac)
        }
    }

    /// The addresses of the ghost hosts on `interface` that a reload from `previous` keeps as they were
    /// (same address, interface and MAC): their responders keep their state.
    public func ghostsKept(on interface: String, from previous: GatewayConfig) -> Set<IPAddress> {
        let before = Set(previous.ghostHosts.filter { $0.interface == interface })
        return Set(ghostHosts.filter { $0.interface == interface && before.contains($0) }.map(\.address))
    }

    /// The interfaces whose ARP (and NDP) the proxy captures: those with ghost hosts, and an HA pair's
    /// uplink, where another box's claim of the endpoint reveals a split brain. Sorted.
    public var proxyCaptureInterfaces: [String] {
        Set(ghostInterfaces + (uplink.standbyWhenAbsent ? [uplink.interface] : [])).sorted()
    }

    /// The endpoint whose claims by another machine the proxy on `interface` watches: an HA pair's
    /// uplink address, on the uplink.
    public func splitBrainWatchedEndpoint(on interface: String) -> IPv4Address? {
        uplink.standbyWhenAbsent && interface == uplink.interface ? IPv4Address(uplink.address) : nil
    }

    /// Peer endpoints that fall inside a tunneled prefix: the seed's "looping tunnel". Each needs a host
    /// route through the uplink so that the outer packets do not re-enter the tunnel.
    public var endpointsNeedingPins: [Peer] {
        let table = routingTable
        return peers.filter { table.lookup($0.remote) != nil }
    }
}
