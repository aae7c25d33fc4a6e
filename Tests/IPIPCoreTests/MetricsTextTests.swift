import Testing
@testable import IPIPCore

/// The metrics as Prometheus reads them: the exposition format's rules, every series there from the
/// start, the same order at every scrape, and a hub's scrape in time linear in its series.
@Suite struct MetricsTextTests {
    func status(peers: Int = 1, config: GatewayConfig = MachineA.config) -> GatewayStatus {
        var config = config
        if peers > 1 {
            config.peers = (0..<peers).map { index in
                GatewayConfig.Peer(name: "site-\(index)", remote: IPv4Address(UInt32(0xC612_0000) + UInt32(index)), routes: [])
            }
        }
        let counters = TunnelCounters(peerNames: config.peers.map(\.name), ghostHosts: [("203.0.113.87", "eth\"0")])
        return GatewayStatus(version: "0.1.0", pid: 1, configFile: "a.yaml", configSHA256: "00", startedAt: 1_700_000_000, uptimeSeconds: 1,
                             config: config, tunnelMTU: 1480, counters: counters, paths: config.peers.map { _ in PeerPathState() }, now: 0)
    }

    func text(_ status: GatewayStatus, process: ProcessFacts? = nil) -> String { String(decoding: status.prometheus(process: process), as: UTF8.self) }

    @Test func everySeriesIsThereFromTheStartWithItsFamily() {
        let output = text(status(), process: ProcessFacts(cpuSeconds: 1.5, residentBytes: 4096, virtualBytes: 8192, startTime: 1_700_000_000,
                                                         openDescriptors: 12, maximumDescriptors: 1024))
        #expect(output.contains("ipipd_build_info{version=\"0.1.0\"} 1.0\n"))
        #expect(output.contains("ipipd_peer_drops_total{peer=\"machine-b\",reason=\"source-not-allowed\"} 0\n"))
        #expect(output.contains("ipipd_drops_total{reason=\"capture-drop\"} 0\n"))
        #expect(output.contains("ipipd_peer_last_received_timestamp_seconds{peer=\"machine-b\"} 0.0\n"))
        #expect(output.contains("process_cpu_seconds_total 1.5\n") && output.contains("process_max_fds 1024.0\n"))
        // A label value's quote is escaped.
        #expect(output.contains("ipipd_ghost_neighbour_replies_total{ghost=\"203.0.113.87\",interface=\"eth\\\"0\"} 0\n"), "\(output)")
        // The neighbour proxy's former metric names stay for one release, with the same samples.
        for family in GatewayStatus.ghostFamilies {
            let samples = { (name: String) in output.split(separator: "\n").filter { $0.hasPrefix(name + "{") }.map { $0.dropFirst(name.count) } }
            #expect(!samples(family.name).isEmpty && samples(family.name) == samples(family.formerName), "\(family.formerName)")
            #expect(output.contains("# HELP \(family.formerName) Former name of \(family.name)"))
        }
        // Each family once, HELP then TYPE, then its samples and nothing else until the next.
        var seen: Set<String> = []
        var current = ""
        for line in output.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                current = String(line.split(separator: " ")[2])
                #expect(seen.insert(current).inserted, "\(current) twice")
            } else if line.hasPrefix("# TYPE ") {
                #expect(line.split(separator: " ")[2] == current)
            } else {
                #expect(line.hasPrefix(current + "{") || line.hasPrefix(current + " "), "\(line) outside its family \(current)")
            }
        }
        #expect(seen.count >= 30)
    }

    @Test func theOrderIsTheSameAtEveryScrape() {
        let one = status(peers: 50)
        #expect(text(one) == text(one))
        let lines = text(one).split(separator: "\n").filter { $0.hasPrefix("ipipd_peer_packets_total{") }
        #expect(lines.first?.contains("site-0") == true && lines.last?.contains("site-49") == true)
    }

    /// A hub's scrape holds every peer's series, each once (its time is the micro-benchmark's to measure).
    @Test func aHubsScrapeHoldsEveryPeersSeries() {
        let lines = text(status(peers: 10_000)).split(separator: "\n")
        let perPeer = 1 + 8 + 2 + DropReason.attributableToAPeer.count + 3   // info, traffic, …
        #expect(lines.filter { $0.contains("peer=\"site-") }.count == 10_000 * perPeer)
        #expect(Set(lines.filter { !$0.hasPrefix("#") }).count == lines.filter { !$0.hasPrefix("#") }.count)
    }
}
