import Testing
@testable import IPIPCore

/// Issue 27, item 3: both boxes of an HA pair active (the VRRP between them cut). Each sees the other
/// claim the endpoint and the ghosts; a claim that outlasts a switch-over is a split brain.
@Suite struct SplitBrainTests {
    let pair = ConfigLoader.load(yaml: Repository.text("config/ha-pair-b.yaml"), file: "config/ha-pair-b.yaml")
    let partner = MACAddress("02:00:00:00:00:82")!
    let ours = MACAddress("02:00:00:00:00:81")!

    @Test func aClaimCountsWhenTheBoxIsStillActiveASecondLater() {
        var watch = SplitBrainWatch(confirmationSeconds: 1)
        watch.claimed("203.0.113.86", by: partner, now: 10)
        #expect(watch.confirmed(active: true, now: 10.5).isEmpty)
        #expect(watch.confirmed(active: true, now: 11) == [.init(mac: partner, address: "203.0.113.86", at: 10)])
        #expect(watch.confirmed(active: true, now: 20).isEmpty)
    }

    /// At a failback the old master sees its successor's first announcement in the milliseconds before
    /// keepalived takes the address from it: no split brain.
    @Test func aClaimSeenJustBeforeBecomingTheStandbyIsForgotten() {
        var watch = SplitBrainWatch(confirmationSeconds: 1)
        watch.claimed("203.0.113.87", by: partner, now: 10)
        #expect(watch.confirmed(active: false, now: 10.01).isEmpty)
        #expect(watch.confirmed(active: true, now: 12).isEmpty)
    }

    @Test func pendingClaimsAreBoundedAndKeepTheNewest() {
        var watch = SplitBrainWatch()
        for n in 0..<1000 { watch.claimed("203.0.113.87", by: partner, now: Double(n) / 1000) }
        #expect(watch.pending.count == SplitBrainWatch.maximumPending)
        let confirmed = watch.confirmed(active: true, now: 5)
        #expect(confirmed.count == SplitBrainWatch.maximumPending && confirmed.first?.at == Double(1000 - SplitBrainWatch.maximumPending) / 1000)
    }

    @Test func theUplinkResponderReportsAnotherMachinesClaimOfTheEndpointOnly() throws {
        let config = try #require(pair.config)
        var responder = ProxyARPResponder(interface: "eth0", mac: ours, config: config, now: 0)
        #expect(responder.endpoint == IPv4Address("203.0.113.86")!)
        let claim = ARPBuilder.announcement(mac: partner, address: IPv4Address("203.0.113.86")!)
        #expect(claim.withUnsafeBytes { responder.handle($0, now: 1) } == .endpointClaim(endpoint: IPv4Address("203.0.113.86")!, mac: partner))
        // The box's own frames (the kernel's, for the address it holds) claim nothing.
        let own = ARPBuilder.announcement(mac: ours, address: IPv4Address("203.0.113.86")!)
        #expect(own.withUnsafeBytes { responder.handle($0, now: 1) } == .ignore(.ownFrame, ghost: nil))
        // Another interface, or a box that is no HA pair's, watches no endpoint.
        #expect(ProxyARPResponder(interface: "eth1", mac: ours, config: config, now: 0).endpoint == nil)
        var single = config
        single.uplink.standbyWhenAbsent = false
        responder = ProxyARPResponder(interface: "eth0", mac: ours, config: single, now: 0)
        #expect(claim.withUnsafeBytes { responder.handle($0, now: 1) } == .ignore(.notAGhost, ghost: nil))
    }

    @Test func theHAUplinkCaptureWatchesTheEndpointEvenWithoutGhostsThere() throws {
        var config = try #require(pair.config)
        #expect(CaptureFilter.neighbourProxy(interface: "eth0", config: config)
                == "arp and (arp[24:4] = 0xcb007157 or arp[14:4] = 0xcb007157 or arp[14:4] = 0xcb007156)")
        config.ghostHosts = config.ghostHosts.map { var ghost = $0; ghost.interface = "eth1"; return ghost }
        #expect(config.proxyCaptureInterfaces == ["eth0", "eth1"])
        #expect(CaptureFilter.neighbourProxy(interface: "eth0", config: config) == "arp and (arp[14:4] = 0xcb007156)")
        let facts = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, mac: ours, addresses: [IPv4Address("203.0.113.81")!]),
                                             "eth1": .init(mtu: 1500, mac: partner, addresses: [])])
        let plan = KernelPlan(config: config, facts: facts)
        #expect(plan.changes.contains(.captureNeighbours(interface: "eth0", filter: "arp and (arp[14:4] = 0xcb007156)")), "\(plan.changes)")
        #expect(plan.notes.contains { $0.hasPrefix("split brain") })
    }

    @Test func statusAndMetricsShowTheClaims() throws {
        let config = try #require(pair.config)
        let counters = TunnelCounters(peerNames: config.peers.map(\.name))
        counters.splitBrain.note(.init(mac: partner, address: "203.0.113.86", at: 100))
        counters.splitBrain.note(.init(mac: partner, address: "203.0.113.87", at: 101))
        let status = GatewayStatus(version: "0.1.0", pid: 1, configFile: "b.yaml", configSHA256: "00", startedAt: 0, uptimeSeconds: 9,
                                   config: config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()], now: 0)
        #expect(status.role.splitBrainClaims == 2)
        #expect(status.role.lastSplitBrainClaim == .init(mac: "\(partner)", address: "203.0.113.87", at: 101))
        #expect(status.text(now: 104).contains("SPLIT BRAIN? 2 claim(s) by another machine while this box was active; last: \(partner) claimed 203.0.113.87 3"))
        #expect(String(decoding: status.prometheus(process: nil), as: UTF8.self).contains("ipipd_split_brain_claims_total 2"))
    }
}
