/// One step `ipipd run` takes to set the gateway up, in the order it takes them: changes to the kernel
/// (described in the terms of ip(8) and sysctl(8), so that an admin can compare them with what they
/// would have typed) and the sockets and captures it opens. `ipipd plan` prints exactly this list, and
/// `run` logs each step as it takes it.
public enum KernelChange: Sendable, Equatable, CustomStringConvertible {
    case createTUN(name: String)
    case setMTU(interface: String, mtu: Int)
    /// The tunnel's own address, of either family (IPv6: without duplicate address detection).
    case addAddress(interface: String, address: IPAddress)
    case setSysctl(key: String, value: String)
    case linkUp(interface: String)
    /// A host route keeping a peer endpoint outside the tunnel (the seed's `route add B dev eth0`), in the
    /// underlay's family.
    case pinEndpoint(peer: String, endpoint: IPAddress, interface: String, gateway: IPAddress?)
    /// A prefix of either family routed into the tunnel; `run` adds a run of them in netlink batches.
    case addTunnelRoute(prefix: IPPrefix, interface: String, peer: String)
    /// A raw socket for protocol 4 (or 41), of the underlay's family, that receives nothing, so the kernel
    /// stops answering those packets with ICMP "protocol unreachable" (ICMPv6 "unrecognized next header").
    case claimProtocol(UInt8, ipv6: Bool)
    /// A UDP socket bound to a `fou` port that receives nothing, so the kernel answers no tunnel packet with
    /// "port unreachable" (and no other program takes the port); the capture takes the packets.
    case claimUDPPort(FOUPort, address: IPAddress)
    /// The raw ICMPv6 socket ICMPv6 errors to IPv6 senders leave by (the tunnel carries IPv6).
    case openICMPv6Socket
    /// The raw sockets (libnet) that send outer packets to the peers — IPv4, or IPv6 for an IPv6 underlay —
    /// and ICMP errors and (routed delivery) decapsulated packets, marked with `reinjectionMark`.
    case openRawSockets(reinjectionMark: UInt32?, outerIPv6: Bool)
    case capture(interface: String, filter: String)
    /// An eBPF program at the uplink's ingress that drops our tunnel packets (protocol 4 and 41, UDP to
    /// the `fou` ports) once the capture has its copy, so the kernel does not deliver them locally as well
    /// (skipped on kernels without TCX).
    case consumeAfterCapture(interface: String, local: IPAddress, ports: [UInt16])
    /// The capture the neighbour proxy of one LAN interface reads ARP (and, with IPv6 ghost hosts, NDP)
    /// from and answers on.
    case captureNeighbours(interface: String, filter: String)
    case answerARP(address: IPv4Address, interface: String, mac: MACAddress?)
    /// Proxy NDP for an IPv6 ghost host, on the neighbour capture of its interface, which also joins the
    /// address's solicited-node multicast group.
    case answerNDP(address: IPv6Address, interface: String, mac: MACAddress?)
    case listenControlSocket(path: String)
    case serveMetrics(GatewayConfig.ListenAddress)

