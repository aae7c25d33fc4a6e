import Testing
@testable import IPIPCore

@Suite struct ConfigTests {
    func load(_ yaml: String) -> ConfigLoadResult { ConfigLoader.load(yaml: yaml, file: "test.yaml") }

    let minimal = """
    uplink:
      interface: eth0
      address: 198.51.100.37
    peers:
      - name: b
        remote: 203.0.113.86
        routes: [192.0.2.0/24]
    """

    @Test func machineAExampleLoads() throws {
        let result = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "config/machine-a.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let config = try #require(result.config)
        #expect(config.uplink == .init(interface: "eth0", address: IPv4Address("198.51.100.37")!))
        #expect(config.tunnel.address == IPv4Address("203.0.113.87"))
        #expect(config.tunnel.ttl == .inherit && config.tunnel.pmtudisc && config.tunnel.mtu == nil)
        #expect(config.peers.map(\.name) == ["machine-b"])
        #expect(config.peers[0].routes == [IPPrefix("203.0.113.0/24")!, IPPrefix("2001:db8:b::/64")!])
        // The seed's looping tunnel: B's endpoint is inside the tunneled prefix and must be pinned.
        #expect(config.endpointsNeedingPins.map(\.name) == ["machine-b"])
    }

    @Test func machineBExampleLoads() throws {
        let result = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "config/machine-b.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let config = try #require(result.config)
        #expect(config.ghostHosts == [.init(address: IPv4Address("203.0.113.87")!, interface: "eth0", mac: nil),
                                    .init(address: IPv6Address("2001:db8:b::87")!, interface: "eth0", mac: nil)])
        #expect(config.endpointsNeedingPins.isEmpty)
        #expect(config.routingTable.lookup(IPv4Address("203.0.113.87")!) == 0)
    }

    /// `routed` was spelled `libnet` before: configs that say so still load, the same, with a note on the
    /// line that names the new spelling; anything else is an error naming both.
    @Test func deliveryIsKernelOrRoutedAndTheFormerSpellingStillLoadsWithANote() throws {
        let routed = load(minimal + "\ntunnel:\n  delivery: routed\n")
        #expect(routed.diagnostics.isEmpty, "\(routed.diagnostics)")
        #expect(try #require(routed.config).tunnel.delivery == .routed)

        let former = load(minimal + "\ntunnel:\n  delivery: libnet\n")
        #expect(former.config == routed.config)
        let note = try #require(former.diagnostics.first)
        #expect(former.diagnostics.count == 1 && note.severity == .note && note.line == 9 && note.key == "tunnel.delivery")
        #expect(note.description.hasPrefix("test.yaml:9:13: note: tunnel.delivery: `libnet` is the former name of `routed`"), "\(note)")

        let wrong = load(minimal + "\ntunnel:\n  delivery: raw\n")
        #expect(wrong.config == nil)
        #expect(wrong.errors.map(\.key) == ["tunnel.delivery"])
        #expect(wrong.errors.first?.message.contains("is not `kernel`") == true && wrong.errors.first?.message.contains("`routed`") == true)
    }

    @Test func clampMSSIsAutoOffOrAnMSSAndReloadsWithoutARestart() throws {
        #expect(try #require(load(minimal).config).tunnel.clampMSS == .off)
        for (text, setting) in [("auto", TCPMSSClamp.Setting.auto), ("off", .off), ("1300", .fixed(1300)), ("536", .fixed(536))] {
            let result = load(minimal + "\ntunnel: {clamp-mss: \(text)}\n")
            #expect(result.diagnostics.isEmpty && result.config?.tunnel.clampMSS == setting, "\(text): \(result.diagnostics)")
        }
        for text in ["535", "65496", "yes", "-1"] {
            let result = load(minimal + "\ntunnel: {clamp-mss: \(text)}\n")
            #expect(result.config == nil && result.errors.map(\.key) == ["tunnel.clamp-mss"], "\(text)")
            #expect(result.errors.first?.message.contains("or `auto` or `off`") == true, "\(result.errors)")
        }
        let before = try #require(load(minimal).config)
        var after = before
        after.tunnel.clampMSS = .auto
        let diff = ConfigDiff(from: before, to: after)
        #expect(diff.needsRestart.isEmpty && diff.tunnelOptionsChanged && diff.descriptions.contains("tunnel ttl/tos/pmtudisc/min-pmtu/clamp-mss changed"))
    }

    @Test func invalidExampleReportsEveryMistakeWithItsLine() {
        let result = ConfigLoader.load(yaml: Repository.text("config/invalid-example.yaml"), file: "invalid.yaml")
        #expect(result.config == nil)
        let found = result.errors.map { "\($0.line ?? 0) \($0.key)" }
        #expect(found == [
            "4 uplink.address",          // bad address
            "9 tunnel.pmtudisc",         // fixed ttl without pmtudisc
            "10 tunnel.mtu",             // MTU out of range
            "13 peers[0].remote",        // endpoint = tunnel address
            "15 peers[0].keepalive",     // unknown key
            "19 peers[1].routes[0]",     // duplicate prefix
            "20 peers[1].routes[1]",     // host bits set
            "22 ghost-hosts[0].address", // ghost not covered by any route
        ])
        #expect(result.errors.allSatisfy { $0.description.hasPrefix("invalid.yaml:\($0.line!):") })
    }

    @Test func defaultsAreFilledIn() throws {
        let config = try #require(load(minimal).config)
        #expect(config.tunnel == GatewayConfig.Tunnel())
        #expect(config.tunnel.name == "tunl" && config.tunnel.tos == .fixed(0))
        #expect(config.ghostHosts.isEmpty)
    }

    @Test func syntaxErrorsNameTheLine() {
        let result = load("uplink:\n  interface: eth0\n   address: [unclosed\n")
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.line != nil)
        #expect(load("").errors.first?.message.contains("empty") == true)
    }

    @Test func unknownKeysSuggestTheNearestOne() {
        let result = load(minimal + "\ntunnel:\n  tll: 64\n")
        #expect(result.errors.count == 1)
        #expect(result.errors[0].key == "tunnel.tll")
        #expect(result.errors[0].message.contains("did you mean `ttl`"))
        #expect(result.errors[0].line == 9)
    }

    @Test func tunnelOptionValues() throws {
        let config = try #require(load(minimal + "\ntunnel:\n  ttl: 64\n  tos: inherit\n  mtu: 1400\n  pmtudisc: on\n").config)
        #expect(config.tunnel.ttl == .fixed(64) && config.tunnel.tos == .inherit && config.tunnel.mtu == 1400)
        #expect(try #require(load(minimal + "\ntunnel:\n  tos: 0x20\n").config).tunnel.tos == .fixed(0x20))
        #expect(load(minimal + "\ntunnel:\n  ttl: 0\n").errors.first?.message.contains("inherit") == true)
        #expect(load(minimal + "\ntunnel:\n  ttl: 256\n").errors.count == 1)
        #expect(load(minimal + "\ntunnel:\n  mtu: 65516\n").errors.count == 1)
        #expect(load(minimal + "\ntunnel:\n  mtu: 68\n").errors.isEmpty)
        #expect(load(minimal + "\ntunnel:\n  pmtudisc: maybe\n").errors.count == 1)
        #expect(load(minimal + "\ntunnel:\n  tos: 0x21\n").warnings.count == 1)
    }

    @Test func duplicatesAreErrors() {
        let yaml = """
        uplink: {interface: eth0, address: 198.51.100.37}
        peers:
          - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24, 192.0.2.0/24]}
          - {name: b, remote: 203.0.113.86, routes: [198.18.0.0/15]}
        ghost-hosts:
          - {address: 192.0.2.9, interface: eth1}
          - {address: 192.0.2.9, interface: eth1}
        """
        let keys = load(yaml).errors.map(\.key)
        #expect(keys.contains("peers[0].routes[1]"))
        #expect(keys.contains("peers[1].name"))
        #expect(keys.contains("peers[1].remote"))
        #expect(keys.contains("ghost-hosts[1].address"))
    }

    @Test func endpointsThatCannotBePinned() {
        let ghostEndpoint = """
        uplink: {interface: eth0, address: 198.51.100.37}
        peers:
          - {name: b, remote: 192.0.2.9, routes: [192.0.2.0/24]}
        ghost-hosts:
          - {address: 192.0.2.9, interface: eth1}
        """
        #expect(load(ghostEndpoint).errors.map(\.key) == ["peers[0].remote"])
        let ownEndpoint = minimal.replacingOccurrences(of: "203.0.113.86", with: "198.51.100.37")
        #expect(load(ownEndpoint).errors.map(\.key) == ["peers[0].remote"])
    }

    @Test func missingAndMistypedSections() {
        let keys = load("uplink: eth0\ntunnel: [1]\n").errors.map(\.key)
        #expect(keys.contains("peers"))
        #expect(keys.contains("uplink"))
        #expect(keys.contains("tunnel"))
        #expect(load(minimal + "\nghost-hosts:\n  - {address: 192.0.2.1, interface: eth0, mac: 01:00:5e:00:00:01}\n").errors.map(\.key) == ["ghost-hosts[0].mac"])
        #expect(load(minimal.replacingOccurrences(of: "name: b", with: "name: 'b c'")).errors.map(\.key) == ["peers[0].name"])
        #expect(load(minimal + "\ntunnel:\n  name: a-very-long-interface-name\n").errors.map(\.key) == ["tunnel.name"])
    }

    /// What `status` and `reload` read to find the control socket: the tunnel's name, from its block
    /// alone when it has one, from the whole file otherwise.
    @Test func theTunnelNameIsFoundInEveryShapeOfFile() {
        #expect(ConfigLoader.tunnelName(yaml: "uplink: {interface: eth0}\ntunnel:\n  # the device\n  name: tun7\n\n  mtu: 1400\npeers: []\n") == "tun7")
        #expect(ConfigLoader.tunnelName(yaml: "tunnel: {name: tun8}\npeers: []\n") == "tun8")
        #expect(ConfigLoader.tunnelName(yaml: "{uplink: {interface: eth0}, tunnel: {name: tun9}}\n") == "tun9")
        #expect(ConfigLoader.tunnelName(yaml: "peers:\n  - name: tunnel-a\n") == "tunl")
        #expect(ConfigLoader.tunnelName(yaml: "uplink: {interface: eth0}\n") == "tunl")
        #expect(ConfigLoader.tunnelName(yaml: Repository.text("config/machine-a.yaml")) == "tunl")
    }
}

