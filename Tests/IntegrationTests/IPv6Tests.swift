import Foundation
import IPIPCore
import Testing

/// IPv6 through the IPv4 tunnel (protocol 41, RFC 4213, as Linux's sit) and IPv6 ghost hosts by proxy
/// NDP, in both labs. Inputs ipipd did not write come from scapy (craft6.py); what ipipd sends is
/// dissected by tshark, and ping, netcat and the kernels' neighbour tables are the real clients.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct IPv6Tests {
    let siteA = Lab.config("lab-site-a.yaml")
    let siteB = Lab.config("lab-site-b.yaml")
    let machineA = Lab.config("machine-a.yaml")
    let machineB = Lab.config("machine-b.yaml")
    static let craft = Lab.repository.appendingPathComponent("Tests/IntegrationTests/craft6.py").path

    /// An ICMPv6 counter of `role`'s kernel (/proc/net/snmp6), e.g. Icmp6OutTimeExcds.
    func icmp6Counter(_ lab: Lab, _ name: String, in role: String) throws -> Int {
        Int(try lab.sh(in: lab.ns(role), "awk '$1 == \"\(name)\" { print $2 }' /proc/net/snmp6").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    // MARK: - Both directions, both labs

    /// With the uplinks as real NICs (GRO on) and as bare veths, where ipipd joins the segments itself.
    @Test(arguments: [true, false])
    func twoSitesCarryIPv6BothWays(uplinkGRO: Bool) throws {
        let lab = Lab("six2")
        defer { lab.teardown() }
        try lab.buildTwoSites(uplinkGRO: uplinkGRO)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        // No kernel answers protocol 41 with "protocol unreachable": the claim's raw socket takes it.
        let unreachable = try lab.capture("r", "eth1", "icmp[0] = 3 and icmp[1] = 2", name: "protocol-unreachable")
        try lab.sh(in: lab.ns("h1"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:2::10")
        try lab.sh(in: lab.ns("h2"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:1::10")
        try lab.transfer(from: "h1", to: "h2", address: "2001:db8:2::10")
        try lab.transfer(from: "h2", to: "h1", address: "2001:db8:1::10")
        #expect(try lab.dissect(unreachable(), ["ip.src"]).isEmpty, "B answered protocol 41 with protocol unreachable")
        // IPv4 still works next to it.
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130")
        let statusA = try lab.status("a", config: siteA)
        let peer = try statusA.peer("site-b")
        #expect(peer.encapsulatedIPv6.bytes > 10 << 20 && peer.decapsulatedIPv6.bytes > 10 << 20, "\(peer)")
        // h1's IPv6 stream reached A's TUN device as TSO6 super-packets, cut by ipipd; h2's reached A's
        // kernel joined into TCPV6 super-packets, by A's uplink (GRO) or, on a bare veth, by ipipd.
        #expect(statusA.tcpPacketsSegmented > 100, "\(statusA)")
        if uplinkGRO {
            #expect(statusA.uplinkMergedSegments > 1000, "\(statusA)")
        } else {
            #expect(statusA.tcpSegmentsCoalesced > 1000, "\(statusA)")
        }
        #expect(peer.encapsulated.packets > peer.encapsulatedIPv6.packets, "the IPv4 pings are counted apart: \(peer)")
    }

    /// The seed scenario, dual stack: C reaches A's ghost IPv6 address through B's proxy NDP (its
    /// neighbour table maps the address to B's MAC), and A reaches C.
    @Test func hostCReachesTheGhostIPv6AddressAndMachineAReachesC() throws {
        let lab = Lab("six1")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        _ = try lab.startIpipd(in: "a", config: machineA)
        _ = try lab.startIpipd(in: "b", config: machineB)
        try lab.sh(in: lab.ns("c"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:b::87")
        let neighbour = try lab.sh(in: lab.ns("c"), "ip -6 neigh show 2001:db8:b::87")
        #expect(neighbour.contains("lladdr \(try lab.mac("b", "eth0"))"), "\(neighbour)")
        try lab.sh(in: lab.ns("a"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:b::20")
        try lab.transfer(from: "c", to: "a", address: "2001:db8:b::87")
        try lab.transfer(from: "a", to: "c", address: "2001:db8:b::20")
        let ghost = try #require(try lab.status("b", config: machineB).ghostHosts.first { $0.address == "2001:db8:b::87" })
        #expect(ghost.replies >= 1 && ghost.announcements == 2, "\(ghost)")
    }

    /// A reload moves machine A's IPv6 ghost from ::87 to ::88: the kernel route, the NDP answers and the
    /// solicited-node group follow, with no restart; turning IPv6 off altogether needs one.
    @Test func aReloadMovesAnIPv6GhostAndItsRoute() throws {
        let lab = Lab("six6")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        // The daemon reads its own file again on a reload: a copy of machine B's, edited below.
        let file = lab.scratch.appendingPathComponent("b.yaml").path
        let original = try String(contentsOfFile: machineB, encoding: .utf8)
        try original.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try lab.startIpipd(in: "b", config: file)
        try original.replacingOccurrences(of: "2001:db8:b::87", with: "2001:db8:b::88").write(toFile: file, atomically: true, encoding: .utf8)
        let reload = try lab.sh("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("b"))")
        #expect(reload.contains("route 2001:db8:b::88/128 added") && reload.contains("ghost host 2001:db8:b::87 removed"), "\(reload)")
        let routes = try lab.sh(in: lab.ns("b"), "ip -6 route show dev tunl")
        #expect(routes.contains("2001:db8:b::88") && !routes.contains("2001:db8:b::87"), "\(routes)")
        // The responder's thread takes the new config on its next turn, and joins the new group.
        #expect(eventually {
            let groups = (try? lab.sh(in: lab.ns("b"), "ip maddr show dev eth0")) ?? ""
            return groups.contains("33:33:ff:00:00:88") && !groups.contains("33:33:ff:00:00:87")
        }, "the new ghost's group joined, the old one's left")
        // C resolves the new ghost (no A behind it here: the ping itself goes unanswered).
        _ = lab.run(in: lab.ns("c"), "ping -6 -c 1 -W 1 2001:db8:b::88")
        let neighbour = try lab.sh(in: lab.ns("c"), "ip -6 neigh show 2001:db8:b::88")
        #expect(neighbour.contains("lladdr \(try lab.mac("b", "eth0"))"), "\(neighbour)")

        try ["uplink: {interface: eth0, address: 203.0.113.86}", "peers:",
             "  - {name: machine-a, remote: 198.51.100.37, routes: [203.0.113.87/32]}",
             "ghost-hosts:", "  - {address: 203.0.113.87, interface: eth0}"]
            .joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let refused = lab.run("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("b"))")
        #expect(refused.status == 1 && refused.output.contains("needs a restart"), "\(refused.output)")
        #expect(try lab.sh(in: lab.ns("b"), "ip -6 route show dev tunl").contains("2001:db8:b::88"), "the running config stays")
    }

    // MARK: - What ipipd sends

    /// The outer header of protocol-41 packets: TTL from the hop limit (inherit), DSCP 0 and the inner
    /// ECN, DF; the inner packet as A's kernel forwarded it (hop limit 63 from h1's 64), untouched.
    @Test func protocol41PacketsFollowTheTunnelOptions() throws {
        let lab = Lab("six3")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "a", config: siteA)
        let finish = try lab.capture("r", "eth0", "ip proto 41 and src host 198.51.100.37", name: "outer6")
        _ = lab.run(in: lab.ns("h1"), "ping -6 -c 2 -i 0.2 -W 1 -Q 0xb9 -t 64 2001:db8:2::10")
        let rows = try lab.dissect(finish(), ["ip.proto", "ip.src", "ip.dst", "ip.checksum.status", "ip.ttl", "ip.dsfield.dscp",
                                                "ip.dsfield.ecn", "ip.flags.df", "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.tclass",
                                                "icmpv6.checksum.status"])
        try #require(rows.count == 2, "\(rows)")
        for row in rows {
            #expect(row[0...3] == ["41", "198.51.100.37", "203.0.113.86", "1"], "\(row)")
            #expect(row[4...7] == ["63", "0", "1", "1"], "outer TTL = inner hop limit, DSCP 0, ECN copied, DF: \(row)")
            #expect(row[8...12] == ["2001:db8:1::10", "2001:db8:2::10", "63", "0x000000b9", "1"], "inner untouched: \(row)")
        }
    }

    // MARK: - Hostile protocol 41

    @Test func hostileProtocol41IsDroppedAndCounted() throws {
        let lab = Lab("six4")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "a", config: siteA)
        let b = try lab.startIpipd(in: "b", config: siteB)
        let atH2 = try lab.capture("h2", "eth0", "icmp6 and ip6[40] = 128", name: "h2")
        let withHeadersAtH2 = try lab.capture("h2", "eth0", "ip6 src 2001:db8:1::10 and not ip6[6] = 58", name: "h2-headers")
        let timeExceededBefore = try icmp6Counter(lab, "Icmp6OutTimeExcds", in: "b")
        for scenario in ["malformed", "non-peer", "forged-inner", "ecn", "hop-limit", "extension-headers"] {
            _ = try lab.craft(Self.craft, scenario, from: "r", "eth1", to: "b", "eth0")
        }
        let status = try lab.waitForStatus("b", config: siteB) { ($0.drops["martian-destination"] ?? 0) >= 2 && ($0.drops["extension-headers"] ?? 0) >= 1 }
        let peer = try status.peer("site-a")
        #expect(peer.drops["malformed-inner"] == 4, "\(peer.drops)")
        #expect(status.drops["unknown-peer"] == 1, "\(status.drops)")
        #expect(peer.drops["source-not-allowed"] == 2, "\(peer.drops)")
        #expect(peer.drops["martian-source"] == 4, "\(peer.drops)")
        #expect(peer.drops["martian-destination"] == 2, "\(peer.drops)")
        #expect(peer.drops["ecn-ce-on-not-ect"] == 1, "\(peer.drops)")
        // Issue 27, finding 6: RH0 and a chain of 50 destination options went through; a hop-by-hop
        // router alert and two destination options still do.
        #expect(peer.drops["source-route"] == 1 && peer.drops["extension-headers"] == 1, "\(peer.drops)")
        let withHeaders = try lab.dissect(withHeadersAtH2(), ["icmpv6.echo.identifier"]).map { $0[0] }
        #expect(withHeaders.contains("0x6611") && withHeaders.contains("0x6613"), "\(withHeaders)")
        #expect(!withHeaders.contains("0x6610") && !withHeaders.contains("0x6612"), "\(withHeaders)")
        #expect(status.capture.unaccounted == 0, "\(status.capture)")
        // What got through: the CE-marked echo (inner ECT(0) → CE) and the hop-limit 5 echo (4 at h2);
        // the hop-limit 1 echo was the kernel's to drop, with "time exceeded".
        let delivered = try lab.dissect(atH2(), ["icmpv6.echo.identifier", "ipv6.tclass", "ipv6.hlim"])
        #expect(delivered.contains { $0[0] == "0x660b" && $0[1] == "0x00000003" }, "\(delivered)")
        #expect(delivered.contains { $0[0] == "0x6605" && $0[2] == "4" }, "\(delivered)")
        #expect(!delivered.contains { ["0x6601", "0x660a", "0x6602", "0x6603"].contains($0[0]) }, "\(delivered)")
        #expect(try icmp6Counter(lab, "Icmp6OutTimeExcds", in: "b") > timeExceededBefore)
        #expect(b.process.isRunning)
    }

    /// A router on the way that takes less than the tunnel MTU: A learns it from the router's real ICMP
    /// "fragmentation needed" and answers the next IPv6 packet that does not fit with "packet too big"
    /// (never fragmenting IPv6); a router that cannot reach B makes A relay "address unreachable" to
    /// the IPv6 sender (RFC 4213 §3.4).
    @Test func aSmallerPathGetsPacketTooBigAndRouterErrorsReachTheIPv6Sender() throws {
        let lab = Lab("six5")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        try lab.sh("ip -n \(lab.ns("r")) link set eth1 mtu 1400 && ip -n \(lab.ns("b")) link set eth0 mtu 1400")
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        let toH1 = try lab.capture("h1", "eth0", "icmp6 and (ip6[40] = 1 or ip6[40] = 2)", name: "errors")
        // The first one goes out at 1448 + 20 bytes and meets R's 1400; the later ones meet ipipd's PTB.
        _ = lab.run(in: lab.ns("h1"), "ping -6 -M do -s 1400 -c 3 -i 0.3 -W 1 2001:db8:2::10")
        let route = try lab.sh(in: lab.ns("h1"), "ip -6 route get 2001:db8:2::10")
        #expect(route.contains("mtu 1380"), "h1 learned the inner path MTU: \(route)")
        try lab.sh(in: lab.ns("h1"), "ping -6 -M do -s 1300 -c 2 -i 0.2 -W 2 2001:db8:2::10")
        #expect(try lab.status("a", config: siteA).peer("site-b").drops["too-big"] ?? 0 >= 1)

        // R stops reaching B: its "host unreachable" quotes A's outer packet and the IPv6 header inside.
        try lab.sh(in: lab.ns("r"), "ip route add unreachable 203.0.113.86/32")
        _ = lab.run(in: lab.ns("h1"), "ping -6 -c 2 -i 0.3 -W 1 2001:db8:2::10")
        let errors = try lab.dissect(toH1(), ["icmpv6.type", "icmpv6.code", "icmpv6.mtu", "ipv6.dst"])
        #expect(errors.contains { $0[0] == "2" && $0[2] == "1380" }, "packet too big, MTU 1380: \(errors)")
        #expect(errors.contains { $0[0] == "1" && $0[1] == "3" && $0[3] == "2001:db8:1::10" }, "address unreachable: \(errors)")
    }

    // MARK: - Proxy NDP

    /// RFC 4861: a valid solicitation gets one advertisement (Solicited, not Router, not Override, B's
    /// MAC, hop limit 255, to the solicitor); DAD probes, wrong hop limits, bad checksums, multicast
    /// targets and other targets get none. Two unsolicited advertisements to all nodes at start.
    @Test func solicitationsGetExactlyTheAnswersTheRFCRequires() throws {
        let lab = Lab("ndp1")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let announcements = try lab.capture("c", "eth0", "icmp6 and ip6[40] = 136", name: "unsolicited")
        _ = try lab.startIpipd(in: "b", config: machineB)
        let macB = try lab.mac("b", "eth0"), macC = try lab.mac("c", "eth0")
        // Both announcements (2 s apart) before the cases start.
        #expect(eventually(timeout: 5) { (try? lab.dissect(lab.scratch.appendingPathComponent("unsolicited.pcap").path, ["ipv6.dst"]).count) ?? 0 >= 2 })
        let unsolicited = try lab.dissect(announcements(), ["ipv6.src", "ipv6.dst", "ipv6.hlim", "icmpv6.nd.na.flag.s",
                                                              "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.r", "icmpv6.opt.linkaddr"])
        #expect(unsolicited.count == 2, "\(unsolicited)")
        for row in unsolicited {
            #expect(row == ["2001:db8:b::87", "ff02::1", "255", "0", "1", "0", macB], "S clear, O set, R clear: \(row)")
        }

        let output = try lab.craft(Self.craft, "ns-cases", from: "c", "eth0", to: "b", "eth0")
        let cases = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [[String: Any]]] ?? [:]
        for name in ["valid", "valid-without-lladdr"] {
            let answers = cases[name] ?? []
            try #require(answers.count == 1, "\(name): \(answers)")
            let answer = answers[0]
            #expect(answer["src"] as? String == "2001:db8:b::87" && answer["dst"] as? String == "2001:db8:b::20", "\(name): \(answer)")
            #expect(answer["hlim"] as? Int == 255 && answer["eth_dst"] as? String == macC && answer["eth_src"] as? String == macB, "\(name): \(answer)")
            #expect(answer["S"] as? Int == 1 && answer["R"] as? Int == 0 && answer["O"] as? Int == 0, "\(name): \(answer)")
            #expect(answer["target"] as? String == "2001:db8:b::87" && answer["lladdr"] as? String == macB, "\(name): \(answer)")
        }
        for name in ["dad", "hop-limit-64", "bad-checksum", "not-a-ghost", "multicast-target"] {
            #expect(cases[name]?.isEmpty == true, "\(name) must get no answer: \(cases[name] ?? [])")
        }
        let ghost = try #require(try lab.status("b", config: machineB).ghostHosts.first { $0.address == "2001:db8:b::87" })
        #expect(ghost.replies == 2 && ghost.probesIgnored == 1, "\(ghost)")
        // ipipd joined the ghost's solicited-node group on the LAN interface.
        #expect(try lab.sh(in: lab.ns("b"), "ip maddr show dev eth0").contains("33:33:ff:00:00:87"))
    }

    /// Issue 27, finding 2: requests that name a group link-layer address (in NDP's option, in ARP's
    /// sender hardware address) or come from a martian source (::1, IPv4-mapped, multicast; 127/8,
    /// 224/4, the broadcast) got answers to that address — a reflector; finding 11: requests tagged for
    /// VLAN 10 got tagged answers on the untagged LAN interface. None is answered now; the valid request
    /// beside them is, to C alone.
    @Test func requestsThatWouldMakeTheProxyAReflectorAreNotAnswered() throws {
        let lab = Lab("refl")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        _ = try lab.startIpipd(in: "b", config: machineB)
        let macC = try lab.mac("c", "eth0")
        // The start's announcements over (two of each ghost, 2 s apart), so that only answers are seen.
        _ = try lab.waitForStatus("b", config: machineB) { status in status.ghostHosts.allSatisfy { $0.announcements >= 2 } }
        Thread.sleep(forTimeInterval: 0.5)
        let output = try lab.craft(Self.craft, "reflector-cases", from: "c", "eth0", to: "b", "eth0")
        let cases = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [String]] ?? [:]
        #expect(cases["ns-valid"] == [macC] && cases["arp-valid"] == [macC], "\(cases)")
        for name in ["ns-lladdr-broadcast", "ns-lladdr-multicast", "ns-from-loopback", "ns-from-v4-mapped", "ns-from-multicast",
                     "arp-sender-broadcast", "arp-sender-multicast", "arp-from-loopback", "arp-from-multicast", "arp-from-broadcast",
                     "arp-vlan-10", "ns-vlan-10"] {
            #expect(cases[name]?.isEmpty == true, "\(name) must get no answer: \(cases[name] ?? ["(case missing)"])")
        }
    }

    @Test func aSecondNodeClaimingTheGhostIPv6AddressIsAConflict() throws {
        let lab = Lab("ndp2")
        defer { lab.teardown() }
        try lab.buildSeedLab(withSecondHost: true)
        let b = try lab.startIpipd(in: "b", config: machineB)
        _ = try lab.craft(Self.craft, "claim", from: "d", "eth0", to: "b", "eth0")
        // The conflict is counted before the defending advertisement goes out: wait for both.
        let status = try lab.waitForStatus("b", config: machineB) { status in
            let ghost = status.ghostHosts.first { $0.address == "2001:db8:b::87" }
            return (ghost?.conflicts ?? 0) >= 1 && (ghost?.announcements ?? 0) >= 3
        }
        let ghost = try #require(status.ghostHosts.first { $0.address == "2001:db8:b::87" })
        #expect(ghost.conflicts == 1, "\(ghost)")
        #expect(ghost.announcements >= 3, "defended with an unsolicited advertisement: \(ghost)")
        #expect(b.waitForLog("another machine claims a ghost address"), "\(b.output)")
        let macD = try lab.mac("d", "eth0")
        #expect(b.output.contains(macD), "the log names the claimant: \(b.output)")
    }
}