    public var description: String {
        switch self {
        case .createTUN(let name):
            "create TUN device \(name) (IFF_TUN, IFF_NO_PI, IFF_VNET_HDR; checksum and TCP segmentation offload, done by ipipd)"
        case let .setMTU(interface, mtu):
            "ip link set dev \(interface) mtu \(mtu)"
        case let .addAddress(interface, .v4(address)):
            "ip address add \(address)/32 dev \(interface)"
        case let .addAddress(interface, .v6(address)):
            "ip -6 address add \(address)/128 dev \(interface) nodad"
        case let .setSysctl(key, value):
            "sysctl -w \(key)=\(value)"
        case .linkUp(let interface):
            "ip link set dev \(interface) up"
        case let .pinEndpoint(peer, endpoint, interface, gateway):
            "ip\(endpoint.isIPv6 ? " -6" : "") route add \(IPPrefix(host: endpoint))" + (gateway.map { " via \($0)" } ?? "") + " dev \(interface)"
                + "    # pin peer \(peer)'s endpoint outside the tunnel"
        case let .addTunnelRoute(prefix, interface, peer):
            "ip\(prefix.isIPv6 ? " -6" : "") route add \(prefix) dev \(interface)    # to peer \(peer)"
        case let .claimProtocol(number, ipv6):
            ipv6 ? "open a raw IPv6 socket for next header \(number) that queues nothing (no ICMPv6 parameter problem for tunnel packets)"
                 : "open a raw IPv4 socket for protocol \(number) that queues nothing (no ICMP protocol-unreachable for tunnel packets)"
        case let .claimUDPPort(port, address):
            "bind UDP port \(port.port) on \(address) with a socket that queues nothing (no port unreachable for tunnel packets; "
                + "as `ip fou add \(port)`: the capture takes them)"
        case .openICMPv6Socket:
            "open a raw ICMPv6 socket (blocking every type it could receive) to send ICMPv6 errors to IPv6 senders: "
                + "packet too big, address unreachable, hop limit exceeded"
        case let .openRawSockets(mark, outerIPv6):
            (outerIPv6 ? "open a raw IPv6 socket (libnet LIBNET_RAW6, IPPROTO_RAW: the header included) to send outer packets, and raw "
                         + "IPv4 sockets (libnet LIBNET_RAW4, IP_HDRINCL) for ICMP errors"
                       : "open raw IPv4 sockets (libnet LIBNET_RAW4, IP_HDRINCL) to send outer packets")
                + (mark.map { ", and decapsulated packets marked 0x\(String($0, radix: 16)) (delivery: routed)" }
                   ?? (outerIPv6 ? " (decapsulated packets go to the TUN device: delivery: kernel)"
                                 : " and ICMP errors (decapsulated packets go to the TUN device: delivery: kernel)"))
        case let .capture(interface, filter):
            "capture on \(interface) (a packet socket with the kernel's virtio-net header: frames its GRO or LRO merged "
                + "are taken whole), inbound only, filter: \(filter)"
        case let .consumeAfterCapture(interface, local, ports):
            "attach an eBPF program at \(interface)'s TCX ingress: drop \(local.isIPv6 ? "next header" : "protocol") 4 and 41"
                + (local.isIPv6 ? " (also behind the encapsulation limit)" : "")
                + (ports.isEmpty ? "" : " and UDP to port\(ports.count > 1 ? "s" : "") \(ports.map(String.init).joined(separator: ", "))")
                + " to \(local) after the capture (no local delivery by the kernel; skipped if the kernel lacks TCX, Linux 6.6+)"
        case let .captureNeighbours(interface, filter):
            "capture ARP" + (filter.contains("ip6 ") ? " and NDP" : "") + " on \(interface), inbound only, filter: \(filter)"
        case let .answerARP(address, interface, mac):
            "answer ARP for \(address) on \(interface) with " + (mac.map { "\($0)" } ?? "\(interface)'s own MAC")
        case let .answerNDP(address, interface, mac):
            "answer Neighbor Solicitations for \(address) on \(interface) with " + (mac.map { "\($0)" } ?? "\(interface)'s own MAC")
                + " (join \(address.solicitedNode), link-layer \(address.solicitedNode.multicastMAC))"
        case .listenControlSocket(let path):
            "listen on the control socket \(path) (mode 0600: status and reload)"
        case .serveMetrics(let listen):
            "serve Prometheus metrics at http://\(listen)/metrics"
        }
    }
}

/// Every step `run` would take for a config on a given system, or why it cannot run there.
public struct KernelPlan: Sendable, Equatable {
    /// Made only by `init`, which puts the steps the gateway needs (`GatewayHandles`) in every plan.
    public private(set) var changes: [KernelChange] = []
    /// Reasons `run` would refuse to start on this system.
    public private(set) var problems: [PlanProblem] = []
    /// Assumptions and facts worth knowing (e.g. where the MTU came from).
    public private(set) var notes: [String] = []
    /// Things that will work badly, though `run` can start (e.g. two proxy-ARP answerers).
    public private(set) var warnings: [String] = []
    public private(set) var tunnelMTU: Int = 0

    /// Up to this many peers, the plan notes each one's accepted sources on a line of its own.
    public static let peersNotedOneByOne = 16

    /// Assumed uplink MTU when the uplink cannot be inspected (Ethernet).
    public static let fallbackUplinkMTU = 1500

