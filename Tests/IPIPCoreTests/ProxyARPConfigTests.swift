import Testing
@testable import IPIPCore

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
