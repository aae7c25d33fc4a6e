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
        #expect(config.peers[0].routes == [IPv4Prefix("203.0.113.0/24")!])
        // The seed's looping tunnel: B's endpoint is inside the tunneled prefix and must be pinned.
        #expect(config.endpointsNeedingPins.map(\.name) == ["machine-b"])
    }

    @Test func machineBExampleLoads() throws {
        let result = ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "config/machine-b.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let config = try #require(result.config)
        #expect(config.ghostHosts == [.init(address: IPv4Address("203.0.113.87")!, interface: "eth0", mac: nil)])
        #expect(config.endpointsNeedingPins.isEmpty)
        #expect(config.routingTable.lookup(IPv4Address("203.0.113.87")!) == 0)
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
}

@Suite struct ProxyARPConfigTests {
    let base = """
    uplink: {interface: eth0, address: 203.0.113.86}
    peers:
      - {name: a, remote: 198.51.100.37, routes: [203.0.113.87/32]}
    ghost-hosts:
      - {address: 203.0.113.87, interface: eth0}
    """

    @Test func defaultsAndOptions() throws {
        let defaults = try #require(ConfigLoader.load(yaml: base, file: "b").config)
        #expect(!defaults.proxyARP.answerProbes && defaults.proxyARP.onConflict == .defend)
        let custom = try #require(ConfigLoader.load(yaml: base + "\nproxy-arp: {answer-probes: yes, on-conflict: yield}\n", file: "b").config)
        #expect(custom.proxyARP.answerProbes && custom.proxyARP.onConflict == .yield)
        let wrong = ConfigLoader.load(yaml: base + "\nproxy-arp: {on-conflict: fight}\n", file: "b")
        #expect(wrong.errors.map(\.key) == ["proxy-arp.on-conflict"])
    }

    @Test func planWarnsWhenTheKernelProxiesToo() {
        let config = ConfigLoader.load(yaml: base, file: "b").config!
        let eth0 = SystemFacts.Interface(mtu: 1500, addresses: [IPv4Address("203.0.113.86")!])
        let quiet = KernelPlan(config: config, facts: SystemFacts(interfaces: ["eth0": eth0]))
        #expect(quiet.warnings.isEmpty)
        let sysctl = KernelPlan(config: config, facts: SystemFacts(interfaces: ["eth0": eth0], kernelProxyARPInterfaces: ["eth0"]))
        #expect(sysctl.warnings.count == 1 && sysctl.warnings[0].contains("proxy_arp"))
        let entry = KernelPlan(config: config, facts: SystemFacts(interfaces: ["eth0": eth0],
                                                                 kernelProxyEntries: ["eth0": [IPv4Address("203.0.113.87")!]]))
        #expect(entry.warnings.count == 1 && entry.warnings[0].contains("ip neigh del proxy 203.0.113.87 dev eth0"))
    }
}

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
        #expect(diff.routesAdded == [IPv4Prefix("198.18.0.0/24")!, IPv4Prefix("198.18.1.0/24")!])
        #expect(diff.ghostsAdded == [IPv4Address("192.0.2.201")!] && diff.ghostsRemoved == [IPv4Address("192.0.2.200")!])
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
        #expect(diff.routesMoved == [IPv4Prefix("192.0.2.128/25")!] && diff.routesAdded.isEmpty && diff.routesRemoved.isEmpty)
        #expect(diff.endpointsChanged == ["b"])
    }
}

@Suite struct SHA256Tests {
    @Test func matchesSha256sum() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

@Suite struct MetricsConfigTests {
    let base = "uplink: {interface: eth0, address: 198.51.100.37}\npeers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24]}\n"

    @Test func listenAddressIsReadAndChecked() throws {
        #expect(ConfigLoader.load(yaml: base, file: "t").config?.metricsListen == nil)
        let config = try #require(ConfigLoader.load(yaml: base + "metrics: {listen: 127.0.0.1:9473}\n", file: "t").config)
        #expect(config.metricsListen?.address == IPv4Address("127.0.0.1") && config.metricsListen?.port == 9473)
        #expect(ConfigLoader.load(yaml: base + "metrics: {listen: localhost:9473}\n", file: "t").errors.map(\.key) == ["metrics.listen"])
        #expect(ConfigLoader.load(yaml: base + "metrics: {listen: 127.0.0.1:0}\n", file: "t").errors.map(\.key) == ["metrics.listen"])
    }
}