    /// What ipipd does with what the uplink's receive offloads make of tunnel packets; it changes none of them.
    static func uplinkOffloadNote(_ interface: String, _ offloads: SystemFacts.ReceiveOffloads, delivery: GatewayConfig.Delivery) -> String {
        var note = "uplink \(interface) receive offloads: \(offloads.summary) — ipipd changes none of them"
        if offloads.merges {
            note += "; frames merged out of a flow's segments are taken whole (up to 64 KiB) with the kernel's segment size, "
                + "checked once like one packet, and "
                + (delivery == .kernel ? "written to the TUN device as one GSO packet, which the kernel cuts again where the next hop needs it"
                                       : "cut back into the sender's segments (IPv4; IPv6 goes to the TUN device as one GSO packet)")
        }
        if offloads.checksum { note += "; checksums the NIC verified, or left partial, are taken as the kernel reports them" }
        if offloads.vlanStripping { note += "; 802.1Q tags the NIC strips are seen through" }
        return note
    }

    /// `controlSocket`: where `run` listens for `status` and `reload` (in its runtime directory).
    public init(config: GatewayConfig, facts: SystemFacts, controlSocket: String? = nil) {
        let uplinkFacts = facts.interfaces[config.uplink.interface]
        checkUplink(config, uplinkFacts)
        if facts.interfaces[config.tunnel.name] != nil {
            notes.append("an interface named \(config.tunnel.name) already exists: run takes it over if it is a leftover TUN device of ipipd, and refuses otherwise")
        }
        chooseTunnelMTU(config, uplinkFacts)
        setUpTunnelDevice(config, facts)
        enableForwarding(config)
        pinEndpoints(config, facts)
        routePrefixesIntoTheTunnel(config, facts)
        openSockets(config, facts)
        noteWhatIsAcceptedAndWhereItGoes(config, uplinkFacts)
        changes.append(.capture(interface: config.uplink.interface,
                                filter: CaptureFilter.tunnel(local: config.uplink.address, ipv6: config.carriesIPv6, ports: config.fouPorts.map(\.port))))
        changes.append(.consumeAfterCapture(interface: config.uplink.interface, local: config.uplink.address,
                                            ports: Array(config.fouPorts.map(\.port).prefix(8))))
        for interface in config.proxyCaptureInterfaces { proxyNeighbours(on: interface, config, facts) }
        if let controlSocket { changes.append(.listenControlSocket(path: controlSocket)) }
        if let metrics = config.metricsListen { changes.append(.serveMetrics(metrics)) }
    }

    /// The uplink must exist and hold the uplink address — or, for an HA pair, the plan says which role
    /// the box starts in and what each role does.
    private mutating func checkUplink(_ config: GatewayConfig, _ uplinkFacts: SystemFacts.Interface?) {
        let (uplink, tunnel) = (config.uplink, config.tunnel)
        guard let uplinkFacts else {
            problems.append(.uplinkMissing(interface: uplink.interface))
            return
        }
        let assigned = uplinkFacts.holds(uplink.address)
        if uplink.standbyWhenAbsent {
            notes.append("HA pair (uplink.standby-when-absent): \(uplink.address) is \(assigned ? "" : "not ")assigned to "
                         + "\(uplink.interface) now, so run starts as the \(assigned ? "active" : "standby") gateway")
            notes.append("as the standby (while \(uplink.address) is not on \(uplink.interface)): every step below is taken, "
                         + "but ipipd answers no ARP, announces nothing and sends nothing — packets from \(tunnel.name) and "
                         + "captured tunnel packets are dropped, counted as `standby`")
            notes.append("as the active gateway (from the moment keepalived assigns \(uplink.address), seen by a netlink "
                         + "address notification): ipipd carries traffic and announces every ghost host by gratuitous ARP; "
                         + "when the address goes, it is the standby again")
            notes.append("split brain: while active, another machine's ARP claiming \(uplink.address) (on \(uplink.interface)) "
                         + "or a ghost host, still there a second later, means the partner is active too: counted "
                         + "(`ipipd_split_brain_claims_total`), shown by `status` and logged, at most every 10 s")
        } else if !assigned {
            problems.append(.uplinkAddressNotAssigned(address: uplink.address, interface: uplink.interface))
        }
    }

