/// The declarative description of one gateway box, as read from its config file.
/// Everything here has been checked by `ConfigLoader`; values the file left out hold their defaults,
/// except those that depend on the running system (the tunnel MTU), which `KernelPlan` resolves.
public struct GatewayConfig: Sendable, Equatable {
    public struct Uplink: Sendable, Equatable {
        /// The interface captured on for tunnel packets.
        public var interface: String
        /// The local address: outer source of what we send, outer destination of what we accept.
        public var address: IPv4Address
        /// HA pair: while `address` is not assigned to `interface` (keepalived holds it on the other box),
        /// run as the standby — everything set up, nothing answered or sent — and become active when it
        /// appears. Without it, `run` refuses an address that is not assigned.
        public var standbyWhenAbsent: Bool
        public init(interface: String, address: IPv4Address, standbyWhenAbsent: Bool = false) {
            self.interface = interface
            self.address = address
            self.standbyWhenAbsent = standbyWhenAbsent
        }
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
        /// Sent through libnet's raw socket as locally generated packets (OUTPUT, marked), with ipipd
        /// doing the router's work: martian checks, TTL, fragmentation, ICMP.
        case libnet
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
        /// SO_MARK on what the libnet delivery reinjects, for nftables (`meta mark 0x4950`); 0: none.
        public var reinjectionMark: UInt32 = Tunnel.defaultReinjectionMark
        public static let defaultReinjectionMark: UInt32 = 0x4950   // "IP"
        public init() {}
    }

    public struct Peer: Sendable, Equatable {
        public var name: String
        /// The peer's tunnel endpoint: outer destination of what we send to it.
        public var remote: IPv4Address
        /// Inner prefixes routed into the tunnel towards this peer.
        public var routes: [IPv4Prefix]
        /// The inner source addresses accepted from this peer, as set in the file (nil: the default).
        public var acceptSources: [IPv4Prefix]?
        /// Inner IPv6 prefixes routed into the tunnel towards this peer (carried as protocol 41).
        public var routes6: [IPv6Prefix]
        /// The IPv6 half of `accept-sources` (nil when the file has no `accept-sources`).
        public var acceptSources6: [IPv6Prefix]?
        public init(name: String, remote: IPv4Address, routes: [IPv4Prefix], acceptSources: [IPv4Prefix]? = nil,
                    routes6: [IPv6Prefix] = [], acceptSources6: [IPv6Prefix]? = nil) {
            self.name = name
            self.remote = remote
            self.routes = routes
            self.acceptSources = acceptSources
            self.routes6 = routes6
            self.acceptSources6 = acceptSources6 ?? acceptSources.map { _ in [] }
        }

        /// The inner sources a packet from this peer may have (WireGuard's AllowedIPs, for the receiving
        /// side): `accept-sources`, or by default the peer's routes — what lies behind it — and its
        /// endpoint, from which its gateway sends its own ICMP errors.
        public var allowedSources: [IPv4Prefix] {
            acceptSources ?? routes + [IPv4Prefix(remote, length: 32)]
        }

        /// The inner IPv6 sources a packet from this peer may have: the IPv6 prefixes of
        /// `accept-sources`, or by default the peer's IPv6 routes.
        public var allowedSources6: [IPv6Prefix] {
            acceptSources6 ?? routes6
        }
    }

    public struct GhostHost: Sendable, Hashable {
        public var address: IPv4Address
        /// The LAN interface on which ipipd answers ARP for `address`.
        public var interface: String
        /// The MAC given in replies; nil: the interface's own.
        public var mac: MACAddress?
        public init(address: IPv4Address, interface: String, mac: MACAddress?) {
            self.address = address
            self.interface = interface
            self.mac = mac
        }
    }

