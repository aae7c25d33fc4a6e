import Testing
@testable import IPIPCore

@Suite struct MetricsConfigTests {
    let base = "uplink: {interface: eth0, address: 198.51.100.37}\npeers:\n  - {name: b, remote: 203.0.113.86, routes: [192.0.2.0/24]}\n"

    @Test func listenAddressIsReadAndChecked() throws {
        #expect(ConfigLoader.load(yaml: base, file: "t").config?.metricsListen == nil)
        let config = try #require(ConfigLoader.load(yaml: base + "metrics: {listen: 127.0.0.1:9473}\n", file: "t").config)
        #expect(config.metricsListen == GatewayConfig.ListenAddress(IPv4Address("127.0.0.1")!, port: 9473))
        let six = try #require(ConfigLoader.load(yaml: base + "metrics: {listen: \"[::1]:9473\"}\n", file: "t").config)
        #expect(six.metricsListen == GatewayConfig.ListenAddress(host: .v6(IPv6Address("::1")!), port: 9473))
        #expect(six.metricsListen?.description == "[::1]:9473")
        #expect(ConfigLoader.load(yaml: base + "metrics: {listen: \"::1:9473\"}\n", file: "t").errors.map(\.key) == ["metrics.listen"])
        #expect(ConfigLoader.load(yaml: base + "metrics: {listen: localhost:9473}\n", file: "t").errors.map(\.key) == ["metrics.listen"])
        #expect(ConfigLoader.load(yaml: base + "metrics: {listen: 127.0.0.1:0}\n", file: "t").errors.map(\.key) == ["metrics.listen"])
    }
}