    /// The configured MTU, or the uplink's less the longest outer header of any peer (each peer's own
    /// shorter one leaves it no more: one TUN device, one MTU).
    private mutating func chooseTunnelMTU(_ config: GatewayConfig, _ uplinkFacts: SystemFacts.Interface?) {
        let uplink = config.uplink
        let encapsulations = config.encapsulations
        let overhead = encapsulations.map(\.overhead).max() ?? Encapsulation.ipv4HeaderLength
        let uplinkMTU = uplinkFacts?.mtu ?? Self.fallbackUplinkMTU
        if let mtu = config.tunnel.mtu {
            tunnelMTU = mtu
            notes.append("tunnel MTU \(mtu) from the config")
        } else {
            tunnelMTU = max(68, uplinkMTU - overhead)
            notes.append("tunnel MTU \(tunnelMTU) = \(uplink.interface) MTU \(uplinkMTU)"
                         + (uplinkFacts == nil ? " (assumed: interface not found)" : "") + " − \(overhead)"
                         + (Set(encapsulations.map(\.overhead)).count > 1 ? " (the longest of the peers' outer headers)" : ""))
        }
        if config.carriesIPv6 && tunnelMTU < Encapsulator.minimumIPv6MTU {
            problems.append(.tunnelMTUBelowIPv6Minimum(mtu: tunnelMTU))
        }
        // Each peer's outer header, and what it leaves of the uplink's MTU (one line for a hub's many plain peers).
        let described = encapsulations.count <= Self.peersNotedOneByOne || Set(encapsulations.map(\.summary)).count > 1
        for (peer, encapsulation) in zip(config.peers, encapsulations) where described {
            let peerMTU = Encapsulator.innerMTU(encapsulation, tunnelMTU: tunnelMTU, uplinkMTU: uplinkFacts?.mtu)
            notes.append("peer \(peer.name): outer header \(encapsulation.summary); inner packets of up to \(peerMTU) bytes"
                         + (peerMTU < tunnelMTU ? " (\(uplink.interface) MTU \(uplinkMTU) − \(encapsulation.overhead); larger ones get "
                                                   + "\"fragmentation needed\" or \"packet too big\", or are fragmented)" : ""))
        }
        if !described, let encapsulation = encapsulations.first {
            notes.append("\(encapsulations.count) peers: outer header \(encapsulation.summary)")
        }
    }

    /// The TUN device, its MTU and addresses, and its IPv6 state: kept (without router advertisements)
    /// when the tunnel carries IPv6, disabled otherwise.
    private mutating func setUpTunnelDevice(_ config: GatewayConfig, _ facts: SystemFacts) {
        let tunnel = config.tunnel
        changes.append(.createTUN(name: tunnel.name))
        changes.append(.setMTU(interface: tunnel.name, mtu: tunnelMTU))
        if let address = tunnel.address {
            changes.append(.addAddress(interface: tunnel.name, address: .v4(address)))
        }
        if config.carriesIPv6 {
            if !facts.ipv6Available {
                problems.append(.ipv6TurnedOff)
            } else if let sysctl = facts.ipv6DisabledBy {
                problems.append(.ipv6Disabled(sysctl: sysctl, tunnel: tunnel.name))
            }
            // Nothing answers router solicitations through the tunnel, and nothing should configure it.
            changes.append(.setSysctl(key: "net.ipv6.conf.\(tunnel.name).accept_ra", value: "0"))
            if let address = tunnel.address6 { changes.append(.addAddress(interface: tunnel.name, address: .v6(address))) }
        } else if facts.ipv6Available {
            // A TUN with IPv6 sends router solicitations nobody can answer through an IPv4 tunnel.
            changes.append(.setSysctl(key: "net.ipv6.conf.\(tunnel.name).disable_ipv6", value: "1"))
        }
        changes.append(.linkUp(interface: tunnel.name))
    }

    private mutating func enableForwarding(_ config: GatewayConfig) {
        changes.append(.setSysctl(key: "net.ipv4.ip_forward", value: "1"))
        if config.peers.contains(where: { $0.routes.contains(where: \.isIPv6) }) {
            changes.append(.setSysctl(key: "net.ipv6.conf.all.forwarding", value: "1"))
            notes.append("net.ipv6.conf.all.forwarding=1 makes this machine an IPv6 router: interfaces with accept_ra=1 stop "
                         + "taking router advertisements (set accept_ra=2 on an uplink that SLAAC configures)")
        }
    }

