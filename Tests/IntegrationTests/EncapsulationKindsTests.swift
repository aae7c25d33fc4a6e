import Foundation
import IPIPCore
import Testing

/// The seed's scenario over FOU, GUE and an IPv6-only underlay (issue 25), in namespaces: real pings,
/// netcat transfers and the kernels' neighbour tables; what crosses the router dissected by tshark (FOU
/// decoded as IP by its port, ip6tnl's encapsulation limit) and by scapy (GUE, which tshark 4.0 does not
/// know); hostile headers crafted by scapy (craft_encap.py).
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct EncapsulationKindsTests {
    static let craft = Lab.repository.appendingPathComponent("Tests/IntegrationTests/craft_encap.py").path

    /// One way of carrying the seed's tunnel: its lab and the configs of A and B.
    struct Kind: CustomStringConvertible {
        let name: String
        let ipv6Underlay: Bool
        /// Each peer's outer header in bytes: the tunnel MTU is the uplink's 1500 less it.
        let overhead: Int
        var description: String { name }

        static let fou = Kind(name: "fou", ipv6Underlay: false, overhead: 28)
        static let gue = Kind(name: "gue", ipv6Underlay: false, overhead: 32)
        static let ip6tnl = Kind(name: "ip6tnl", ipv6Underlay: true, overhead: 48)
        static let all = [fou, gue, ip6tnl]

        func build(_ lab: Lab) throws {
            if ipv6Underlay { try lab.buildSeedLabOverIPv6() } else { try lab.buildSeedLab() }
        }

        /// The example config of `machine` ("a", "b") for this kind (GUE made from FOU's), with `extra`
        /// replacements; written to the lab's scratch directory.
        func config(_ lab: Lab, _ machine: String, _ extra: [(String, String)] = []) throws -> String {
            var replacements = extra
            let base: String
            switch name {
            case "ip6tnl":
                base = "machine-\(machine)-ip6tnl.yaml"
            case "gue":
                base = "machine-\(machine)-fou.yaml"
                replacements += [("type: fou, dport: 5555, dport6: 5556", "type: gue, dport: 6080"),
                                 ("- {port: 5555, ipproto: 4}", "- {port: 6080, gue: yes}"), ("- {port: 5556, ipproto: 41}", "")]
            default:
                base = "machine-\(machine)-fou.yaml"
            }
            return try lab.writeConfig(base, replacing: replacements, name: "\(machine)-\(name).yaml")
        }
    }

    /// Ping and TCP both ways and in both families; the router sees only this kind of outer packet, and
    /// no ICMP "port unreachable" or "protocol unreachable" comes back; with clamp-mss: auto, SYNs carry
    /// what fits the tunnel less this kind's overhead.
    @Test(arguments: Kind.all)
    func theSeedScenarioCrossesEachEncapsulationBothWays(kind: Kind) throws {
        let lab = Lab("kind\(kind.name.prefix(1))")
        defer { lab.teardown() }
        try kind.build(lab)
        let clamp = [("  name: tunl\n", "  name: tunl\n  clamp-mss: auto\n")]
        let configA = try kind.config(lab, "a", clamp), configB = try kind.config(lab, "b", clamp)
        _ = try lab.startIpipd(in: "a", config: configA)
        _ = try lab.startIpipd(in: "b", config: configB)
        let outer = try lab.capture("r", "eth0", kind.ipv6Underlay ? "ip6 and not ip6 multicast and not icmp6" : "ip and not arp",
                                    name: "outer-\(kind.name)")
        let refusals = try lab.capture("r", "eth1", kind.ipv6Underlay ? "icmp6 and ip6[40] = 4" : "icmp and icmp[0] = 3 and (icmp[1] = 2 or icmp[1] = 3)",
                                       name: "refusals-\(kind.name)")
        // SYNs and SYN-ACKs from C, as they leave the tunnel at A: B lowered their MSS on the way in.
        let syns = try lab.capture("a", "tunl", "(ip and tcp[tcpflags] & tcp-syn != 0) or (ip6 and ip6[6] = 6 and ip6[53] & 2 != 0)",
                                   name: "syns-\(kind.name)")
        try lab.sh(in: lab.ns("c"), "ping -c 3 -i 0.2 -W 2 203.0.113.87")
        try lab.sh(in: lab.ns("c"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:b::87")
        try lab.sh(in: lab.ns("a"), "ping -c 2 -i 0.2 -W 2 203.0.113.20")
        try lab.sh(in: lab.ns("a"), "ping -6 -c 2 -i 0.2 -W 2 2001:db8:b::20")
        let neighbour = try lab.sh(in: lab.ns("c"), "ip neigh show 203.0.113.87; ip -6 neigh show 2001:db8:b::87")
        #expect(neighbour.components(separatedBy: "lladdr \(try lab.mac("b", "eth0"))").count == 3, "B answers for both ghost addresses: \(neighbour)")
        // The kernel of B delivers none of the outer packets locally: the capture took them, the eBPF
        // ingress program dropped them (and with it the claim sockets' work, and an IPv6 header's options).
        func localDeliveries() throws -> Int {
            kind.ipv6Underlay ? Int(try lab.sh(in: lab.ns("b"), "awk '$1 == \"Ip6InDelivers\" { print $2 }' /proc/net/snmp6")
                                        .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
                              : try lab.ipCounter("InDelivers", in: "b")
        }
        let deliveriesBefore = try localDeliveries()
        try lab.transfer(from: "a", to: "c", address: "203.0.113.20", megabytes: 8)
        #expect(try localDeliveries() - deliveriesBefore < 200, "B's kernel delivered the outer packets of an 8 MB transfer locally")
        try lab.transfer(from: "c", to: "a", address: "2001:db8:b::87", megabytes: 8)

        let status = try lab.status("a", config: configA)
        let peer = try status.peer("machine-b")
        #expect(peer.encapsulated.bytes > 8 << 20 && peer.decapsulatedIPv6.bytes > 8 << 20, "\(peer)")
        #expect(peer.overhead == kind.overhead && peer.pathMTU == 1500 - kind.overhead && status.tunnelMTU == 1500 - kind.overhead)
        #expect(status.capture.unaccounted == 0 && status.drops.keys.allSatisfy { $0 == "link-scope" }, "\(status.drops)")

        let file = outer()
        try checkOuterPackets(lab, file, kind: kind)
        #expect(try lab.dissect(refusals(), ["frame.number"]).isEmpty, "a kernel answered tunnel packets with unreachable")
        // C's SYN-ACK (IPv4, to A's connection) and SYN (IPv6): C offered what its 1500-byte LAN fits; B
        // clamped it to the peer's MTU less 40 (IPv4) or 60 (IPv6).
        let mss = try lab.dissect(syns(), ["ip.src", "ipv6.src", "tcp.options.mss_val"],
                                  filter: "ip.src == 203.0.113.20 or ipv6.src == 2001:db8:b::20")
        #expect(Set(mss.map { $0[0].isEmpty ? "6" : "4" }) == ["4", "6"], "\(mss)")
        for row in mss {
            let expected = row[0].isEmpty ? 1500 - kind.overhead - 60 : 1500 - kind.overhead - 40
            #expect(row[2] == "\(expected)", "\(kind): \(row)")
        }
        #expect(try lab.status("b", config: configB).tcpMSSClampedSent >= 2)
    }

    /// What crosses the router, read by tools that are not ipipd: only this kind of outer packet, between
    /// the two endpoints, carrying inner packets of the tunnel's addresses, with valid checksums.
    func checkOuterPackets(_ lab: Lab, _ file: String, kind: Kind) throws {
        switch kind.name {
        case "fou":
            let rows = try lab.dissect(file, ["ip.src", "ip.dst", "ip.proto", "udp.dstport", "udp.checksum", "ip.src", "ip.dst", "ipv6.src"],
                                       occurrence: "a")
            let tshark = try lab.sh("tshark -r \(file) -d udp.port==5555,ip -d udp.port==5556,ipv6 -T fields -E occurrence=a "
                                    + "-e ip.src -e ipv6.src -e udp.dstport 2>/dev/null")
            #expect(!rows.isEmpty)
            for line in tshark.split(separator: "\n") {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                let outerAndInner = fields[0].split(separator: ",")
                #expect(Set(outerAndInner.prefix(1)).isSubset(of: ["198.51.100.37", "203.0.113.86"]), "outer: \(line)")
                switch fields[2] {
                case "5555": #expect(outerAndInner.count == 2 && ["203.0.113.87", "203.0.113.20"].contains(String(outerAndInner[1])), "\(line)")
                case "5556": #expect(["2001:db8:b::87", "2001:db8:b::20"].contains(fields[1].split(separator: ",").first.map(String.init) ?? ""), "\(line)")
                default: Issue.record("not FOU to B's or A's ports: \(line)")
                }
            }
            // noencap-csum over IPv4: no UDP checksum, as Linux's default.
            #expect(rows.allSatisfy { $0[4] == "0x0000" }, "\(rows.prefix(3))")
        case "gue":
            // tshark 4.0 has no GUE dissector: scapy reads the header and the packet behind it.
            let output = try lab.sh("""
                python3 -c "
                from scapy.all import rdpcap, IP, IPv6, UDP, raw
                for p in rdpcap('\(file)'):
                    u = p[UDP]; g = raw(u.payload)
                    assert u.dport == 6080 and g[0] == 0 and g[2:4] == b'\\\\x00\\\\x00', (u.dport, g[:4])
                    inner = (IP if g[1] == 4 else IPv6)(g[4:])
                    assert g[1] in (4, 41) and inner.version == (4 if g[1] == 4 else 6)
                    print(g[1], inner.src, inner.dst)
                "
                """)
            let families = Set(output.split(separator: "\n").map { $0.split(separator: " ")[0] })
            #expect(families == ["4", "41"], "both families inside GUE: \(output.prefix(200))")
        default:
            let rows = try lab.dissect(file, ["ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.dstopts.nxt", "ipv6.opt.tel", "ipv6.flow"], occurrence: "f")
            #expect(!rows.isEmpty)
            for row in rows {
                #expect(Set([row[0], row[1]]) == ["2001:db8:a::37", "2001:db8:b::86"], "\(row)")
                // ip6tnl's default: the limit 4 in a Destination Options header in front of 4 or 41.
                #expect(row[2] == "60" && ["4", "41"].contains(row[3]) && row[4] == "4", "\(row)")
            }
            #expect(Set(rows.map { $0[5] }).count > 1, "flow labels from the inner flows' hashes")
        }
    }

    /// Machine A behind an nftables masquerade: its packets reach B from the NAT's address; B's replies
    /// come back through the NAT's mapping, which A's traffic keeps alive — for FOU (IPv4 inside) and for
    /// GUE (both families on one port). Each side's source port is its own receiving port.
    @Test(arguments: [Kind.fou, Kind.gue])
    func aTunnelCrossesANATBothWays(kind: Kind) throws {
        let lab = Lab("nat\(kind.name.prefix(1))")
        defer { lab.teardown() }
        try lab.buildSeedLabBehindNAT()
        let port = kind.name == "gue" ? "6080" : "5555"
        let configA = try kind.config(lab, "a", [("address: 198.51.100.37", "address: 198.18.0.2"), ("sport: auto", "sport: \(port)")])
        let configB = try kind.config(lab, "b", [("sport: auto", "sport: \(port)")])
        _ = try lab.startIpipd(in: "a", config: configA)
        _ = try lab.startIpipd(in: "b", config: configB)
        // A's traffic opens the mapping and keeps it: a ping every half second for as long as the test runs.
        let keepalive = try lab.spawn(in: lab.ns("a"), ["ping", "-i", "0.5", "-c", "120", "203.0.113.20"], logName: "keepalive")
        defer { _ = keepalive.stop() }
        #expect(keepalive.waitForLog("bytes from 203.0.113.20"), "A reaches C through the NAT")
        try lab.sh(in: lab.ns("c"), "ping -c 3 -i 0.2 -W 2 203.0.113.87")
        try lab.transfer(from: "c", to: "a", address: "203.0.113.87", megabytes: 4)
        try lab.transfer(from: "a", to: "c", address: "203.0.113.20", megabytes: 4)
        if kind.name == "gue" {
            try lab.sh(in: lab.ns("c"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:b::87")
            try lab.transfer(from: "c", to: "a", address: "2001:db8:b::87", megabytes: 4)
        }
        let mapping = try lab.sh(in: lab.ns("n"), "cat /proc/net/nf_conntrack")
        #expect(mapping.contains("src=198.18.0.2 dst=203.0.113.86 sport=\(port) dport=\(port)")
                && mapping.contains("src=203.0.113.86 dst=198.51.100.37 sport=\(port) dport=\(port)"), "\(mapping)")
        let status = try lab.status("b", config: configB)
        #expect(try status.peer("machine-a").decapsulated.bytes > 4 << 20 && status.capture.unaccounted == 0, "\(status.drops)")
    }

    /// ECMP and RSS entropy (`sport: auto`): B's outer packets of 32 inner flows leave from many source
    /// ports, and one TCP flow's from one, so that its order holds.
    @Test func innerFlowsSpreadOverSourcePortsAndEachKeepsOne() throws {
        let lab = Lab("ecmp")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        _ = try lab.startIpipd(in: "a", config: Lab.config("machine-a-fou.yaml"))
        _ = try lab.startIpipd(in: "b", config: Lab.config("machine-b-fou.yaml"))
        try lab.sh(in: lab.ns("c"), "ping -c 1 -W 2 203.0.113.87")
        let finish = try lab.capture("r", "eth0", "udp and src host 203.0.113.86", name: "entropy")
        try lab.sh(in: lab.ns("c"), "for port in $(seq 30001 30032); do echo flow | nc.openbsd -u -w0 -p $port 203.0.113.87 9; done")
        try lab.transfer(from: "c", to: "a", address: "203.0.113.87", megabytes: 4)
        // The outer source port, and the inner TCP port (tshark decodes FOU as IP by its port).
        let tshark = try lab.sh("tshark -r \(finish()) -d udp.port==5555,ip -T fields -E occurrence=f -e udp.srcport -e tcp.dstport "
                                + "-e udp.dstport 2>/dev/null")
        var flowPorts: Set<String> = [], streamPorts: Set<String> = []
        for line in tshark.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            if fields[1] == "5001" { streamPorts.insert(fields[0]) } else if line.hasSuffix("\t5555") { flowPorts.insert(fields[0]) }
        }
        #expect(flowPorts.count >= 20, "32 flows left from \(flowPorts.count) ports")
        #expect(flowPorts.allSatisfy { (Int($0) ?? 0) >= 32768 && (Int($0) ?? 0) <= 60999 }, "the kernel's local port range")
        #expect(streamPorts.count == 1, "one TCP stream, one port: \(streamPorts)")
    }

    /// A router whose link towards A takes 1400 bytes: its "fragmentation needed" (or, over IPv6, "packet
    /// too big") about B's outer packets lowers B's MTU towards A by that kind's overhead, and the next
    /// packet too big is answered by B with exactly that MTU.
    @Test(arguments: Kind.all)
    func aSmallerPathLowersThePeersMTUByItsOverhead(kind: Kind) throws {
        let lab = Lab("pmtu\(kind.name.prefix(1))")
        defer { lab.teardown() }
        try kind.build(lab)
        try lab.sh(in: lab.ns("r"), "ip link set eth0 mtu 1400")
        let configA = try kind.config(lab, "a"), configB = try kind.config(lab, "b")
        _ = try lab.startIpipd(in: "a", config: configA)
        _ = try lab.startIpipd(in: "b", config: configB)
        try lab.sh(in: lab.ns("c"), "ping -c 1 -W 2 203.0.113.87")
        let expected = 1400 - kind.overhead
        // The first large packet is lost on the way (and reported to B); B answers the next one itself.
        _ = lab.run(in: lab.ns("c"), "ping -M do -c 3 -i 0.3 -W 1 -s \(1500 - kind.overhead - 28) 203.0.113.87")
        let answer = lab.run(in: lab.ns("c"), "ping -M do -c 1 -W 1 -s \(1500 - kind.overhead - 28) 203.0.113.87").output
        #expect(answer.contains("mtu = \(expected)") || answer.contains("mtu=\(expected)"), "\(kind): \(answer)")
        let status = try lab.waitForStatus("b", config: configB) { (try? $0.peer("machine-a").pathMTU) == expected }
        #expect(try status.peer("machine-a").pathMTU == expected && status.capture.icmpActedOn >= 1, "\(kind): \(status.peers)")
        let answer6 = lab.run(in: lab.ns("c"), "ping -6 -M do -c 1 -W 1 -s \(1500 - kind.overhead - 48) 2001:db8:b::87").output
        #expect(answer6.contains("mtu=\(max(expected, 1280))") || answer6.contains("mtu = \(max(expected, 1280))"), "\(kind): \(answer6)")
    }

    /// Hostile headers of each kind, sent as if from A: each dropped and counted for what it is, the
    /// well-formed ones among them delivered, no frame unaccounted for, nothing answered, the daemon alive.
    @Test(arguments: Kind.all)
    func hostileHeadersOfEachKindAreDroppedAndCounted(kind: Kind) throws {
        let lab = Lab("host\(kind.name.prefix(1))")
        defer { lab.teardown() }
        try kind.build(lab)
        let configB = try kind.config(lab, "b")
        let daemon = try lab.startIpipd(in: "b", config: configB)
        let before = try lab.status("b", config: configB)
        // ICMP errors to the forger (the tunnel's own traffic to A passes R too: B's packets to C's replies).
        let answers = try lab.capture("r", "eth1", "ether dst \(try lab.mac("r", "eth1")) and ((icmp and icmp[0] != 0 and icmp[0] != 8) "
                                      + "or (icmp6 and ip6[40] < 128))", name: "answers-\(kind.name)")
        let sent = try lab.craft(Self.craft, "\(kind.name)-hostile", from: "r", "eth1", to: "b", "eth0")
        var counts: [String: UInt64] = [:]
        for line in sent.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let count = UInt64(fields[1]) { counts[String(fields[0])] = count }
        }
        let status = try lab.waitForStatus("b", config: configB, timeout: 5) {
            $0.capture.frames - before.capture.frames >= counts.values.reduce(0, +)
        }
        for (reason, count) in counts where !["delivered", "fragmented-delivered"].contains(reason) {
            #expect(status.dropped(reason) == count, "\(kind) \(reason): \(status.drops)")
        }
        let peer = try status.peer("machine-a")
        #expect(peer.decapsulated.packets == (counts["delivered"] ?? 0) + (counts["fragmented-delivered"].map { _ in 1 } ?? 0),
                "\(kind): \(peer)")
        #expect(status.capture.unaccounted == 0 && status.capture.fragmentsHeld == 0, "\(status.capture)")
        let answered = try lab.dissect(answers(), ["icmpv6.type", "icmpv6.pointer"])
        if kind.ipv6Underlay {
            // The headers the ingress program does not know reach the kernel, which judges them as for any
            // packet to its address: a routing header in use (its segments-left field, octet 42) and a
            // misplaced Hop-by-Hop header (the next-header field naming it, octet 40) get the kernel's own
            // parameter problem, rate-limited by net.ipv6.icmp.ratelimit. ipipd answers none.
            #expect(answered.allSatisfy { $0[0] == "4" && ["40", "42"].contains($0[1]) } && answered.count <= 2, "\(answered)")
        } else {
            #expect(answered.isEmpty, "B answered a forged packet: \(answered)")
        }
        #expect(daemon.process.isRunning)
    }

    /// RFC 2473 §4.1.1, as ip6tnl does it: an IPv6 packet whose own Tunnel Encapsulation Limit is 0 enters
    /// no tunnel; its sender gets a parameter problem pointing at the limit.
    @Test func anIPv6PacketWithNoEncapsulationLeftIsRefusedWithAParameterProblem() throws {
        let lab = Lab("tel0")
        defer { lab.teardown() }
        try lab.buildSeedLabOverIPv6()
        let configB = try Kind.ip6tnl.config(lab, "b")
        _ = try lab.startIpipd(in: "b", config: configB)
        try lab.sh(in: lab.ns("c"), "ping -6 -c 1 -W 1 2001:db8:b::87 || true")   // C resolves the ghost
        let problems = try lab.capture("c", "eth0", "icmp6 and ip6[40] = 4", name: "parameter-problem")
        try lab.craft(Self.craft, "tel-zero", from: "c", "eth0", to: "b", "eth0")
        let rows = try lab.dissect(problems(), ["icmpv6.type", "icmpv6.code", "icmpv6.pointer"])
        #expect(rows.count == 1 && rows.first == ["4", "0", "44"], "\(rows)")
        let status = try lab.waitForStatus("b", config: configB) { $0.dropped("encapsulation-limit") == 1 }
        #expect(status.dropped("encapsulation-limit") == 1, "\(status.drops)")
    }
}