/// Configs with IPv6: IPv4 only, IPv6 routes only, both; every mistake located by line and key.
@Suite struct ConfigIPv6Tests {
    func load(_ yaml: String) -> ConfigLoadResult { ConfigLoader.load(yaml: yaml, file: "six.yaml") }

    @Test func theDualStackExamplesLoad() throws {
        let a = try #require(ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config)
        #expect(a.tunnel.address6 == IPv6Address("2001:db8:b::87") && a.peers[0].routes.filter(\.isIPv6) == [IPPrefix("2001:db8:b::/64")!])
        #expect(a.peers[0].allowedSources.filter(\.isIPv6) == [IPPrefix("2001:db8:b::/64")!], "the default: the peer's IPv6 routes")
        let b = try #require(ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config)
        #expect(b.ghostHosts.filter(\.address.isIPv6) == [.init(address: IPv6Address("2001:db8:b::87")!, interface: "eth0", mac: nil)])
        #expect(b.routingTable.lookup(IPv6Address("2001:db8:b::87")!) == 0 && b.carriesIPv6)
    }

    @Test(arguments: [
        ("routes: [192.0.2.0/24]", false, 1, 0),
        ("routes: [2001:db8:2::/64]", true, 0, 1),
        ("routes: [192.0.2.0/24, 2001:db8:2::/64, 2001:db8:3::/48]", true, 1, 2),
    ])
    func mixedRoutesLoad(routes: String, carriesIPv6: Bool, ipv4: Int, ipv6: Int) throws {
        let config = try #require(load("""
            uplink: {interface: eth0, address: 198.51.100.37}
            peers:
              - name: b
                remote: 203.0.113.86
                \(routes)
            """).config)
        #expect(config.carriesIPv6 == carriesIPv6 && config.peers[0].routes.filter { !$0.isIPv6 }.count == ipv4 && config.peers[0].routes.filter(\.isIPv6).count == ipv6)
    }

    @Test func everyIPv6MistakeIsLocated() {
        let result = load("""
            uplink:
              interface: eth0
              address: 198.51.100.37
            tunnel:
              mtu: 1200
              address6: ff02::1
            peers:
              - name: b
                remote: 203.0.113.86
                routes:
                  - 192.0.2.0/24
                  - 2001:db8:2::1/64
                  - 2001:db8:4::/64
                  - 2001:db8::zz/64
              - name: c
                remote: 203.0.113.87
                routes: [2001:db8:4::/64]
                accept-sources: [192.0.2.128/25, "::/0"]   # quoted: a flow list reads a bare "::" as a key
            ghost-hosts:
              - address: 2001:db8:9::1
                interface: eth1
              - address: fe80::1
                interface: eth1
            """)
        #expect(result.config == nil)
        let found = result.diagnostics.map { "\($0.line ?? 0) \($0.key) \($0.severity)" }
        #expect(found == [
            "5 tunnel.mtu error",                   // below 1280 with IPv6 routes
            "6 tunnel.address6 error",              // multicast
            "12 peers[0].routes[1] error",          // host bits
            "14 peers[0].routes[3] error",          // not an address
            "17 peers[1].routes[0] error",          // routed twice
            "18 peers[1].accept-sources warning",   // ::/0
            // Whether a route covers the ghosts is not asked while one route (line 14) could not be read.
            "22 ghost-hosts[1].address error",      // link-local
        ], "\(result.diagnostics)")
        #expect(result.diagnostics.first { $0.key == "peers[0].routes[1]" }?.message.contains("did you mean 2001:db8:2::/64?") == true)
        #expect(result.diagnostics.first { $0.key == "peers[1].routes[0]" }?.message.contains("peers[0].routes[2], line 13") == true)
    }

    @Test func reloadsDiffIPv6AndRestartForTurningItOn() throws {
        let old = try #require(ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config)
        var new = old
        new.peers[0].routes = new.peers[0].routes.filter { !$0.isIPv6 } + [IPPrefix("2001:db8:b::88/128")!]
        new.ghostHosts = new.ghostHosts.filter { !$0.address.isIPv6 } + [.init(address: IPv6Address("2001:db8:b::88")!, interface: "eth0", mac: nil)]
        let diff = ConfigDiff(from: old, to: new)
        #expect(diff.needsRestart.isEmpty)
        #expect(diff.routesAdded == [IPPrefix("2001:db8:b::88/128")!] && diff.routesRemoved == [IPPrefix("2001:db8:b::87/128")!])
        #expect(diff.ghostsAdded == [IPAddress("2001:db8:b::88")!] && diff.acceptSourcesChanged == ["machine-a"])
        var ipv4Only = old
        ipv4Only.peers[0].routes.removeAll(where: \.isIPv6)
        ipv4Only.ghostHosts.removeAll(where: \.address.isIPv6)
        #expect(ConfigDiff(from: ipv4Only, to: old).needsRestart.contains { $0.contains("carries IPv6") })
    }
}
