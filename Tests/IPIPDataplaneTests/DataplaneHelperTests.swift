import Testing
@testable import IPIPCore
@testable import IPIPDataplane

/// Small pure helpers of the dataplane module (no privileges needed).
@Suite struct DataplaneHelperTests {
    @Test func sysctlPathsKeepDottedDeviceNames() {
        #expect(sysctlPath("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward")
        #expect(sysctlPath("net.ipv6.conf.tunl.disable_ipv6") == "/proc/sys/net/ipv6/conf/tunl/disable_ipv6")
        #expect(sysctlPath("net.ipv6.conf.tun.0.disable_ipv6") == "/proc/sys/net/ipv6/conf/tun.0/disable_ipv6")
        #expect(sysctlPath("net.ipv4.conf.eth0.42.proxy_arp") == "/proc/sys/net/ipv4/conf/eth0.42/proxy_arp")
    }

    @Test func stateFileRoundTrips() {
        var record = StateFile.Record()
        record.pid = 4242
        record.sysctls = ["net.ipv4.ip_forward": "0"]
        record.pins = [.init(endpoint: IPAddress("203.0.113.86")!, gateway: IPAddress("198.51.100.1")!, interface: "eth0"),
                       .init(endpoint: IPAddress("192.0.2.9")!, gateway: nil, interface: "eth1"),
                       .init(endpoint: IPAddress("2001:db8:a::86")!, gateway: IPAddress("2001:db8:a::1")!, interface: "eth0")]
        let text = StateFile.render(record)
        #expect(text.contains("pin 203.0.113.86 198.51.100.1 eth0\n") && text.contains("pin 192.0.2.9 - eth1\n")
                && text.contains("pin 2001:db8:a::86 2001:db8:a::1 eth0\n"))
        #expect(StateFile.parse(text) == record)
        // A gateway of the other family than its endpoint is no gateway.
        #expect(StateFile.parse("pin 2001:db8:a::86 198.51.100.1 eth0\n").pins.first?.gateway == nil)
        #expect(StateFile.parse("garbage\npid x\nsysctl a\n") == StateFile.Record())
    }
}
