/// What the running system looks like, as far as the plan needs it. Gathered by the dataplane (netlink,
/// ioctls, /proc) — or written by hand in tests — so that planning itself stays pure.
public struct SystemFacts: Sendable, Equatable {
    public struct Interface: Sendable, Equatable {
        public var mtu: Int
        public var mac: MACAddress?
        public var addresses: [IPv4Address]
        public var addresses6: [IPv6Address]
        /// What the interface merges or checks before packet sockets see a frame (the uplink's; nil: not read).
        public var receiveOffloads: ReceiveOffloads?
        public init(mtu: Int, mac: MACAddress? = nil, addresses: [IPv4Address] = [], addresses6: [IPv6Address] = [],
                    receiveOffloads: ReceiveOffloads? = nil) {
            self.mtu = mtu
            self.mac = mac
            self.addresses = addresses
            self.addresses6 = addresses6
            self.receiveOffloads = receiveOffloads
        }

        /// Whether `address`, of either family, is one of the interface's.
        public func holds(_ address: IPAddress) -> Bool {
            switch address {
            case .v4(let address): addresses.contains(address)
            case .v6(let address): addresses6.contains(address)
            }
        }
    }

    /// An interface's receive offloads that change what the capture sees, by the names `ethtool -k`
    /// prints (the kernel's feature names in brackets); those it could not read are off.
    public struct ReceiveOffloads: Sendable, Equatable {
        /// generic-receive-offload (rx-gro): the kernel merges a flow's segments in NAPI.
        public var genericReceive = false
        /// large-receive-offload (rx-lro): the NIC merges them.
        public var largeReceive = false
        /// rx-gro-hw: the NIC merges them as GRO would.
        public var hardwareGRO = false
        /// rx-gro-list: GRO keeps the segments as a list (fraglist GRO).
        public var groList = false
        /// rx-udp-gro-forwarding: GRO also merges UDP datagrams of forwarded flows.
        public var udpForwarding = false
        /// rx-checksumming (rx-checksum): the NIC verifies checksums.
        public var checksum = false
        /// rx-vlan-offload (rx-vlan-hw-parse): the NIC strips 802.1Q tags into metadata.
        public var vlanStripping = false

        public init(genericReceive: Bool = false, largeReceive: Bool = false, hardwareGRO: Bool = false, groList: Bool = false,
                    udpForwarding: Bool = false, checksum: Bool = false, vlanStripping: Bool = false) {
            self.genericReceive = genericReceive
            self.largeReceive = largeReceive
            self.hardwareGRO = hardwareGRO
            self.groList = groList
            self.udpForwarding = udpForwarding
            self.checksum = checksum
            self.vlanStripping = vlanStripping
        }

        /// Whether the interface hands over frames merged out of several.
        public var merges: Bool { genericReceive || largeReceive || hardwareGRO }

        /// `ethtool -k` style: every offload with on or off.
        public var summary: String {
            [("generic-receive-offload", genericReceive), ("large-receive-offload", largeReceive), ("rx-gro-hw", hardwareGRO),
             ("rx-gro-list", groList), ("rx-udp-gro-forwarding", udpForwarding), ("rx-checksumming", checksum),
             ("rx-vlan-offload", vlanStripping)].map { "\($0) \($1 ? "on" : "off")" }.joined(separator: ", ")
        }
    }

    /// The kernel's current answer to "how do I reach this address" (`ip route get`).
    public struct Route: Sendable, Equatable {
        public var interface: String
        /// In the family of the address routed to.
        public var gateway: IPAddress?
        public init(interface: String, gateway: IPAddress? = nil) {
            self.interface = interface
            self.gateway = gateway
        }
        public init(interface: String, gateway: IPv4Address?) {
            self.init(interface: interface, gateway: gateway.map(IPAddress.v4))
        }
    }

    public var interfaces: [String: Interface] = [:]
    /// Route to each peer endpoint that lies inside a tunneled prefix (those the plan may pin); missing:
    /// no route at all.
    public var routes: [IPAddress: Route] = [:]
    /// UDP ports of `fou` that another socket already holds on the uplink address (or on all addresses of
    /// its family), with who holds them as `ss` would say it (nil: the process could not be told).
    public var udpPortsInUse: [UInt16: String] = [:]
    public var ipv6Available = true
    /// IPv6 is switched off for new interfaces or all of them (`net.ipv6.conf.{default,all}.disable_ipv6`):
    /// the TUN device could take no IPv6 address. The name of the sysctl that says so.
    public var ipv6DisabledBy: String?
    /// Routes in the main table to exactly a prefix the config tunnels, with the metric ipipd's own would
    /// have (0 for IPv4, 1024 for IPv6): the kernel would refuse to add ipipd's ("File exists"). As
    /// `ip route` shows them.
    public var routesInTheWay: [IPv4Prefix: String] = [:]
    public var routesInTheWay6: [IPv6Prefix: String] = [:]
    /// Interfaces where the kernel's own proxy ARP is on (`net.ipv4.conf.{all,IF}.proxy_arp`).
    public var kernelProxyARPInterfaces: Set<String> = []
    /// Kernel proxy-neighbour entries (`ip neigh add proxy ADDRESS dev IF`), as (interface, address).
    public var kernelProxyEntries: [String: Set<IPv4Address>] = [:]
    /// Interfaces where the kernel's proxy NDP is on (`net.ipv6.conf.{all,IF}.proxy_ndp`).
    public var kernelProxyNDPInterfaces: Set<String> = []
    /// Kernel IPv6 proxy-neighbour entries (`ip -6 neigh add proxy ADDRESS dev IF`).
    public var kernelProxyEntries6: [String: Set<IPv6Address>] = [:]

    public init(interfaces: [String: Interface] = [:], routes: [IPAddress: Route] = [:], ipv6Available: Bool = true,
                kernelProxyARPInterfaces: Set<String> = [], kernelProxyEntries: [String: Set<IPv4Address>] = [:]) {
        self.interfaces = interfaces
        self.routes = routes
        self.ipv6Available = ipv6Available
        self.kernelProxyARPInterfaces = kernelProxyARPInterfaces
        self.kernelProxyEntries = kernelProxyEntries
    }
}
