#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import IPIPCore

/// Reads the facts a plan depends on from the running kernel. Needs no privileges.
public enum SystemProbe {
    public static func interfaceIndex(_ name: String) -> Int32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : Int32(index)
    }

    public static func interfaceName(index: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(UInt32(index), &buffer) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func interfaceMTU(_ name: String) -> Int? {
        let mtu = CIPIPShims_interfaceMTU(name)
        return mtu > 0 ? Int(mtu) : nil
    }

    public static func interfaceMAC(_ name: String) -> MACAddress? {
        var bytes = [UInt8](repeating: 0, count: 6)
        guard CIPIPShims_interfaceHardwareAddress(name, &bytes) == 0 else { return nil }
        return MACAddress(bytes: bytes)
    }

    /// Longest-prefix match over the main table's unicast routes, leaving out those through `interface`.
    static func routeAvoiding<Address: NetlinkAddress>(interface: Int32, to destination: Address,
                                                        netlink: NetlinkSocket) throws(SystemError) -> Netlink.RouteInfo<Address>? {
        try netlink.routes(Address.self)
            .filter { $0.table == Netlink.mainTable && $0.type == Netlink.routeTypeUnicast && $0.outputInterface != interface
                && $0.prefix.contains(destination) }
            .max { $0.prefix.length < $1.prefix.length }
    }

    /// Every interface with its MTU, MAC and addresses of both families.
    public static func interfaces() -> [String: SystemFacts.Interface] {
        let walk = addressWalk()
        return Dictionary(uniqueKeysWithValues: walk.networks.map { name, networks in
            (name, SystemFacts.Interface(mtu: interfaceMTU(name) ?? 0, mac: interfaceMAC(name), addresses: networks.map(\.address),
                                         addresses6: walk.byInterface6[name] ?? []))
        })
    }

    /// Whether `address` is assigned to `interface` now (the HA role: keepalived adds and removes it).
    public static func isAssigned(_ address: IPAddress, to interface: String) -> Bool {
        switch address {
        case .v4(let address): interfaceAddresses()[interface]?.contains(address) ?? false
        case .v6(let address): addressWalk().byInterface6[interface]?.contains(address) ?? false
        }
    }

    /// Every interface's IPv4 addresses (getifaddrs; interfaces without one map to none).
    static func interfaceAddresses() -> [String: [IPv4Address]] {
        interfaceNetworks().mapValues { $0.map(\.address) }
    }

    /// Every interface's IPv4 addresses with their prefix lengths.
    static func interfaceNetworks() -> [String: [IPv4Prefix]] {
        addressWalk().networks
    }

    /// One walk over getifaddrs: each interface's IPv4 addresses with their prefix lengths (interfaces
    /// without one map to none), every IPv6 address of the machine, and each interface's.
    static func addressWalk() -> (networks: [String: [IPv4Prefix]], addresses6: Set<IPv6Address>, byInterface6: [String: [IPv6Address]]) {
        var networks: [String: [IPv4Prefix]] = [:]
        var addresses6: Set<IPv6Address> = []
        var byInterface6: [String: [IPv6Address]] = [:]
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return (networks, addresses6, byInterface6) }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let name = String(cString: entry.pointee.ifa_name)
            if networks[name] == nil { networks[name] = [] }
            guard let address = entry.pointee.ifa_addr else { continue }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                func value(_ pointer: UnsafeMutablePointer<sockaddr>) -> UInt32 {
                    pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                }
                let length = entry.pointee.ifa_netmask.map { value($0).nonzeroBitCount } ?? 32
                networks[name, default: []].append(IPv4Prefix(IPv4Address(value(address)), length: length))
            case AF_INET6:
                let address6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { socket in
                    withUnsafeBytes(of: socket.pointee.sin6_addr) { $0.loadIPv6Address(at: 0) }
                }
                addresses6.insert(address6)
                byInterface6[name, default: []].append(address6)
            default:
                break
            }
        }
        return (networks, addresses6, byInterface6)
    }

    /// Every IPv4 address configured on this machine (in this network namespace), with its subnet.
    /// Cheap enough for the capture thread's once-a-second refresh: no per-interface ioctls.
    public static func localNetworks() -> LocalNetworks {
        let walk = addressWalk()
        return LocalNetworks(networks: walk.networks.values.flatMap { $0 }, addresses6: walk.addresses6)
    }

    /// The receive offloads of `interface` that change what a packet socket sees (SIOCETHTOOL); nil when
    /// the interface has no ethtool features at all.
    public static func receiveOffloads(_ interface: String) -> SystemFacts.ReceiveOffloads? {
        func active(_ feature: String) -> Bool? {
            let value = CIPIPShims_interfaceFeature(interface, feature)
            return value < 0 ? nil : value == 1
        }
        guard let gro = active("rx-gro") else { return nil }
        return SystemFacts.ReceiveOffloads(genericReceive: gro, largeReceive: active("rx-lro") ?? false,
                                           hardwareGRO: active("rx-gro-hw") ?? false, groList: active("rx-gro-list") ?? false,
                                           udpForwarding: active("rx-udp-gro-forwarding") ?? false,
                                           checksum: active("rx-checksum") ?? false, vlanStripping: active("rx-vlan-hw-parse") ?? false)
    }

    /// This process's CPU time, memory, start and descriptors, for the `process_*` metrics (/proc).
    public static func processFacts() -> ProcessFacts? {
        guard let stat = try? readSmallFile("/proc/self/stat"), let close = stat.lastIndex(of: ")"),
              let statm = try? readSmallFile("/proc/self/statm"),
              let boot = (try? readSmallFile("/proc/stat"))?.split(separator: "\n").first(where: { $0.hasPrefix("btime ") })?
                  .split(separator: " ").last.flatMap({ Double($0) }) else { return nil }
        // Fields after the command's closing parenthesis, from the state (field 3): utime is 14, stime 15, starttime 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 20, let user = Double(fields[11]), let system = Double(fields[12]), let start = Double(fields[19]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pages = statm.split(separator: " ").compactMap { UInt64($0) }
        let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        var open = 0
        if let directory = opendir("/proc/self/fd") {
            while let entry = readdir(directory) {
                if entry.pointee.d_name.0 != UInt8(ascii: ".") { open += 1 }
            }
            closedir(directory)
        }
        return ProcessFacts(cpuSeconds: (user + system) / ticks, residentBytes: (pages.count > 1 ? pages[1] : 0) * pageSize,
                            virtualBytes: (pages.first ?? 0) * pageSize, startTime: boot + start / ticks,
                            openDescriptors: max(0, open - 1),   // the directory's own descriptor
                            maximumDescriptors: Int(limit.rlim_cur))
    }

    /// The facts `KernelPlan` needs for `config`.
    public static func facts(for config: GatewayConfig) -> SystemFacts {
        var facts = SystemFacts(interfaces: interfaces(),
                                ipv6Available: access("/proc/sys/net/ipv6", F_OK) == 0)
        facts.interfaces[config.uplink.interface]?.receiveOffloads = receiveOffloads(config.uplink.interface)
        if config.carriesIPv6 {
            facts.ipv6DisabledBy = ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"]
                .first { (try? readSmallFile(sysctlPath($0))) == "1" }
        }
        let lanInterfaces = Set(config.ghostHosts.filter { !$0.address.isIPv6 }.map(\.interface))
        let proxyEverywhere = (try? readSmallFile("/proc/sys/net/ipv4/conf/all/proxy_arp")) == "1"
        for interface in lanInterfaces
        where proxyEverywhere || (try? readSmallFile("/proc/sys/net/ipv4/conf/\(interface)/proxy_arp")) == "1" {
            facts.kernelProxyARPInterfaces.insert(interface)
        }
        let lanInterfaces6 = Set(config.ghostHosts.filter(\.address.isIPv6).map(\.interface))
        let proxyNDPEverywhere = (try? readSmallFile("/proc/sys/net/ipv6/conf/all/proxy_ndp")) == "1"
        for interface in lanInterfaces6
        where proxyNDPEverywhere || (try? readSmallFile("/proc/sys/net/ipv6/conf/\(interface)/proxy_ndp")) == "1" {
            facts.kernelProxyNDPInterfaces.insert(interface)
        }
        if let netlink = try? NetlinkSocket() {
            if !lanInterfaces.isEmpty, let entries = try? netlink.proxyNeighbours(IPv4Address.self) {
                for (index, address) in entries {
                    if let name = interfaceName(index: index) { facts.kernelProxyEntries[name, default: []].insert(address) }
                }
            }
            if !lanInterfaces6.isEmpty, let entries = try? netlink.proxyNeighbours(IPv6Address.self) {
                for (index, address) in entries {
                    if let name = interfaceName(index: index) { facts.kernelProxyEntries6[name, default: []].insert(address) }
                }
            }
            let tunnelIndex = interfaceIndex(config.tunnel.name)
            // Routes to a tunneled prefix that would keep `run` from adding its own (but the tunnel's,
            // on a reload): one dump per family, matched against a set of the config's prefixes.
            let tunneled = Set(config.peers.flatMap(\.routes))
            func device(_ index: Int32?) -> String { index.flatMap(interfaceName(index:)).map { " dev \($0)" } ?? "" }
            // /etc/iproute2/rt_protos' names for the usual ones, as `ip route` prints them.
            func origin(_ number: UInt8) -> String {
                [2: "kernel", 3: "boot", 4: "static", 16: "dhcp", Netlink.ipipdRouteProtocol: "73 (ipipd's)"][number] ?? "\(number)"
            }
            if tunneled.contains(where: { !$0.isIPv6 }), let routes = try? netlink.routes(IPv4Address.self, skippingInterface: tunnelIndex) {
                for route in routes where route.table == Netlink.mainTable && route.priority == 0 && tunneled.contains(.v4(route.prefix)) {
                    facts.routesInTheWay[route.prefix] = "\(route.prefix)" + (route.gateway.map { " via \($0)" } ?? "") + device(route.outputInterface)
                        + " proto \(origin(route.protocolNumber))"
                }
            }
            if tunneled.contains(where: \.isIPv6), let routes = try? netlink.routes(IPv6Address.self) {
                for route in routes where route.table == Netlink.mainTable && route.priority == 1024 && tunneled.contains(.v6(route.prefix))
                    && (tunnelIndex == nil || route.outputInterface != tunnelIndex) {
                    facts.routesInTheWay6[route.prefix] = "\(route.prefix)" + device(route.outputInterface) + " proto \(origin(route.protocolNumber))"
                }
            }
            // Only the endpoints the plan may pin: a hub's thousands of others need no lookup each.
            func outsideRoute<Address: NetlinkAddress>(to endpoint: Address) -> SystemFacts.Route? {
                guard var route = try? netlink.route(to: endpoint) else { return nil }
                // While ipipd runs (a reload), an endpoint inside a tunneled prefix routes into the tunnel:
                // what counts is the route it would take without ipipd's tunnel routes.
                if let tunnelIndex, route.outputInterface == tunnelIndex {
                    guard let outside = try? routeAvoiding(interface: tunnelIndex, to: endpoint, netlink: netlink) else { return nil }
                    route = outside
                }
                guard let index = route.outputInterface, let name = interfaceName(index: index) else { return nil }
                return SystemFacts.Route(interface: name, gateway: route.gateway?.ipAddress)
            }
            for peer in config.endpointsNeedingPins {
                facts.routes[peer.remote] = switch peer.remote {
                case .v4(let endpoint): outsideRoute(to: endpoint)
                case .v6(let endpoint): outsideRoute(to: endpoint)
                }
            }
        }
        facts.udpPortsInUse = udpPortsInUse(config.fouPorts.map(\.port), on: config.uplink.address)
        return facts
    }

    /// Which of `ports` a UDP socket already holds on `address` or on every address of its family (or,
    /// for IPv4, on every address of both, an IPv6 socket without IPV6_V6ONLY), as /proc/net/udp and
    /// udp6 list them, with its inode for the message. A running ipipd's own claims count too: plan
    /// says so while one runs (`run` refuses to start a second for the tunnel anyway).
    static func udpPortsInUse(_ ports: [UInt16], on address: IPAddress) -> [UInt16: String] {
        guard !ports.isEmpty else { return [:] }
        var found: [UInt16: String] = [:]
        let wanted = Set(ports)
        for (file, ipv6) in [("/proc/net/udp", false), ("/proc/net/udp6", true)] {
            guard let text = try? readSmallFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // sl local_address rem_address st tx_queue:rx_queue tr tm->when retrnsmt uid timeout inode
                guard fields.count > 9, let colon = fields[1].lastIndex(of: ":"),
                      let port = UInt16(fields[1][fields[1].index(after: colon)...], radix: 16), wanted.contains(port) else { continue }
                let local = String(fields[1][..<colon])
                let wildcard = local.allSatisfy { $0 == "0" }
                let matches: Bool = switch address {
                case .v4(let address):
                    ipv6 ? wildcard || local == "0000000000000000FFFF0000" + procHex(address) : wildcard || local == procHex(address)
                case .v6(let address):
                    ipv6 && (wildcard || local == procHex(address))
                }
                if matches { found[port] = "socket inode \(fields[9]) on \(wildcard ? "every address" : "\(address)")" }
            }
        }
        return found
    }

    /// An address as /proc/net/udp prints it: each 32-bit word in the host's (little-endian) order, in
    /// upper-case hex.
    static func procHex(_ address: IPv4Address) -> String {
        let o = address.octets
        return procHex([o.0, o.1, o.2, o.3])
    }

    static func procHex(_ address: IPv6Address) -> String {
        procHex(address.bytes)
    }

    private static func procHex(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 4).map { word in
            bytes[word..<(word + 4)].reversed().map { byte in
                let text = String(byte, radix: 16, uppercase: true)
                return byte < 16 ? "0" + text : text
            }.joined()
        }.joined()
    }
}
