/// What the running system looks like, as far as the plan needs it. Gathered by the dataplane (netlink,
/// ioctls, /proc) — or written by hand in tests — so that planning itself stays pure.
public struct SystemFacts: Sendable, Equatable {
    public struct Interface: Sendable, Equatable {
        public var mtu: Int
        public var mac: MACAddress?
        public var addresses: [IPv4Address]
        public init(mtu: Int, mac: MACAddress? = nil, addresses: [IPv4Address] = []) {
            self.mtu = mtu
            self.mac = mac
            self.addresses = addresses
        }
    }

    /// The kernel's current answer to "how do I reach this address" (`ip route get`).
    public struct Route: Sendable, Equatable {
        public var interface: String
        public var gateway: IPv4Address?
        public init(interface: String, gateway: IPv4Address? = nil) {
            self.interface = interface
            self.gateway = gateway
        }
    }

    public var interfaces: [String: Interface] = [:]
    /// Route to each peer endpoint that lies inside a tunneled prefix (those the plan may pin); missing:
    /// no route at all.
    public var routes: [IPv4Address: Route] = [:]
    public var ipv6Available = true
    /// Interfaces where the kernel's own proxy ARP is on (`net.ipv4.conf.{all,IF}.proxy_arp`).
    public var kernelProxyARPInterfaces: Set<String> = []
    /// Kernel proxy-neighbour entries (`ip neigh add proxy ADDRESS dev IF`), as (interface, address).
    public var kernelProxyEntries: [String: Set<IPv4Address>] = [:]
    /// Interfaces where the kernel's proxy NDP is on (`net.ipv6.conf.{all,IF}.proxy_ndp`).
    public var kernelProxyNDPInterfaces: Set<String> = []
    /// Kernel IPv6 proxy-neighbour entries (`ip -6 neigh add proxy ADDRESS dev IF`).
    public var kernelProxyEntries6: [String: Set<IPv6Address>] = [:]

    public init(interfaces: [String: Interface] = [:], routes: [IPv4Address: Route] = [:], ipv6Available: Bool = true,
                kernelProxyARPInterfaces: Set<String> = [], kernelProxyEntries: [String: Set<IPv4Address>] = [:]) {
        self.interfaces = interfaces
        self.routes = routes
        self.ipv6Available = ipv6Available
        self.kernelProxyARPInterfaces = kernelProxyARPInterfaces
        self.kernelProxyEntries = kernelProxyEntries
    }
}
