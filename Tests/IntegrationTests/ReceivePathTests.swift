import Foundation
import IPIPCore
import Testing

/// Where decapsulated packets go (issue 13): into the kernel's receive path on the TUN device (delivery:
/// kernel, the default), or routed by ipipd through its raw socket (delivery: routed) — in both, with
/// the checks a router makes, the firewall's INPUT and FORWARD chains seeing `iifname "tunl"`, and
/// too-big packets fragmented or refused. On the two-site lab h1 — A — R — B — h2.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct ReceivePathTests {
    static let craft = Lab.repository.appendingPathComponent("Tests/IntegrationTests/craft.py").path

    /// Both sites' configs with `tunnel: {delivery: ...}` (A's and B's may differ).
    func configs(_ lab: Lab, a: String, b: String, extraB: String = "") throws -> (a: String, b: String) {
        (try lab.writeConfig("lab-site-a.yaml", appending: "tunnel: {delivery: \(a)}\n", name: "a.yaml"),
         try lab.writeConfig("lab-site-b.yaml", appending: "tunnel: {delivery: \(b)}\n" + extraB, name: "b.yaml"))
    }

    /// Forged tunnel packets from A's address with martian or foreign inner addresses and a source route:
    /// none reaches a listener on B or host h2, each is counted with its reason.
    @Test(arguments: ["kernel", "routed"])
    func forgedInnerPacketsReachNothingAndAreCountedByReason(delivery: String) throws {
        let lab = Lab("frgd")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let (_, siteB) = try configs(lab, a: delivery, b: delivery)
        _ = try lab.startIpipd(in: "b", config: siteB)
        let onH2 = try lab.watch(in: "h2", "eth0", "udp port 7777", logName: "h2")
        let onB = try lab.watch(in: "b", "any", "udp port 7777", logName: "b")
        let listener = try lab.spawn(in: lab.ns("b"), ["sh", "-c", "exec nc.openbsd -u -l 127.0.0.1 7777"], logName: "listener")
        let mac = try lab.mac("b", "eth0")
        try lab.sh(in: lab.ns("r"), "python3 \(Self.craft) forged-inner eth1 \(mac)")
        let expected = ["martian-source": 3, "source-not-allowed": 1, "martian-destination": 4, "source-route": 1]
        let status = try lab.waitForStatus("b", config: siteB) { status in expected.allSatisfy { status.dropped($0.key) >= UInt64($0.value) } }
        for (reason, count) in expected {
            #expect((try status.peer("site-a").drops[reason]) == UInt64(count), "\(reason): \(status.drops)")
        }
        #expect((try status.peer("site-a").decapsulated.packets) == 0)
        onH2.settle()
        onB.settle()
        #expect(!onH2.output.contains("UDP"), "reached h2:\n\(onH2.output)")
        #expect(!onB.output.contains("UDP"), "reached B's interfaces:\n\(onB.output)")
        #expect(listener.output.isEmpty, "reached B's 127.0.0.1:7777: \(listener.output)")
    }

    /// A default-deny INPUT policy with `iifname "tunl"` rules holds against tunneled SYNs in both modes
    /// (a raw-socket reinjection used to make them arrive on lo, which every ruleset accepts), to B's own
    /// address and to an AnyIP range B routes as local without any interface holding it (`ip route add
    /// local … dev lo`: the routed delivery once sent those through lo); a FORWARD rule on
    /// `iifname "tunl"` is obeyed with kernel delivery.
    @Test(arguments: ["kernel", "routed"])
    func theFirewallSeesTunneledPacketsOnTunl(delivery: String) throws {
        let lab = Lab("nft")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let (siteA, siteB) = try configs(lab, a: delivery, b: delivery)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        let rules = lab.scratch.appendingPathComponent("b.nft").path
        try """
            table inet filter {
                chain input {
                    type filter hook input priority 0; policy drop;
                    ct state established,related accept
                    iifname "lo" accept
                    iifname "tunl" tcp dport 8080 accept
                    iifname "tunl" icmp type echo-request accept
                }
                chain forward {
                    type filter hook forward priority 0; policy accept;
                    iifname "tunl" tcp dport 9999 drop
                }
            }
            """.write(toFile: rules, atomically: true, encoding: .utf8)
        try lab.sh(in: lab.ns("b"), "nft -f \(rules)")
        try lab.sh(in: lab.ns("b"), "ip route add local 192.0.2.192/27 dev lo")   // inside the prefix A tunnels to B
        _ = try lab.spawn(in: lab.ns("b"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.129 8080"], logName: "allowed")
        _ = try lab.spawn(in: lab.ns("b"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.129 2222"], logName: "refused")
        _ = try lab.spawn(in: lab.ns("b"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.200 8080"], logName: "anyip-allowed")
        _ = try lab.spawn(in: lab.ns("b"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.200 2222"], logName: "anyip-refused")
        _ = try lab.spawn(in: lab.ns("h2"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.130 9999"], logName: "h2-9999")
        _ = try lab.spawn(in: lab.ns("h2"), ["sh", "-c", "exec nc.openbsd -lk 192.0.2.130 9998"], logName: "h2-9998")
        #expect(eventually { lab.run(in: lab.ns("b"), "ss -Hltn | grep -q '192.0.2.129:2222' && ss -Hltn | grep -q '192.0.2.200:2222'").status == 0 })
        let synAcks = try lab.watch(in: "b", "tunl", "tcp src port 2222", logName: "syn-acks")
        try lab.sh(in: lab.ns("h1"), "ping -c 1 -W 2 192.0.2.129")
        #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.129 8080").status == 0, "the allowed port")
        #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.129 2222").status != 0, "a port INPUT drops")
        #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.200 8080").status == 0, "the allowed port, AnyIP")
        #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.200 2222").status != 0, "a port INPUT drops, AnyIP")
        synAcks.settle()
        #expect(!synAcks.output.contains("192.0.2.129.2222 >"), "B answered on 2222:\n\(synAcks.output)")
        if delivery == "kernel" {
            #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.130 9998").status == 0)
            #expect(lab.run(in: lab.ns("h1"), "nc.openbsd -z -w 2 192.0.2.130 9999").status != 0, "FORWARD drops it")
        }
    }

    /// A decapsulated 1,400-byte packet for a LAN whose MTU is 1,280: without DF it arrives in
    /// fragments; with DF its sender hears "fragmentation needed" with MTU 1,280 — in both modes.
    @Test(arguments: ["kernel", "routed"])
    func aPacketTooBigForTheLANIsFragmentedOrRefusedLikeARouterWould(delivery: String) throws {
        let lab = Lab("lmtu")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        try lab.sh("ip -n \(lab.ns("b")) link set lan0 mtu 1280 && ip -n \(lab.ns("h2")) link set eth0 mtu 1280")
        let (siteA, siteB) = try configs(lab, a: delivery, b: delivery)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("h1"), "ping -c 1 -W 2 192.0.2.130")
        let fragments = try lab.watch(in: "h2", "eth0", "icmp and ip[6:2] & 0x3fff != 0", logName: "fragments")
        try lab.sh(in: lab.ns("h1"), "ping -M dont -s 1372 -c 2 -i 0.3 -W 2 192.0.2.130")
        fragments.settle()
        #expect(fragments.output.contains("192.0.2.10 > 192.0.2.130"), "no fragments at h2:\n\(fragments.output)")
        let refused = lab.run(in: lab.ns("h1"), "ping -M do -s 1372 -c 2 -i 0.3 -W 2 192.0.2.130")
        #expect(refused.output.contains("mtu = 1280") || refused.output.contains("mtu=1280"), "\(refused.output)")
    }

    /// A in one mode, B in the other: the tunnel carries traffic both ways, and a transfer keeps its
    /// SHA-256.
    @Test(arguments: [("kernel", "routed"), ("routed", "kernel")])
    func theModesInteroperate(a: String, b: String) throws {
        let lab = Lab("mix")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let (siteA, siteB) = try configs(lab, a: a, b: b)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("h1"), "ping -c 3 -i 0.2 -W 2 192.0.2.130")
        try lab.sh(in: lab.ns("h2"), "ping -c 3 -i 0.2 -W 2 192.0.2.10")
        try lab.transfer(from: "h1", to: "h2", address: "192.0.2.130", megabytes: 4)
        try lab.transfer(from: "h2", to: "h1", address: "192.0.2.10", megabytes: 4)
    }

    /// With kernel delivery the kernel's reverse-path filter applies on tunl, as with Linux's ipip: an
    /// inner source that B routes out of eth0 is refused by strict rp_filter (here accept-sources lets
    /// anything through, to show the kernel's own check); the routed delivery is locally generated and
    /// skips it — its accept-sources are the check that counts.
    @Test(arguments: ["kernel", "routed"])
    func reversePathFilteringAppliesWithKernelDelivery(delivery: String) throws {
        let lab = Lab("rpf")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let anySource = "peers:\n  - name: site-a\n    remote: 198.51.100.37\n    routes: [192.0.2.0/25]\n    accept-sources: [0.0.0.0/0]\n"
        let siteB = lab.scratch.appendingPathComponent("b.yaml").path
        try ("uplink: {interface: eth0, address: 203.0.113.86}\ntunnel: {delivery: \(delivery)}\n" + anySource)
            .write(toFile: siteB, atomically: true, encoding: .utf8)
        try lab.sh(in: lab.ns("b"), "sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1")
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("b"), "sysctl -qw net.ipv4.conf.tunl.rp_filter=1")
        let atH2 = try lab.watch(in: "h2", "eth0", "udp port 7777", logName: "h2")
        // Inner source 203.0.113.99 lies on B's eth0 network, not behind tunl.
        try lab.sh(in: lab.ns("r"), """
            python3 -c "from scapy.all import *; sendp(Ether(dst='\(try lab.mac("b", "eth0"))')/IP(src='198.51.100.37', dst='203.0.113.86')/IP(src='203.0.113.99', dst='192.0.2.130')/UDP(dport=7777)/Raw(b'rpf'), iface='eth1', count=3, verbose=0)"
            """)
        _ = try lab.waitForStatus("b", config: siteB) { try $0.peer("site-a").decapsulated.packets >= 3 }
        atH2.settle()
        let arrived = atH2.output.contains("203.0.113.99")
        #expect(arrived == (delivery == "routed"), "rp_filter on tunl with \(delivery) delivery:\n\(atH2.output)")
    }
}