    /// A host route outside the tunnel for each endpoint inside a tunneled prefix (the seed's looping
    /// tunnel), through the route the kernel has for it now.
    private mutating func pinEndpoints(_ config: GatewayConfig, _ facts: SystemFacts) {
        for peer in config.endpointsNeedingPins {
            guard let route = facts.routes[peer.remote] else {
                problems.append(.endpointWithoutRouteToPin(peer: peer.name, endpoint: peer.remote))
                continue
            }
            if route.interface == config.tunnel.name {
                problems.append(.endpointRoutedIntoTunnel(peer: peer.name, endpoint: peer.remote))
                continue
            }
            if route.interface != config.uplink.interface {
                notes.append("peer \(peer.name): endpoint \(peer.remote) is reached through \(route.interface), not the uplink \(config.uplink.interface)")
            }
            changes.append(.pinEndpoint(peer: peer.name, endpoint: peer.remote, interface: route.interface, gateway: route.gateway))
        }
    }

    /// IPv4 routes first, then IPv6: one run of steps, which `run` adds in netlink batches. What the
    /// kernel would refuse is said now rather than by `run` half-way (it would undo what it did).
    private mutating func routePrefixesIntoTheTunnel(_ config: GatewayConfig, _ facts: SystemFacts) {
        for ipv6 in [false, true] {
            for peer in config.peers {
                for prefix in peer.routes where prefix.isIPv6 == ipv6 {
                    changes.append(.addTunnelRoute(prefix: prefix, interface: config.tunnel.name, peer: peer.name))
                }
            }
        }
        for peer in config.peers {
            for route in peer.routes {
                let existing = switch route {
                case .v4(let prefix): facts.routesInTheWay[prefix]
                case .v6(let prefix): facts.routesInTheWay6[prefix]
                }
                if let existing { problems.append(.routeInTheWay(prefix: route, existing: existing, peer: peer.name)) }
            }
        }
    }

    /// The protocol and port claims (no ICMP protocol or port unreachable for tunnel packets) and the sending sockets.
    private mutating func openSockets(_ config: GatewayConfig, _ facts: SystemFacts) {
        let tunnel = config.tunnel
        let ipv6Underlay = config.uplink.isIPv6
        changes.append(.claimProtocol(IPProtocolNumber.ipip, ipv6: ipv6Underlay))
        if config.carriesIPv6 { changes.append(.claimProtocol(IPProtocolNumber.ipv6, ipv6: ipv6Underlay)) }
        for port in config.fouPorts {
            if let holder = facts.udpPortsInUse[port.port] {
                problems.append(.udpPortInUse(port: port.port, address: config.uplink.address, holder: holder))
            }
            changes.append(.claimUDPPort(port, address: config.uplink.address))
        }
        changes.append(.openRawSockets(reinjectionMark: tunnel.delivery == .routed ? tunnel.reinjectionMark : nil, outerIPv6: ipv6Underlay))
        if config.carriesIPv6 { changes.append(.openICMPv6Socket) }
    }

    /// What each peer may send, where decapsulated packets enter the kernel (and so the firewall), and
    /// what the uplink's offloads make of tunnel packets.
    private mutating func noteWhatIsAcceptedAndWhereItGoes(_ config: GatewayConfig, _ uplinkFacts: SystemFacts.Interface?) {
        let tunnel = config.tunnel
        // One line per peer — but a hub's thousands of peers with the default get one line together.
        let defaults = config.peers.filter { $0.acceptSources == nil }
        for peer in config.peers where peer.acceptSources != nil || defaults.count <= Self.peersNotedOneByOne {
            notes.append("peer \(peer.name): inner packets accepted only from "
                         + peer.allowedSources.map(\.description).joined(separator: ", ")
                         + (peer.acceptSources == nil ? " (its routes and endpoint: the default of accept-sources)" : " (accept-sources)"))
        }
        if defaults.count > Self.peersNotedOneByOne {
            notes.append("\(defaults.count) peers accept inner packets only from their own routes and endpoint "
                         + "(the default of accept-sources; `ipipd check` shows each peer's)")
        }
        notes.append(tunnel.delivery == .kernel
            ? "delivery: kernel — decapsulated packets are received by the kernel on \(tunnel.name): firewall them in INPUT and FORWARD with iifname \"\(tunnel.name)\""
            : "delivery: routed — decapsulated packets are sent as locally generated (OUTPUT, meta mark 0x\(String(tunnel.reinjectionMark, radix: 16))), those for this machine go to \(tunnel.name) (INPUT, iifname \"\(tunnel.name)\")")
        if config.carriesIPv6 {
            notes.append("IPv6 (protocol 41) is delivered to \(tunnel.name) in both delivery modes, as Linux's sit delivers it: "
                         + "the kernel forwards it (hop limit, time exceeded, packet too big); firewall it with ip6tables/nft "
                         + "in INPUT and FORWARD with iifname \"\(tunnel.name)\"")
        }
        if let offloads = uplinkFacts?.receiveOffloads {
            notes.append(Self.uplinkOffloadNote(config.uplink.interface, offloads, delivery: tunnel.delivery))
        }
        if let ipv4 = TCPMSSClamp.maximum(tunnel.clampMSS, innerMTU: tunnelMTU, ipv6: false),
           let ipv6 = TCPMSSClamp.maximum(tunnel.clampMSS, innerMTU: tunnelMTU, ipv6: true) {
            let what = tunnel.clampMSS == .auto
                ? "at most \(ipv4) (IPv4) and \(ipv6) (IPv6) while the path to a peer is the tunnel MTU \(tunnelMTU), less when a router reports less"
                : "at most \(ipv4)"
            notes.append("clamp-mss: \(tunnel.clampMSS) — the MSS of TCP SYNs and SYN-ACKs crossing \(tunnel.name), both ways, is lowered to \(what)")
        }
    }

