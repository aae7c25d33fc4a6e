import Foundation
import IPIPCore
import Testing

/// Two gateways carrying real traffic through the tunnel: h1 — A — R — B — h2.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct TunnelTests {
    let siteA = Lab.config("lab-site-a.yaml")
    let siteB = Lab.config("lab-site-b.yaml")

    /// With the uplinks as real NICs (GRO on) and as bare veths, where ipipd joins the segments itself.
    @Test(arguments: [true, false])
    func pingAndTCPCrossTheTunnelBothWaysAndOnlyIPIPCrossesTheRouter(uplinkGRO: Bool) throws {
        let lab = Lab("tun")
        defer { lab.teardown() }
        try lab.buildTwoSites(uplinkGRO: uplinkGRO)
        // Before the gateways run, R cannot carry h1 ↔ h2 traffic at all.
        #expect(lab.run(in: lab.ns("h1"), "ping -c 1 -W 1 192.0.2.130").status != 0)

        let routerCaptures = try ["eth0", "eth1"].map { interface in
            let file = lab.scratch.appendingPathComponent("r-\(interface).pcap").path
            let capture = try lab.spawn(in: lab.ns("r"), ["tcpdump", "-ni", interface, "-U", "-w", file, "not arp and not ip6"],
                                        logName: "tcpdump-\(interface)")
            #expect(capture.waitForLog("listening on"))
            return (capture, file)
        }
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)

        try lab.sh(in: lab.ns("h1"), "ping -c 3 -i 0.2 -W 2 192.0.2.130")
        try lab.sh(in: lab.ns("h2"), "ping -c 3 -i 0.2 -W 2 192.0.2.10")

        try lab.transfer(from: "h1", to: "h2", address: "192.0.2.130")
        try lab.transfer(from: "h2", to: "h1", address: "192.0.2.10")

        let statusA = try lab.status("a", config: siteA)
        #expect((try statusA.peer("site-b").encapsulated.packets) > 7000)
        #expect((try statusA.peer("site-b").decapsulated.packets) > 7000)
        // h1's TCP stream reached A's TUN device as large TSO packets, cut into segments by ipipd (the
        // transfers' SHA-256 checks above cover their content).
        #expect(statusA.tcpPacketsSegmented > 100, "\(statusA)")
        // and h2's stream reached A's kernel joined into super-packets: by A's uplink (GRO, as a real NIC),
        // or, with the uplink a bare veth, by ipipd (its own GRO for the TUN device).
        if uplinkGRO {
            #expect(statusA.uplinkMergedSegments > 1000, "\(statusA)")
        } else {
            #expect(statusA.tcpSegmentsCoalesced > 1000, "\(statusA)")
        }

        for (capture, file) in routerCaptures {
            _ = capture.stop(signal: SIGINT)
            let lines = try lab.sh("tcpdump -nr \(file) 2>/dev/null").split(separator: "\n")
            #expect(lines.count > 1000, "\(file): \(lines.count) packets")
            // Every IPv4 packet on R's links is protocol 4 between the two gateways.
            let foreign = lines.filter {
                !($0.contains("198.51.100.37 > 203.0.113.86: IP ") || $0.contains("203.0.113.86 > 198.51.100.37: IP "))
            }
            #expect(foreign.isEmpty, "not IP-in-IP between A and B:\n\(foreign.prefix(5).joined(separator: "\n"))")
            #expect(!lines.contains { $0.contains("protocol 4 unreachable") || $0.contains("ICMP") && $0.contains("unreachable") })
        }
    }

    /// Issue 26: B joins bursts of h1's UDP datagrams into UDP_L4 super-packets for its TUN device; the
    /// kernel cuts them again (here in software: B's LAN side as a NIC without UDP segmentation or
    /// checksum offload), and h2 receives each datagram as h1 sent it — its IP identification, its
    /// length, its payload and its checksum, byte for byte, in order.
    @Test func udpBurstsAreJoinedForTheKernelAndReachTheLANAsSent() throws {
        let lab = Lab("udpg")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("h1"), "ethtool -K eth0 tx off >/dev/null")
        try lab.sh(in: lab.ns("b"), "ethtool -K lan0 tx off tx-udp-segmentation off >/dev/null")
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130")
        let captures = try [("h1", "sent"), ("h2", "received")].map { role, name in
            let file = lab.scratch.appendingPathComponent("\(name).pcap").path
            let capture = try lab.spawn(in: lab.ns(role), ["tcpdump", "-ni", "eth0", "-U", "-B", "8192", "-w", file, "udp and port 5001"],
                                        logName: "tcpdump-\(name)")
            #expect(capture.waitForLog("listening on"))
            return (capture, file)
        }
        // h2 listens, or its port unreachables would make h1's connected socket fail.
        let sink = try lab.spawn(in: lab.ns("h2"), ["python3", "-c", """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5001)); s.settimeout(0.5)
            print("bound", flush=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try: s.recv(2048)
                except socket.timeout: pass
            """],
                                 logName: "sink")
        #expect(sink.waitForLog("bound"))
        // Bursts of 32 datagrams of 100 bytes on a connected socket with DF (consecutive IDs), 2 ms apart.
        let sender = """
            import socket, struct, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, 10, 2)   # IP_MTU_DISCOVER: IP_PMTUDISC_DO
            s.connect(("192.0.2.130", 5001))
            for burst in range(60):
                for index in range(32):
                    s.send(struct.pack("!II", burst, index) + bytes(range(92)))
                time.sleep(0.002)
            """
        try sender.write(toFile: lab.scratch.appendingPathComponent("send.py").path, atomically: true, encoding: .utf8)
        try lab.sh(in: lab.ns("h1"), "timeout 20 python3 \(lab.scratch.appendingPathComponent("send.py").path)")
        let status = try lab.waitForStatus("b", config: siteB) { (try? $0.peer("site-a").decapsulated.packets) ?? 0 >= 1920 }
        #expect(status.udpDatagramsCoalesced > 100, "\(status)")
        for (capture, _) in captures { capture.settle(); _ = capture.stop(signal: SIGINT) }
        // (IP identification, UDP header and payload) of each datagram, as h1 sent them and as h2 got them.
        let compare = """
            import sys
            from scapy.all import rdpcap, IP, UDP, raw
            def datagrams(path):
                return [(p[IP].id, raw(p[UDP])) for p in rdpcap(path) if UDP in p]
            sent, received = datagrams(sys.argv[1]), datagrams(sys.argv[2])
            print(len(sent), "sent,", len(received), "received")
            assert len(sent) == 1920, "h1's capture missed datagrams"
            # Each datagram that arrived is one h1 sent, unchanged and in order; a busy machine may lose a few.
            position = 0
            for datagram in received:
                while position < len(sent) and sent[position] != datagram:
                    position += 1
                assert position < len(sent), ("not as sent, or out of order", datagram)
                position += 1
            assert len(received) >= len(sent) * 0.98, "more than 2 % lost"
            print("identical")
            """
        try compare.write(toFile: lab.scratch.appendingPathComponent("compare.py").path, atomically: true, encoding: .utf8)
        let result = lab.run("python3 \(lab.scratch.appendingPathComponent("compare.py").path) \(captures[0].1) \(captures[1].1)")
        #expect(result.status == 0 && result.output.contains("identical"), "\(result.output)")
    }

    @Test func ipipFromANonPeerIsDroppedCountedAndNeverAnswered() throws {
        let lab = Lab("nonp")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "b", config: siteB)
        let capture = try lab.watch(in: "r", "eth1", "icmp", logName: "tcpdump-icmp")
        // R (198.51.100.1 / 203.0.113.1) is no peer of B.
        try lab.sendIPIPEchoesToB(from: "r", outerSource: "203.0.113.1", count: 5)
        let status = try lab.waitForStatus("b", config: siteB) { $0.dropped("unknown-peer") >= 5 }
        #expect(status.dropped("unknown-peer") == 5)
        #expect((try status.peer("site-a").decapsulated.packets) == 0)
        capture.settle()
        _ = capture.stop(signal: SIGINT)
        #expect(!capture.output.contains("IP 203.0.113.86 >"), "B answered:\n\(capture.output)")
    }

    /// The eBPF program at B's uplink ingress takes the tunnel packets away from the kernel's own IP
    /// input once libpcap has them; the kernel gets them back when ipipd stops. (The inner packets do go
    /// through IP input — on tunl, forwarded, as with Linux's ipip — but are not delivered locally.)
    @Test func theKernelSkipsTunnelPacketsTheCaptureTookUntilIpipdStops() throws {
        let lab = Lab("ingr")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "a", config: siteA)
        let b = try lab.startIpipd(in: "b", config: siteB)
        #expect(b.output.contains("attach an eBPF program at eth0's TCX ingress") && !b.output.contains("(skipped:"), "\(b.output)")

        // Outer packets that reach IP input are delivered to the protocol claim's socket (InDelivers) or,
        // with nothing to take them, answered "protocol unreachable" (InUnknownProtos).
        func localDeliveries() throws -> Int { try lab.ipCounter("InDelivers", in: "b") + lab.ipCounter("InUnknownProtos", in: "b") }
        try lab.sh(in: lab.ns("h1"), "ping -c 1 -W 2 192.0.2.130")   // neighbours resolved, tunnel carrying
        let before = try localDeliveries()
        // One way only (unsolicited echo replies, which h2 ignores): nothing for B itself.
        try lab.sh(in: lab.ns("h1"), """
            python3 -c "from scapy.all import IP, ICMP, send; send(IP(dst='192.0.2.130')/ICMP(type=0), count=40, verbose=0)"
            """)
        let status = try lab.waitForStatus("b", config: siteB) { try $0.peer("site-a").decapsulated.packets >= 41 }
        #expect((try status.peer("site-a").decapsulated.packets) >= 41)
        let during = try localDeliveries()
        #expect(during - before < 10, "B's kernel delivered \(during - before) packets locally while ipipd ran")

        _ = b.stop(signal: SIGTERM)
        try lab.sendIPIPEchoesToB(from: "r", outerSource: "198.51.100.37", count: 20)
        #expect(try eventually { try localDeliveries() - during >= 20 }, "the program stayed attached after ipipd stopped")
    }

    /// Protocol-4 packets that reach the kernel's IP input anyway (here: arriving on the LAN side, where
    /// no eBPF program drops them) meet the protocol claim, not "protocol unreachable".
    @Test func protocol4OffTheUplinkIsNotAnsweredWithProtocolUnreachable() throws {
        let lab = Lab("clm4")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "b", config: siteB)
        let capture = try lab.watch(in: "h2", "eth0", "icmp", logName: "tcpdump-h2")
        let before = try lab.ipInputPackets(in: "b")
        try lab.sendIPIPEchoesToB(from: "h2", outerSource: "192.0.2.130", count: 5)
        // B's IP input took them (and would have answered at once): whatever B sent has left by now.
        #expect(try eventually { try lab.ipInputPackets(in: "b") - before >= 5 })
        capture.settle()
        _ = capture.stop(signal: SIGINT)
        #expect(!capture.output.contains("unreachable"), "B answered:\n\(capture.output)")
    }

    /// This kernel has no VLAN devices, so scapy puts an 802.1Q-tagged IP-in-IP frame on the wire itself;
    /// the capture filter and the decapsulator must see through the tag.
    @Test func taggedFramesAreDecapsulated() throws {
        let lab = Lab("vlan")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        _ = try lab.startIpipd(in: "b", config: siteB)
        let macB = try lab.mac("b", "eth0")
        let echo = try lab.watch(in: "h2", "eth0", "icmp", logName: "tcpdump-h2")
        try lab.sh(in: lab.ns("r"), """
            python3 -c "from scapy.all import Ether, Dot1Q, IP, ICMP, sendp; sendp(Ether(dst='\(macB)')/Dot1Q(vlan=42)/IP(src='198.51.100.37', dst='203.0.113.86')/IP(src='192.0.2.10', dst='192.0.2.130')/ICMP(id=4242), iface='eth1', count=3, verbose=0)"
            """)
        #expect(echo.waitForLog("192.0.2.10 > 192.0.2.130: ICMP echo request, id 4242", timeout: 5), "\(echo.output)")
        let status = try lab.status("b", config: siteB)
        #expect((try status.peer("site-a").decapsulated.packets) == 3)
    }

    /// `tunnel.clamp-mss: auto` on A alone: h1's SYNs reach h2, and h2's SYN-ACKs reach h1, announcing
    /// what fits the tunnel (MTU 1480: 1440 for IPv4, 1420 for IPv6) instead of what their 1500-byte
    /// LANs allow; the connections work (their kernels take the checksums), and A counts both directions.
    @Test func synsAreClampedToTheTunnelBothWaysAndBothFamilies() throws {
        let lab = Lab("mss")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let clamped = try lab.writeConfig("lab-site-a.yaml", appending: "tunnel: {clamp-mss: auto}\n", name: "a.yaml")
        let plan = try lab.sh(in: lab.ns("a"), "\(Lab.ipipd) plan -c \(clamped)")
        #expect(plan.contains("clamp-mss: auto") && plan.contains("at most 1440 (IPv4) and 1420 (IPv6)"), "\(plan)")
        _ = try lab.startIpipd(in: "a", config: clamped)
        _ = try lab.startIpipd(in: "b", config: siteB)
        let atH2 = try lab.capture("h2", "eth0", "tcp[tcpflags] & tcp-syn != 0 or ip6[40 + 13] & 2 != 0", name: "syn-h2")
        let atH1 = try lab.capture("h1", "eth0", "tcp[tcpflags] & tcp-syn != 0 or ip6[40 + 13] & 2 != 0", name: "syn-h1")
        try lab.transfer(from: "h1", to: "h2", address: "192.0.2.130", megabytes: 1)
        try lab.transfer(from: "h1", to: "h2", address: "2001:db8:2::10", megabytes: 1)
        let (fileH2, fileH1) = (atH2(), atH1())
        let syns = try lab.dissect(fileH2, ["ip.version", "ipv6.version", "tcp.options.mss_val"], filter: "tcp.flags.syn == 1 && tcp.flags.ack == 0")
        let synAcks = try lab.dissect(fileH1, ["ip.version", "ipv6.version", "tcp.options.mss_val"], filter: "tcp.flags.syn == 1 && tcp.flags.ack == 1")
        func mss(_ rows: [[String]], ipv6: Bool) -> Set<String> { Set(rows.filter { ($0[1] == "6") == ipv6 }.map { $0[2] }) }
        #expect(mss(syns, ipv6: false) == ["1440"] && mss(syns, ipv6: true) == ["1420"], "SYNs at h2: \(syns)")
        #expect(mss(synAcks, ipv6: false) == ["1440"] && mss(synAcks, ipv6: true) == ["1420"], "SYN-ACKs at h1: \(synAcks)")
        let status = try lab.status("a", config: clamped)
        #expect(status.tcpMSSClampedSent >= 2 && status.tcpMSSClampedReceived >= 2, "\(status.tcpMSSClampedSent) \(status.tcpMSSClampedReceived)")
    }

    @Test func sigtermRemovesEverythingAndARestartAfterSIGKILLWorks() throws {
        let lab = Lab("term")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let machineA = Lab.config("machine-a.yaml")
        let a = lab.ns("a")
        let originalForwarding = try lab.sh(in: a, "sysctl -n net.ipv4.ip_forward")

        var daemon = try lab.startIpipd(in: "a", config: machineA)
        #expect(try lab.sh(in: a, "ip route show proto 73").contains("203.0.113.86 via 198.51.100.1 dev eth0"))
        let elapsed = daemon.stop(signal: SIGTERM, timeout: 5)
        #expect(elapsed != nil && elapsed! < 1.0, "SIGTERM took \(String(describing: elapsed)) s")
        #expect(try lab.sh(in: a, "ip -o link show").contains("tunl") == false)
        #expect(try lab.sh(in: a, "ip route show proto 73").isEmpty)
        #expect(try lab.sh(in: a, "sysctl -n net.ipv4.ip_forward") == originalForwarding)

        // SIGKILL leaves the pinned route and the sysctl behind; the next start takes them over.
        daemon = try lab.startIpipd(in: "a", config: machineA)
        _ = daemon.stop(signal: SIGKILL)
        #expect(try lab.sh(in: a, "ip route show proto 73").contains("203.0.113.86"))
        daemon = try lab.startIpipd(in: "a", config: machineA)
        #expect(daemon.output.contains("taking over"))
        try lab.sh(in: a, "ping -c 1 -W 1 198.51.100.1")
        _ = daemon.stop(signal: SIGTERM)
        #expect(try lab.sh(in: a, "ip route show proto 73").isEmpty)
        #expect(try lab.sh(in: a, "sysctl -n net.ipv4.ip_forward") == originalForwarding)
    }

    @Test func aFailureHalfWayUndoesWhatWasDone() throws {
        let lab = Lab("half")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let a = lab.ns("a")
        // An admin's route to the same prefix makes the tunnel route fail after the TUN, address and
        // sysctls were set up: all of it must be undone.
        try lab.sh(in: a, "ip route add 192.0.2.128/25 via 198.51.100.1")
        let daemon = try lab.startIpipd(in: "a", config: siteA, waitForUp: false)
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 1)
        #expect(daemon.output.contains("already exists"), "\(daemon.output)")
        #expect(try lab.sh(in: a, "ip -o link show").contains("tunl") == false)
        #expect(try lab.sh(in: a, "sysctl -n net.ipv4.ip_forward") == "0\n")
    }

    @Test func runRefusesWithoutRootAndOnProblems() throws {
        let lab = Lab("refu")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let unprivileged = lab.run(in: lab.ns("a"), "setpriv --reuid=65534 --regid=65534 --clear-groups \(Lab.ipipd) run -c \(siteA)")
        #expect(unprivileged.status == 1 && unprivileged.output.contains("needs root"))
        // Site B's config on machine A: its uplink address is not A's.
        let wrongMachine = lab.run(in: lab.ns("a"), "\(Lab.ipipd) run -c \(siteB) --runtime-dir \(lab.scratch.path)")
        #expect(wrongMachine.status == 1 && wrongMachine.output.contains("not assigned to eth0"), "\(wrongMachine.output)")
    }
}
