import Testing
@testable import IPIPCore

@Suite struct ConfigDiffTests {
    func config(_ yaml: String) -> GatewayConfig { ConfigLoader.load(yaml: yaml, file: "t").config! }
    let base = """
    uplink: {interface: eth0, address: 198.51.100.37}
    peers:
      - {name: b, remote: 203.0.113.86, routes: [192.0.2.128/25]}
    ghost-hosts:
      - {address: 192.0.2.200, interface: lan0}
    """

    @Test func identicalConfigsHaveNoDiff() {
        #expect(ConfigDiff(from: config(base), to: config(base)).isEmpty)
    }

    @Test func peersRoutesAndGhostsAreDiffed() {
        let changed = """
        uplink: {interface: eth0, address: 198.51.100.37}
        tunnel: {ttl: 64}
        peers:
          - {name: b, remote: 203.0.113.86, routes: [192.0.2.128/25, 198.18.0.0/24]}
          - {name: c, remote: 203.0.113.99, routes: [198.18.1.0/24]}
        ghost-hosts:
          - {address: 192.0.2.201, interface: lan0}
        """
        let diff = ConfigDiff(from: config(base), to: config(changed))
        #expect(diff.needsRestart.isEmpty)
        #expect(diff.peersAdded == ["c"] && diff.peersRemoved.isEmpty)
        #expect(diff.routesAdded == [IPPrefix("198.18.0.0/24")!, IPPrefix("198.18.1.0/24")!])
        #expect(diff.ghostsAdded == [IPAddress("192.0.2.201")!] && diff.ghostsRemoved == [IPAddress("192.0.2.200")!])
        #expect(diff.tunnelOptionsChanged)
        #expect(diff.descriptions.contains("peer c added"))
        let back = ConfigDiff(from: config(changed), to: config(base))
        #expect(back.peersRemoved == ["c"] && back.routesRemoved.count == 2)
    }

    @Test func handlesNeedARestart() {
        let otherUplink = base.replacingOccurrences(of: "198.51.100.37", with: "198.51.100.38")
        #expect(ConfigDiff(from: config(base), to: config(otherUplink)).needsRestart.count == 1)
        let otherMTU = base + "\ntunnel: {mtu: 1400}\n"
        #expect(ConfigDiff(from: config(base), to: config(otherMTU)).needsRestart == ["tunnel.mtu"])
    }

    @Test func movedPrefixesAndEndpoints() {
        let moved = """
        uplink: {interface: eth0, address: 198.51.100.37}
        peers:
          - {name: b, remote: 203.0.113.87, routes: []}
          - {name: c, remote: 203.0.113.99, routes: [192.0.2.128/25]}
        ghost-hosts:
          - {address: 192.0.2.200, interface: lan0}
        """
        let diff = ConfigDiff(from: config(base), to: config(moved))
        #expect(diff.routesMoved == [IPPrefix("192.0.2.128/25")!] && diff.routesAdded.isEmpty && diff.routesRemoved.isEmpty)
        #expect(diff.endpointsChanged == ["b"])
    }
}
