import Foundation
import IPIPCore
import Testing

/// Uplinks that merge what they receive, as real NICs do (issue 22): with GRO on a gateway's uplink
/// the kernel merges a tunneled TCP flow's segments into frames of up to 64 KiB before the capture sees
/// them. ipipd takes them whole and delivers them — as one GSO packet to the TUN device (delivery:
/// kernel) or cut back into the sender's segments (delivery: routed) — and drops what a forger could make
/// a merged frame look like. On the two-site lab h1 — A — R — B — h2 with GRO on both uplinks, whatever
/// IPIPD_LAB_GRO says.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, packet sockets"))
struct GROTests {
    static let craft = Lab.repository.appendingPathComponent("Tests/IntegrationTests/craft_offload.py").path

    func sites(_ lab: Lab, delivery: String) throws -> (a: String, b: String) {
        (try lab.writeConfig("lab-site-a.yaml", appending: "tunnel: {delivery: \(delivery)}\n", name: "a.yaml"),
         try lab.writeConfig("lab-site-b.yaml", appending: "tunnel: {delivery: \(delivery)}\n", name: "b.yaml"))
    }

    /// 10 MB each way, IPv4 and IPv6, keep their SHA-256; each receiving gateway took merged frames (the
    /// counters and tcpdump on its uplink say so), truncated none, and accounts for every frame; the
    /// counters give the segments as the sender sent them.
    @Test(arguments: ["kernel", "routed"])
    func tcpCrossesUplinksThatMergeLikeRealNICs(delivery: String) throws {
        let lab = Lab("gro")
        defer { lab.teardown() }
        try lab.buildTwoSites(uplinkGRO: true)
        let (siteA, siteB) = try sites(lab, delivery: delivery)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        let merged = try lab.watch(in: "b", "eth0", "ip proto 4 and greater 1600", logName: "merged-at-b")
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130 && ping -6 -c 2 -i 0.2 -W 2 2001:db8:2::10")
        try lab.transfer(from: "h1", to: "h2", address: "192.0.2.130")
        try lab.transfer(from: "h2", to: "h1", address: "192.0.2.10")
        try lab.transfer(from: "h1", to: "h2", address: "2001:db8:2::10")
        try lab.transfer(from: "h2", to: "h1", address: "2001:db8:1::10")
        merged.settle()
        #expect(merged.output.contains("198.51.100.37 > 203.0.113.86"), "no merged frame on B's uplink:\n\(merged.output.suffix(500))")
        for (role, config, peer) in [("a", siteA, "site-b"), ("b", siteB, "site-a")] {
            let status = try lab.status(role, config: config)
            let received = try status.peer(peer).decapsulated
            #expect(status.uplinkMergedFrames > 0 && status.uplinkMergedSegments > status.uplinkMergedFrames, "\(role): \(status.uplinkMergedFrames)")
            #expect(status.dropped("truncated-capture") == 0 && status.dropped("unsupported-offload") == 0, "\(role): \(status.drops)")
            #expect(status.capture.unaccounted == 0, "\(role): \(status.capture)")
            // The sender's segments, not the merged frames: 20 MiB in segments of at most 1,448 bytes.
            #expect(received.packets > 20 << 20 / 1448 && received.packets > status.capture.frames, "\(role): \(received)")
            #expect(try status.peer(peer).decapsulatedIPv6.packets > 10 << 20 / 1448)
        }
    }