    /// One LAN interface's neighbour proxy: its capture, then an answer step per ghost host of each
    /// family, and what on this machine would answer for them too.
    private mutating func proxyNeighbours(on interface: String, _ config: GatewayConfig, _ facts: SystemFacts) {
        let ghosts = config.ghosts(IPv4Address.self, on: interface), ghosts6 = config.ghosts(IPv6Address.self, on: interface)
        let interfaceFacts = facts.interfaces[interface]
        if interfaceFacts == nil && interface != config.uplink.interface {
            problems.append(.ghostInterfaceMissing(interface: interface))
        }
        changes.append(.captureNeighbours(interface: interface, filter: CaptureFilter.neighbourProxy(interface: interface, config: config)))
        let blocks = CaptureFilter.addressBlocks(ghosts.map(\.address)).count
        if blocks > CaptureFilter.maximumARPBlocks {
            warnings.append("the \(ghosts.count) IPv4 ghost hosts on \(interface) make \(blocks) address blocks, more than the kernel's "
                            + "filter can list (\(CaptureFilter.maximumARPBlocks)): every ARP frame on \(interface) goes to ipipd, "
                            + "which looks each up in its table; ghosts from fewer, contiguous ranges keep the filter in the kernel")
        }
        for ghost in ghosts {
            if interfaceFacts?.addresses.contains(ghost.address) == true {
                problems.append(.ghostAssignedLocally(address: .v4(ghost.address), interface: interface))
            }
            if facts.kernelProxyEntries[interface]?.contains(ghost.address) == true {
                warnings.append("the kernel also proxies \(ghost.address) on \(interface) (`ip neigh show proxy` lists it): "
                                + "hosts may get two different ARP answers; remove it with `ip neigh del proxy \(ghost.address) dev \(interface)`")
            }
            changes.append(.answerARP(address: ghost.address, interface: interface, mac: ghost.mac))
        }
        if !ghosts6.isEmpty && facts.kernelProxyNDPInterfaces.contains(interface) {
            warnings.append("the kernel's own proxy NDP is on for \(interface) (net.ipv6.conf.\(interface).proxy_ndp or "
                            + "net.ipv6.conf.all.proxy_ndp is 1): with `ip -6 neigh add proxy` entries it answers too; "
                            + "set it to 0 unless you need it")
        }
        for ghost in ghosts6 {
            if facts.kernelProxyEntries6[interface]?.contains(ghost.address) == true {
                warnings.append("the kernel also proxies \(ghost.address) on \(interface) (`ip -6 neigh show proxy` lists it): "
                                + "hosts may get two different answers; remove it with `ip -6 neigh del proxy \(ghost.address) dev \(interface)`")
            }
            changes.append(.answerNDP(address: ghost.address, interface: interface, mac: ghost.mac))
        }
        if facts.kernelProxyARPInterfaces.contains(interface) {
            warnings.append("the kernel's own proxy ARP is on for \(interface) (net.ipv4.conf.\(interface).proxy_arp or "
                            + "net.ipv4.conf.all.proxy_arp is 1): it may answer for ghost hosts too, with its own timing and MAC; "
                            + "set it to 0 unless you need it")
        }
    }
}