    /// An IPv6 ghost host: ipipd answers Neighbor Solicitations for it on a LAN interface (proxy NDP).
    public struct GhostHost6: Sendable, Hashable {
        public var address: IPv6Address
        public var interface: String
        /// The MAC given in advertisements; nil: the interface's own.
        public var mac: MACAddress?
        public init(address: IPv6Address, interface: String, mac: MACAddress?) {
            self.address = address
            self.interface = interface
            self.mac = mac
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
    public var ghostHosts: [GhostHost]
    public var ghostHosts6: [GhostHost6] = []
    public var proxyARP = ProxyARP()
    /// Where a TCP listener binds: an IPv4 or an IPv6 address and a port.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public enum Host: Sendable, Equatable {
            case v4(IPv4Address)
            case v6(IPv6Address)
        }
        public var host: Host
        public var port: UInt16
        public init(host: Host, port: UInt16) {
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

    public init(uplink: Uplink, tunnel: Tunnel = Tunnel(), peers: [Peer], ghostHosts: [GhostHost] = [], proxyARP: ProxyARP = ProxyARP(),
                metricsListen: ListenAddress? = nil) {
        self.uplink = uplink
        self.tunnel = tunnel
        self.peers = peers
        self.ghostHosts = ghostHosts
        self.proxyARP = proxyARP
        self.metricsListen = metricsListen
    }

    public static func == (lhs: GatewayConfig, rhs: GatewayConfig) -> Bool {
        lhs.uplink == rhs.uplink && lhs.tunnel == rhs.tunnel && lhs.peers == rhs.peers && lhs.ghostHosts == rhs.ghostHosts
            && lhs.ghostHosts6 == rhs.ghostHosts6 && lhs.proxyARP == rhs.proxyARP && lhs.metricsListen == rhs.metricsListen
    }

    /// The tunnel-routing table this config describes, both families.
    public var routingTable: PrefixTable<Int> {
        PrefixTable(ipv4: LongestPrefixMatch(peers.enumerated().flatMap { index, peer in peer.routes.map { ($0, index) } },
                                             uniquingPrefixesWith: { _, later in later }),
                    ipv6: LongestPrefixMatch(peers.enumerated().flatMap { index, peer in peer.routes6.map { ($0, index) } },
                                             uniquingPrefixesWith: { _, later in later }))
    }

    /// Whether the tunnel carries IPv6: some peer has IPv6 routes, or the tunnel an IPv6 address.
    public var carriesIPv6: Bool {
        tunnel.address6 != nil || peers.contains { !$0.routes6.isEmpty } || !ghostHosts6.isEmpty
    }

    /// Every ghost host of both families as (address text, interface): what ghost counters are kept for.
    public var ghostCounterKeys: [(address: String, interface: String)] {
        ghostHosts.map { ("\($0.address)", $0.interface) } + ghostHosts6.map { ("\($0.address)", $0.interface) }
    }

    /// The LAN interfaces with ghost hosts of either family, sorted.
    public var ghostInterfaces: [String] {
        Set(ghostHosts.map(\.interface) + ghostHosts6.map(\.interface)).sorted()
    }

    /// The interfaces whose ARP (and NDP) the proxy captures: those with ghost hosts, and an HA pair's
    /// uplink, where another box's claim of the endpoint reveals a split brain. Sorted.
    public var proxyCaptureInterfaces: [String] {
        Set(ghostInterfaces + (uplink.standbyWhenAbsent ? [uplink.interface] : [])).sorted()
    }

    /// The endpoint whose claims by another machine the proxy on `interface` watches: an HA pair's
    /// uplink address, on the uplink.
    public func splitBrainWatchedEndpoint(on interface: String) -> IPv4Address? {
        uplink.standbyWhenAbsent && interface == uplink.interface ? uplink.address : nil
    }

    /// Peer endpoints that fall inside a tunneled prefix: the seed's "looping tunnel". Each needs a host
    /// route through the uplink so that the outer packets do not re-enter the tunnel.
    public var endpointsNeedingPins: [Peer] {
        let table = routingTable
        return peers.filter { table.lookup($0.remote) != nil }
    }
}
