import Testing
@testable import IPIPCore

/// What an admin reads when a file is wrong (issue 23): one mistake gives one error, at its cause; YAML's
/// own mistakes in words that name the fix; legal but risky layouts explained.
@Suite struct ConfigMessagesTests {
    func load(_ yaml: String) -> ConfigLoadResult { ConfigLoader.load(yaml: yaml, file: "gw.yaml") }

    let uplink = "uplink:\n  interface: eth0\n  address: 192.0.2.1\n"

    /// A typo in one address and one unknown key: those two, not "at least one peer is needed" and one
    /// "no peer route covers" per ghost host that the unreadable peer's routes would have covered.
    @Test func aMistakeIsReportedOnceAtItsCause() {
        let result = load(uplink + """
            peers:
              - name: a
                remote: 192.0.2.999
                routes: [198.18.0.0/24]
                keepalive: 5
            ghost-hosts:
              - {address: 198.18.0.5, interface: eth1}
              - {address: 198.18.0.6, interface: eth1}
            """)
        #expect(result.errors.map(\.key) == ["peers[0].remote", "peers[0].keepalive"], "\(result.errors.map(\.description))")
        // A route that cannot be read keeps its ghost hosts quiet as well.
        let badRoute = load(uplink + "peers:\n  - {name: a, remote: 192.0.2.9, routes: [198.18.0.0/33]}\n"
                            + "ghost-hosts:\n  - {address: 198.18.0.5, interface: eth1}\n")
        #expect(badRoute.errors.map(\.key) == ["peers[0].routes[0]"], "\(badRoute.errors.map(\.description))")
        // Without any mistake, the dependent checks still speak.
        let uncovered = load(uplink + "peers:\n  - {name: a, remote: 192.0.2.9, routes: [198.18.0.0/24]}\n"
                             + "ghost-hosts:\n  - {address: 198.18.1.5, interface: eth1}\n")
        #expect(uncovered.errors.map(\.key) == ["ghost-hosts[0].address"])
        #expect(load(uplink + "peers: []\n").errors.map(\.key) == ["peers"])
    }

    @Test func aTabInTheIndentationIsNamed() {
        let result = load("uplink:\n\tinterface: eth0\n  address: 192.0.2.1\npeers: []\n")
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.description == "gw.yaml:2:1: error: a tab in the indentation: YAML indents with spaces only; replace the tab with spaces")
        // A tab inside a value is no indentation.
        #expect(load(uplink + "peers:\n  - {name: a, remote: 192.0.2.9,\troutes: [198.18.0.0/24]}\n").errors.isEmpty)
    }

    /// The whole key path, at the second occurrence, with the first one's line — block and flow style.
    @Test func aDuplicateKeyNamesItsPathAndBothOccurrences() {
        let block = load(uplink + "peers:\n  - name: a\n    remote: 192.0.2.9\n    routes: [198.18.0.0/24]\n    remote: 192.0.2.10\n")
        #expect(block.errors.first?.description.hasPrefix("gw.yaml:8:5: error: peers[0].remote: duplicate key: already given at line 6, column 5") == true,
                "\(block.errors.map(\.description))")
        let flow = load(uplink + "peers:\n  - {name: a, remote: 192.0.2.9, remote: 192.0.2.10}\n")
        #expect(flow.errors.first?.key == "peers[0].remote" && flow.errors.first?.line == 5, "\(flow.errors.map(\.description))")
        let top = load(uplink + "peers: []\nuplink:\n  interface: eth1\n")
        #expect(top.errors.first?.key == "uplink" && top.errors.first?.line == 5, "\(top.errors.map(\.description))")
    }

    /// One peer's prefix inside another's: a warning that says which peer gets what, and what the outer
    /// peer's default accept-sources then allow — for both families; an explicit accept-sources is not blamed.
    @Test func nestedPrefixesAcrossPeersAreExplained() throws {
        let result = load(uplink + """
            peers:
              - {name: a, remote: 192.0.2.9, routes: [10.0.0.0/8, "2001:db8::/32"]}
              - {name: b, remote: 192.0.2.10, routes: [10.1.0.0/16, "2001:db8:1::/48"], accept-sources: [10.1.0.0/16]}
              - {name: c, remote: 192.0.2.11, routes: [10.2.0.0/16], accept-sources: [10.2.0.0/16]}
              - {name: d, remote: 192.0.2.12, routes: [10.2.5.0/24]}
            """)
        #expect(result.errors.isEmpty && result.config != nil)
        let warnings = result.warnings.map(\.description)
        #expect(warnings.count == 4, "\(warnings)")
        #expect(warnings.contains { $0.contains("peers[1].routes[0]: 10.1.0.0/16 lies inside 10.0.0.0/8, routed to `a` by peers[0].routes[0], line 5")
                                    && $0.contains("`a` may send with `b`'s source addresses") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("peers[1].routes[1]: 2001:db8:1::/48 lies inside 2001:db8::/32") })
        // d's /24 lies inside c's /16 (the innermost), inside a's /8: reported once, against c, whose
        // accept-sources are its own.
        let inner = try #require(warnings.first { $0.contains("10.2.5.0/24 lies inside") })
        #expect(inner.contains("inside 10.2.0.0/16, routed to `c`") && !inner.contains("may send"), "\(inner)")
        // One peer's own nested prefixes are its business.
        #expect(load(uplink + "peers:\n  - {name: a, remote: 192.0.2.9, routes: [10.0.0.0/8, 10.1.0.0/16]}\n").warnings.isEmpty)
    }

    /// What `check` prints for values left out reads back as them.
    @Test func autoMeansTheDefault() throws {
        let result = load(uplink + "tunnel: {mtu: auto}\npeers:\n  - {name: a, remote: 192.0.2.9, routes: [198.18.0.0/24]}\n"
                          + "ghost-hosts:\n  - {address: 198.18.0.5, interface: eth1, mac: auto}\n")
        let config = try #require(result.config, "\(result.diagnostics.map(\.description))")
        #expect(config.tunnel.mtu == nil && config.ghostHosts.first?.mac == nil)
    }
}
