import Testing
@testable import IPIPCore

@Suite struct KernelPlanTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let machineB = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config!
    let routerA = IPv4Address("198.51.100.1")!

    var factsA: SystemFacts {
        SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("198.51.100.37")!])],
                    routes: [IPv4Address("203.0.113.86")!: .init(interface: "eth0", gateway: routerA)])
    }

    @Test func machineAPinsTheEndpointBeforeRoutingThePrefixIntoTheTunnel() {
        let plan = KernelPlan(config: machineA, facts: factsA)
        #expect(plan.problems.isEmpty)
        #expect(plan.tunnelMTU == 1480)
        let pin = KernelChange.pinEndpoint(peer: "machine-b", endpoint: IPv4Address("203.0.113.86")!, interface: "eth0", gateway: routerA)
        let route = KernelChange.addTunnelRoute(prefix: IPv4Prefix("203.0.113.0/24")!, interface: "tunl", peer: "machine-b")
        #expect(plan.changes.contains(pin) && plan.changes.contains(route))
        #expect(plan.changes.firstIndex(of: pin)! < plan.changes.firstIndex(of: route)!)
        #expect(plan.changes.first == .createTUN(name: "tunl"))
        #expect(plan.changes.contains(.addAddress(interface: "tunl", address: IPv4Address("203.0.113.87")!)))
        #expect(plan.changes.contains(.capture(interface: "eth0", filter: CaptureFilter.tunnel(local: IPv4Address("198.51.100.37")!))))
        // The kernel is spared its own pass over the captured packets only after the capture is open.
        let capture = plan.changes.firstIndex { if case .capture = $0 { true } else { false } }
        let consume = plan.changes.firstIndex(of: .consumeAfterCapture(interface: "eth0", local: IPv4Address("198.51.100.37")!))
        #expect(capture != nil && consume != nil && capture! < consume!)
        #expect(pin.description == "ip route add 203.0.113.86/32 via 198.51.100.1 dev eth0    # pin peer machine-b's endpoint outside the tunnel")
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
        #expect(KernelPlan(config: machineA, facts: facts).problems.contains { $0.contains("no route") })
        facts.routes = [IPv4Address("203.0.113.86")!: .init(interface: "tunl")]
        #expect(KernelPlan(config: machineA, facts: facts).problems.contains { $0.contains("looping tunnel") })
    }

    @Test func missingUplinkOrAddressIsAProblem() {
        #expect(KernelPlan(config: machineA, facts: SystemFacts()).problems.contains { $0.contains("does not exist") })
        var facts = factsA
        facts.interfaces["eth0"]!.addresses = []
        #expect(KernelPlan(config: machineA, facts: facts).problems.contains { $0.contains("not assigned") })
    }

    @Test func machineBAnswersARPForTheGhost() {
        let mac = MACAddress("02:00:00:00:00:86")!
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, mac: mac, addresses: [IPv4Address("203.0.113.86")!])])
        let plan = KernelPlan(config: machineB, facts: facts)
        #expect(plan.problems.isEmpty)
        let capture = KernelChange.captureARP(interface: "eth0", filter: "arp and (arp[24:4] = 0xcb007157 or arp[14:4] = 0xcb007157)")
        let answer = KernelChange.answerARP(address: IPv4Address("203.0.113.87")!, interface: "eth0", mac: nil)
        #expect(plan.changes.firstIndex(of: capture)! < plan.changes.firstIndex(of: answer)!)
        #expect(!plan.changes.contains { if case .pinEndpoint = $0 { true } else { false } })
    }

    @Test func ghostAssignedLocallyIsRefused() {
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("203.0.113.86")!, IPv4Address("203.0.113.87")!])])
        #expect(KernelPlan(config: machineB, facts: facts).problems.contains { $0.contains("assigned to eth0") })
    }
}
