import Testing
@testable import IPIPCore

/// `ipipd status` in text: what the README promises is there, bytes in IEC units, times as ages.
@Suite struct StatusTextTests {
    @Test func bytesAreInIECUnits() {
        #expect(GatewayStatus.iec(0) == "0 B" && GatewayStatus.iec(1023) == "1023 B")
        #expect(GatewayStatus.iec(1536) == "1.5 KiB")
        #expect(GatewayStatus.iec(1_500_000) == "1.43 MiB")
        #expect(GatewayStatus.iec(35_000_000) == "33.4 MiB")
        #expect(GatewayStatus.iec(1_100_000_000_000) == "1 TiB")
        #expect(GatewayStatus.iec(250 << 30) == "250 GiB")
    }

    @Test func theTextShowsLoopsCaptureAccountingAndLastReceived() {
        let config = MachineA.config
        let counters = TunnelCounters(peerNames: config.peers.map(\.name))
        counters.peers[0].decapsulatedPackets.add(3)
        counters.peers[0].decapsulatedBytes.add(3 << 20)
        counters.peers[0].lastReceived.set(1_000_000_000_000)   // ms
        counters.capture.frames.add(5)
        counters.capture.delivered.add(3)
        counters.capture.dropped.add(2)
        let capture = LoopHealth(name: "ipipd-capture")
        capture.set(.running)
        let arp = LoopHealth(name: "ipipd-neigh-eth0")
        arp.noteError("Network is down", linkDown: true)
        let status = GatewayStatus(version: "0.1.0", pid: 1, configFile: "a.yaml", configSHA256: "00", startedAt: 0, uptimeSeconds: 90,
                                   config: config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()],
                                   loops: [capture, arp], now: 0)
        let text = status.text(now: 1_000_000_042)
        #expect(text.contains("3 pkts / 3 MiB"), "\(text)")
        #expect(text.contains("42s ago"), "\(text)")
        #expect(text.contains("ipipd-capture: running\n") && text.contains("ipipd-neigh-eth0: waiting for the link, 1 read errors (last: Network is down)"), "\(text)")
        #expect(text.contains("5 frames taken") && text.contains("3 delivered, 2 dropped") && text.contains("unaccounted 0"), "\(text)")
        let silent = TunnelCounters(peerNames: config.peers.map(\.name))
        #expect(GatewayStatus(version: "0.1.0", pid: 1, configFile: "a.yaml", configSHA256: "00", startedAt: 0, uptimeSeconds: 1,
                              config: config, tunnelMTU: 1480, counters: silent, paths: [PeerPathState()], now: 0)
                    .text(now: 5).contains(" never "))
    }

    /// `ipipd status --check`, keepalived's health check: every loop running and the TUN device there.
    @Test func healthNamesEveryLoopThatIsNotRunningAndAMissingTunnel() {
        let config = MachineA.config
        let counters = TunnelCounters(peerNames: config.peers.map(\.name))
        func status(_ loops: [LoopHealth], tunnelPresent: Bool = true) -> GatewayStatus {
            GatewayStatus(version: "0.1.0", pid: 1, configFile: "a.yaml", configSHA256: "00", startedAt: 0, uptimeSeconds: 9,
                          config: config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()], loops: loops,
                          tunnelPresent: tunnelPresent, now: 0)
        }
        let capture = LoopHealth(name: "ipipd-capture")
        capture.set(.running)
        let tun = LoopHealth(name: "ipipd-tun")
        tun.set(.running)
        #expect(status([capture, tun]).healthProblems.isEmpty)
        #expect(!status([capture, tun]).text(now: 9).contains("UNHEALTHY"))
        #expect(status([capture, tun], tunnelPresent: false).text(now: 9).contains("UNHEALTHY (`status --check` fails): the TUN device"))
        #expect(status([capture, tun], tunnelPresent: false).healthProblems == ["the TUN device \(config.tunnel.name) is gone"])
        #expect(status([]).healthProblems == ["no dataplane loop runs"])
        for (state, label) in [(LoopHealth.State.starting, "starting"), (.failed, "failed"), (.stopped, "stopped")] {
            tun.set(state)
            #expect(status([capture, tun]).healthProblems == ["ipipd-tun is \(label)"])
        }
        tun.noteError("Network is down", linkDown: true)
        capture.noteError("No buffer space available")
        #expect(status([capture, tun]).healthProblems
                    == ["ipipd-capture is retrying (last error: No buffer space available)",
                        "ipipd-tun is waiting for the link (last error: Network is down)"])
    }
}
