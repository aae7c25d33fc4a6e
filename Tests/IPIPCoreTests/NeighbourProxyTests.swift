import Testing
@testable import IPIPCore

/// One interface's neighbour proxy: ARP for its IPv4 ghost hosts and NDP for its IPv6 ones behind one
/// set of decisions, as machine B's eth0 has them in config/machine-b.yaml.
@Suite struct NeighbourProxyTests {
    let macB = MACAddress("02:00:00:00:00:86")!
    let ghost4 = IPAddress.v4(IPv4Address("203.0.113.87")!)
    let ghost6 = IPAddress.v6(IPv6Address("2001:db8:b::87")!)

    func machineB() throws -> GatewayConfig {
        try #require(ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "machine-b.yaml").config)
    }

    func handle(_ frame: [UInt8], _ proxy: inout NeighbourProxy) -> NeighbourProxy.Decision {
        frame.withUnsafeBytes { proxy.handle($0, now: 5) }
    }

    @Test func arpGoesToProxyARPAndNDPToProxyNDPEachAnsweredForItsGhost() throws {
        var proxy = NeighbourProxy(interface: "eth0", mac: macB, config: try machineB(), announcing: true, now: 0)
        #expect(handle(Fixture.bytes("arp-request"), &proxy) == .reply(ghost: ghost4, frame: Fixture.bytes("arp-reply")))
        #expect(handle(Fixture.bytes("ndp-ns"), &proxy) == .reply(ghost: ghost6, frame: Fixture.bytes("ndp-na-solicited")))
        #expect(handle(Fixture.bytes("ndp-ns-dad"), &proxy) == .ignore(.probe, ghost: ghost6))
        #expect(handle([0x00, 0x01], &proxy) == .ignore(.malformed, ghost: nil))
    }

    @Test func bothFamiliesAreAnnouncedOnOneScheduleAndAStandbyAnnouncesNothing() throws {
        let config = try machineB()
        var active = NeighbourProxy(interface: "eth0", mac: macB, config: config, announcing: true, now: 0)
        #expect(Set(active.dueAnnouncements(now: 0).map(\.ghost)) == [ghost4, ghost6])
        #expect(active.dueAnnouncements(now: 0.5).isEmpty)
        #expect(Set(active.dueAnnouncements(now: 2).map(\.ghost)) == [ghost4, ghost6])   // RFC 5227: twice, 2 s apart
        #expect(active.dueAnnouncements(now: 60).isEmpty)

        var standby = NeighbourProxy(interface: "eth0", mac: macB, config: config, announcing: false, now: 0)
        #expect(standby.dueAnnouncements(now: 10).isEmpty)
        standby.announceAll(now: 10)   // it became the active box
        #expect(Set(standby.dueAnnouncements(now: 10).map(\.ghost)) == [ghost4, ghost6])
        standby.cancelAnnouncements()
        #expect(standby.dueAnnouncements(now: 12).isEmpty)
    }

    @Test func aReloadAnnouncesOnlyNewGhostsAndAStandbyNone() throws {
        let before = try machineB()
        var after = before
        after.ghostHosts.append(GatewayConfig.GhostHost(address: IPv6Address("2001:db8:b::88")!, interface: "eth0", mac: nil))
        var proxy = NeighbourProxy(interface: "eth0", mac: macB, config: before, announcing: true, now: 0)
        _ = proxy.dueAnnouncements(now: 0)
        _ = proxy.dueAnnouncements(now: 2)
        proxy.reconfigure(for: after, interface: "eth0", previous: before, announcing: true, now: 10)
        #expect(proxy.dueAnnouncements(now: 10).map(\.ghost) == [.v6(IPv6Address("2001:db8:b::88")!)])

        var standby = NeighbourProxy(interface: "eth0", mac: macB, config: before, announcing: false, now: 0)
        standby.reconfigure(for: after, interface: "eth0", previous: before, announcing: false, now: 10)
        #expect(standby.dueAnnouncements(now: 10).isEmpty)
        #expect(standby.ndp.ghosts.count == 2 && standby.arp.ghosts.count == 1)
    }
}
