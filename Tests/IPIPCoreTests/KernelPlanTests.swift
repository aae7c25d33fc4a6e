import Testing
@testable import IPIPCore

@Suite struct KernelPlanTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let machineB = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config!
    let routerA = IPv4Address("198.51.100.1")!

    var factsA: SystemFacts {
        SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("198.51.100.37")!])],
                    routes: [IPAddress("203.0.113.86")!: .init(interface: "eth0", gateway: routerA)])
    }

    @Test func machineAPinsTheEndpointBeforeRoutingThePrefixIntoTheTunnel() {
        let plan = KernelPlan(config: machineA, facts: factsA)
        #expect(plan.problems.isEmpty)
        #expect(plan.tunnelMTU == 1480)
        let pin = KernelChange.pinEndpoint(peer: "machine-b", endpoint: IPAddress("203.0.113.86")!, interface: "eth0", gateway: .v4(routerA))
        let route = KernelChange.addTunnelRoute(prefix: IPPrefix("203.0.113.0/24")!, interface: "tunl", peer: "machine-b")
        #expect(plan.changes.contains(pin) && plan.changes.contains(route))
        #expect(plan.changes.firstIndex(of: pin)! < plan.changes.firstIndex(of: route)!)
        #expect(plan.changes.first == .createTUN(name: "tunl"))
        #expect(plan.changes.contains(.addAddress(interface: "tunl", address: IPAddress("203.0.113.87")!)))
        #expect(plan.changes.contains(.capture(interface: "eth0", filter: CaptureFilter.tunnel(local: IPAddress("198.51.100.37")!, ipv6: true))))
        // The kernel is spared its own pass over the captured packets only after the capture is open.
        let capture = plan.changes.firstIndex { if case .capture = $0 { true } else { false } }
        let consume = plan.changes.firstIndex(of: .consumeAfterCapture(interface: "eth0", local: IPAddress("198.51.100.37")!, ports: []))
        #expect(capture != nil && consume != nil && capture! < consume!)
        #expect(pin.description == "ip route add 203.0.113.86/32 via 198.51.100.1 dev eth0    # pin peer machine-b's endpoint outside the tunnel")
    }

    /// The facts `run` would trip over are problems of the plan, one per route, naming what is in the way.
    @Test func routesInTheWayAndIPv6SwitchedOffAreProblems() {
        var facts = factsA
        facts.routesInTheWay = [IPv4Prefix("203.0.113.0/24")!: "203.0.113.0/24 via 198.51.100.1 dev eth0 proto static"]
        facts.routesInTheWay6 = [IPv6Prefix("2001:db8:b::/64")!: "2001:db8:b::/64 dev eth0 proto boot"]
        facts.ipv6DisabledBy = "net.ipv6.conf.all.disable_ipv6"
        let problems = KernelPlan(config: machineA, facts: facts).problems
        #expect(problems == [
            .ipv6Disabled(sysctl: "net.ipv6.conf.all.disable_ipv6", tunnel: "tunl"),
            .routeInTheWay(prefix: IPPrefix("203.0.113.0/24")!, existing: "203.0.113.0/24 via 198.51.100.1 dev eth0 proto static", peer: "machine-b"),
            .routeInTheWay(prefix: IPPrefix("2001:db8:b::/64")!, existing: "2001:db8:b::/64 dev eth0 proto boot", peer: "machine-b"),
        ])
        // What the admin reads names the route, the command that shows it and the one that removes it.
        #expect(problems[1].description.hasPrefix("a route to 203.0.113.0/24 already exists (`ip route show 203.0.113.0/24`: 203.0.113.0/24 via 198.51.100.1 dev eth0 proto static)"))
        #expect(problems[2].description.contains("`ip -6 route show 2001:db8:b::/64`") && problems[2].description.contains("(ip -6 route del 2001:db8:b::/64)"))
        // IPv6 off matters only to a config that carries IPv6.
        var ipv4Only = machineB
        ipv4Only.peers[0].routes.removeAll(where: \.isIPv6)
        ipv4Only.ghostHosts.removeAll(where: \.address.isIPv6)
        var factsB = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("203.0.113.86")!])])
        factsB.ipv6DisabledBy = "net.ipv6.conf.all.disable_ipv6"
        #expect(KernelPlan(config: ipv4Only, facts: factsB).problems.isEmpty)
    }

    @Test func mtuFollowsTheUplink() {
        var facts = factsA
        facts.interfaces["eth0"]!.mtu = 1400
        #expect(KernelPlan(config: machineA, facts: facts).tunnelMTU == 1380)
        var fixed = machineA
        fixed.tunnel.mtu = 1300
        #expect(KernelPlan(config: fixed, facts: facts).changes.contains(.setMTU(interface: "tunl", mtu: 1300)))
    }

    @Test func endpointWithoutARouteOutsideTheTunnelIsAProblem() {
        var facts = factsA
        facts.routes = [:]
        #expect(KernelPlan(config: machineA, facts: facts).problems == [.endpointWithoutRouteToPin(peer: "machine-b", endpoint: IPAddress("203.0.113.86")!)])
        facts.routes = [IPAddress("203.0.113.86")!: .init(interface: "tunl")]
        #expect(KernelPlan(config: machineA, facts: facts).problems == [.endpointRoutedIntoTunnel(peer: "machine-b", endpoint: IPAddress("203.0.113.86")!)])
    }

    @Test func missingUplinkOrAddressIsAProblem() {
        #expect(KernelPlan(config: machineA, facts: SystemFacts()).problems.first == .uplinkMissing(interface: "eth0"))
        var facts = factsA
        facts.interfaces["eth0"]!.addresses = []
        #expect(KernelPlan(config: machineA, facts: facts).problems == [.uplinkAddressNotAssigned(address: IPAddress("198.51.100.37")!, interface: "eth0")])
    }

    @Test func machineBAnswersARPForTheGhost() throws {
        let mac = MACAddress("02:00:00:00:00:86")!
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, mac: mac, addresses: [IPv4Address("203.0.113.86")!])])
        let plan = KernelPlan(config: machineB, facts: facts)
        #expect(plan.problems.isEmpty)
        let capture = KernelChange.captureNeighbours(interface: "eth0", filter: "(arp and (arp[24:4] = 0xcb007157 or arp[14:4] = 0xcb007157)) or "
                                              + "(ip6 and ip6[6] = 58 and ip6[7] = 255 and (ip6[40] = 135 or ip6[40] = 136))")
        let answer = KernelChange.answerARP(address: IPv4Address("203.0.113.87")!, interface: "eth0", mac: nil)
        let answer6 = KernelChange.answerNDP(address: IPv6Address("2001:db8:b::87")!, interface: "eth0", mac: nil)
        try #require(plan.changes.contains(capture) && plan.changes.contains(answer) && plan.changes.contains(answer6), "\(plan.changes)")
        #expect(plan.changes.firstIndex(of: capture)! < plan.changes.firstIndex(of: answer)!)
        #expect(plan.changes.firstIndex(of: capture)! < plan.changes.firstIndex(of: answer6)!)
        #expect(answer6.description.contains("ff02::1:ff00:87") && answer6.description.contains("33:33:ff:00:00:87"))
        #expect(!plan.changes.contains { if case .pinEndpoint = $0 { true } else { false } })
    }

    /// IPv6 in the plan: the TUN keeps IPv6 (no router advertisements taken), gets its /128, the IPv6
    /// routes, forwarding, the protocol-41 claim and the ICMPv6 socket; an IPv4-only config has none of it.
    @Test func theTunnelCarriesIPv6OnlyWhenTheConfigRoutesIt() throws {
        let plan = KernelPlan(config: machineA, facts: factsA)
        for change: KernelChange in [
            .setSysctl(key: "net.ipv6.conf.tunl.accept_ra", value: "0"),
            .addAddress(interface: "tunl", address: IPAddress("2001:db8:b::87")!),
            .addTunnelRoute(prefix: IPPrefix("2001:db8:b::/64")!, interface: "tunl", peer: "machine-b"),
            .setSysctl(key: "net.ipv6.conf.all.forwarding", value: "1"),
            .claimProtocol(IPProtocolNumber.ipv6, ipv6: false), .openICMPv6Socket,
        ] {
            #expect(plan.changes.contains(change), "\(change)")
        }
        #expect(!plan.changes.contains(.setSysctl(key: "net.ipv6.conf.tunl.disable_ipv6", value: "1")))
        #expect(plan.changes.firstIndex(of: .setMTU(interface: "tunl", mtu: 1480))!
                < plan.changes.firstIndex(of: .addAddress(interface: "tunl", address: IPAddress("2001:db8:b::87")!))!,
                "the TUN has IPv6 state only once its MTU is 1280 or more")

        var ipv4Only = machineA
        ipv4Only.tunnel.address6 = nil
        ipv4Only.peers[0].routes.removeAll(where: \.isIPv6)
        let plain = KernelPlan(config: ipv4Only, facts: factsA)
        #expect(plain.changes.contains(.setSysctl(key: "net.ipv6.conf.tunl.disable_ipv6", value: "1")))
        #expect(!plain.changes.contains(.openICMPv6Socket) && !plain.changes.contains(.claimProtocol(IPProtocolNumber.ipv6, ipv6: false)))
        #expect(plain.changes.contains(.capture(interface: "eth0", filter: CaptureFilter.tunnel(local: IPAddress("198.51.100.37")!))))

        var small = factsA
        small.interfaces["eth0"]!.mtu = 1280
        #expect(KernelPlan(config: machineA, facts: small).problems == [.tunnelMTUBelowIPv6Minimum(mtu: 1260)])
        #expect(KernelPlan(config: ipv4Only, facts: small).problems.isEmpty)
    }

    @Test func kernelProxyNDPIsWarnedAbout() {
        var facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("203.0.113.86")!])])
        facts.kernelProxyNDPInterfaces = ["eth0"]
        facts.kernelProxyEntries6 = ["eth0": [IPv6Address("2001:db8:b::87")!]]
        let warnings = KernelPlan(config: machineB, facts: facts).warnings
        #expect(warnings.contains { $0.contains("proxy_ndp") })
        #expect(warnings.contains { $0.contains("ip -6 neigh del proxy 2001:db8:b::87 dev eth0") })
    }

    @Test func ghostAssignedLocallyIsRefused() {
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("203.0.113.86")!, IPv4Address("203.0.113.87")!])])
        #expect(KernelPlan(config: machineB, facts: facts).problems == [.ghostAssignedLocally(address: IPAddress("203.0.113.87")!, interface: "eth0")])
    }

    /// `GatewayHandles` holds the TUN device, the uplink capture and the raw sockets without optionals:
    /// every plan — for each example config, on a system that has what it needs and on one that has
    /// nothing (a plan with problems is printed, never run, but still has them) — has each of these
    /// steps once, the TUN device first, and the listeners it was asked for.
    @Test(arguments: ["machine-a.yaml", "machine-b.yaml", "ha-pair-b.yaml", "lab-site-a.yaml", "lab-site-b.yaml"])
    func everyPlanHasTheStepsTheGatewayNeeds(file: String) throws {
        let config = try #require(ConfigLoader.load(yaml: Repository.text("config/\(file)"), file: file).config)
        for facts in [factsA, SystemFacts()] {
            for socket in [nil, "/run/ipipd/tunl.sock"] {
                let plan = KernelPlan(config: config, facts: facts, controlSocket: socket)
                func count(_ matches: (KernelChange) -> Bool) -> Int { plan.changes.filter(matches).count }
                #expect(plan.changes.first == .createTUN(name: config.tunnel.name))
                #expect(count { if case .createTUN = $0 { true } else { false } } == 1)
                #expect(count { if case .openRawSockets = $0 { true } else { false } } == 1)
                #expect(count { if case .capture = $0 { true } else { false } } == 1)
                #expect(count { if case .openICMPv6Socket = $0 { true } else { false } } == (config.carriesIPv6 ? 1 : 0))
                #expect(count { $0 == .listenControlSocket(path: "/run/ipipd/tunl.sock") } == (socket == nil ? 0 : 1))
                #expect(count { if case .serveMetrics = $0 { true } else { false } } == (config.metricsListen == nil ? 0 : 1))
            }
        }
    }
}
