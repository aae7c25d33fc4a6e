import Testing
@testable import IPIPCore

/// What a reload would do to the kernel, as a value: the steps of two plans compared.
@Suite struct KernelPlanDiffTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let machineB = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config!
    let endpointB = IPv4Address("203.0.113.86")!

    func facts(gateway: String = "198.51.100.1") -> SystemFacts {
        SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [IPv4Address("198.51.100.37")!]), "eth1": .init(mtu: 1500)],
                    routes: [.v4(endpointB): .init(interface: "eth0", gateway: IPv4Address(gateway)!)])
    }

    func route(_ prefix: String, peer: String = "machine-b") -> KernelChange {
        .addTunnelRoute(prefix: IPPrefix(prefix)!, interface: "tunl", peer: peer)
    }

    func pin(via gateway: String) -> KernelChange {
        .pinEndpoint(peer: "machine-b", endpoint: .v4(endpointB), interface: "eth0", gateway: IPAddress(gateway)!)
    }

    @Test func theSamePlanChangesNothing() {
        let plan = KernelPlan(config: machineA, facts: facts())
        #expect(KernelPlanDiff(from: plan, to: plan).isEmpty)
    }

    /// Routes of both families in one sorted list each: IPv4 before IPv6, by address then length.
    @Test func routesOfBothFamiliesAddedAndRemovedSorted() {
        let old = KernelPlan(config: machineA, facts: facts())
        var config = machineA
        config.peers[0].routes = [IPPrefix("2001:db8:c::/48")!, IPPrefix("198.18.0.0/15")!, IPPrefix("2001:db8:b::/64")!, IPPrefix("192.0.2.0/24")!]
        let diff = KernelPlanDiff(from: old, to: KernelPlan(config: config, facts: facts()))
        #expect(diff.routesAdded == [route("192.0.2.0/24"), route("198.18.0.0/15"), route("2001:db8:c::/48")])
        #expect(diff.routesRemoved == [route("203.0.113.0/24")])
        #expect(KernelPlanDiff.prefixes(diff.routesRemoved) == [IPPrefix("203.0.113.0/24")!])
        // 203.0.113.0/24 no longer covers B's endpoint: its pin goes too.
        #expect(diff.pinsRemoved == [pin(via: "198.51.100.1")] && diff.pinsAdded.isEmpty && diff.pinsReplaced.isEmpty)
        #expect(diff.capturesOpened.isEmpty)
    }

    /// A route moving from one peer to another is the same kernel route: nothing to do for it.
    @Test func aPrefixThatChangesPeerIsNoKernelChange() {
        var two = machineA
        two.peers.append(GatewayConfig.Peer(name: "machine-c", remote: IPv4Address("198.51.100.99")!, routes: [IPPrefix("192.0.2.0/24")!]))
        var moved = two
        moved.peers[1].routes = []
        moved.peers[0].routes.append(IPPrefix("192.0.2.0/24")!)
        let diff = KernelPlanDiff(from: KernelPlan(config: two, facts: facts()), to: KernelPlan(config: moved, facts: facts()))
        #expect(diff.routesAdded.isEmpty && diff.routesRemoved.isEmpty, "\(diff.routesAdded) \(diff.routesRemoved)")
    }

    @Test func aPinWhoseRouteChangesIsReplacedAndANewOneAdded() {
        let old = KernelPlan(config: machineA, facts: facts())
        let diff = KernelPlanDiff(from: old, to: KernelPlan(config: machineA, facts: facts(gateway: "198.51.100.2")))
        #expect(diff.pinsReplaced.map(\.old) == [pin(via: "198.51.100.1")] && diff.pinsReplaced.map(\.new) == [pin(via: "198.51.100.2")])
        #expect(diff.pinsAdded.isEmpty && diff.pinsRemoved.isEmpty && diff.routesAdded.isEmpty)

        var unpinned = machineA
        unpinned.peers[0].routes = [IPPrefix("2001:db8:b::/64")!]
        let added = KernelPlanDiff(from: KernelPlan(config: unpinned, facts: facts()), to: old)
        #expect(added.pinsAdded == [pin(via: "198.51.100.1")] && added.routesAdded == [route("203.0.113.0/24")])
    }

    /// The first ghost host on an interface opens its capture; more ghosts on a captured interface
    /// change only its filter, which its responder sets itself.
    @Test func onlyAnInterfaceWithoutACaptureGetsOne() throws {
        let factsB = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, addresses: [endpointB]), "eth1": .init(mtu: 1500)])
        let old = KernelPlan(config: machineB, facts: factsB)
        var config = machineB
        config.ghostHosts.append(GatewayConfig.GhostHost(address: IPv4Address("203.0.113.88")!, interface: "eth0", mac: nil))
        #expect(KernelPlanDiff(from: old, to: KernelPlan(config: config, facts: factsB)).isEmpty)
        config.ghostHosts.append(GatewayConfig.GhostHost(address: IPv4Address("203.0.113.89")!, interface: "eth1", mac: nil))
        let diff = KernelPlanDiff(from: old, to: KernelPlan(config: config, facts: factsB))
        #expect(diff.capturesOpened == [.captureNeighbours(interface: "eth1", filter: "arp and (arp[24:4] = 0xcb007159 or arp[14:4] = 0xcb007159)")],
                "\(diff.capturesOpened)")
    }
}