    /// What else a NIC's receive path may do: keep GRO's segments as a list (rx-gro-list), merge UDP
    /// datagrams of forwarded flows (rx-udp-gro-forwarding). TCP and UDP still arrive whole, in both modes.
    @Test(arguments: [("rx-gro-list", "kernel"), ("rx-gro-list", "routed"),
                      ("rx-udp-gro-forwarding", "kernel"), ("rx-udp-gro-forwarding", "routed")])
    func otherReceiveOffloadsDeliverToo(feature: String, delivery: String) throws {
        let lab = Lab("grox")
        defer { lab.teardown() }
        try lab.buildTwoSites(uplinkGRO: true)
        try lab.sh(in: lab.ns("b"), "ethtool -K eth0 \(feature) on")
        let (siteA, siteB) = try sites(lab, delivery: delivery)
        _ = try lab.startIpipd(in: "a", config: siteA)
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130")
        try lab.transfer(from: "h1", to: "h2", address: "192.0.2.130", megabytes: 4)
        // 2,000 datagrams of 1,200 bytes in bursts of 20, each with its number: h2 counts the intact ones
        // and the damaged ones (cut wrong, or with another datagram's bytes). Its buffer holds all 2,000,
        // so that a receiver the machine's load delays loses none.
        let receiver = try lab.spawn(in: lab.ns("h2"), ["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.130", 7777)); s.settimeout(3)
            s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
            seen, damaged = set(), 0
            try:
                while True:
                    data = s.recv(2000)
                    n = int.from_bytes(data[:4], "big")
                    if len(data) == 1200 and data[4:] == bytes([n % 251]) * 1196: seen.add(n)
                    else: damaged += 1
            except socket.timeout:
                print("damaged", damaged, "intact", len(seen), flush=True)
            """], logName: "udp-receiver")
        try lab.sh(in: lab.ns("h1"), """
            python3 -c "
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for burst in range(100):
                for n in range(burst * 20, burst * 20 + 20): s.sendto(n.to_bytes(4, 'big') + bytes([n % 251]) * 1196, ('192.0.2.130', 7777))
                time.sleep(0.005)
            "
            """)
        #expect(receiver.waitForLog("intact", timeout: 15))
        let words = receiver.output.split(whereSeparator: \.isWhitespace)
        let damaged = words.firstIndex(of: "damaged").flatMap { Int(words[$0 + 1]) } ?? -1
        let intact = words.firstIndex(of: "intact").flatMap { Int(words[$0 + 1]) } ?? 0
        let status = try lab.status("b", config: siteB)
        // Nothing arrives damaged; a loaded machine may lose a few datagrams on the way (the uplink's
        // backlog, the capture's ring: `capture-drop`), never many.
        #expect(damaged == 0, "\(receiver.output)")
        #expect(intact >= 1800, "\(intact) of 2000 datagrams arrived intact:\n\(receiver.output)\n\(status.drops)")
        #expect(status.dropped("unsupported-offload") == 0 && status.capture.unaccounted == 0, "\(status.drops)")
        if feature == "rx-udp-gro-forwarding" { #expect(status.uplinkMergedFrames > 0) }
    }

    /// A neighbour on the uplink's segment that hands the kernel its packets with a virtio-net header (a
    /// container on a veth, PACKET_VNET_HDR) chooses that header itself. A checksum it left partial is
    /// completed, and h2 gets the datagram with its checksum right (tcpdump verifies it); a checksum to
    /// complete from the inner IP header on is dropped and counted; a GSO header for an IP-in-IP packet
    /// does not even leave the neighbour's kernel (no virtio-net header can say IP-in-IP), so that merged
    /// frames come only from the receiving kernel's own GRO or the NIC — the unit tests feed ipipd the lies.
    @Test func offloadHeadersFromANeighbourAreCheckedAgainstTheirPacket() throws {
        let lab = Lab("grof")
        defer { lab.teardown() }
        try lab.buildTwoSites(uplinkGRO: true)
        // R's side sends GSO and partial-checksum packets whole across the veth, as a neighbour with TSO does.
        try lab.sh(in: lab.ns("r"), "ethtool -K eth1 tso on >/dev/null")
        let (_, siteB) = try sites(lab, delivery: "kernel")
        _ = try lab.startIpipd(in: "b", config: siteB)
        let atH2 = try lab.watch(in: "h2", "eth0", "udp port 7777", logName: "h2", verbose: true)
        let mac = try lab.mac("b", "eth0")
        func send(_ scenario: String) throws -> Int {
            let output = try lab.sh(in: lab.ns("r"), "python3 \(Self.craft) \(scenario) eth1 \(mac)")
            return Int(output.split(separator: "\n").last ?? "") ?? -1
        }
        #expect(try send("partial-checksum") == 1)
        #expect(atH2.waitForLog("udp sum ok", timeout: 5), "h2:\n\(atH2.output)")
        #expect(try send("checksum-start-at-inner-header") == 1)
        #expect(try send("gso") == 0, "a neighbour's kernel sent a GSO IP-in-IP packet")
        let status = try lab.waitForStatus("b", config: siteB) { $0.dropped("unsupported-offload") >= 1 }
        #expect(status.dropped("unsupported-offload") == 1 && status.capture.unaccounted == 0, "\(status.drops)")
        #expect(try status.peer("site-a").decapsulated.packets == 1)
        atH2.settle()
        #expect(atH2.output.components(separatedBy: "192.0.2.10.40000 > 192.0.2.130.7777").count - 1 == 1, "h2:\n\(atH2.output)")
    }
}
