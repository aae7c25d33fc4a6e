import Foundation
import IPIPCore
import Testing

/// The labs the integration tests build, on documentation addresses only.
extension Lab {
    static func config(_ name: String) -> String { repository.appendingPathComponent("config/\(name)").path }

    /// h1 — A — R — B — h2, the gateways' uplinks receiving like real NICs (GRO on; see `receiveLikeANIC`).
    /// R routes between the gateways' uplinks (198.51.100.0/24, 203.0.113.0/24)
    /// and knows nothing of 192.0.2.0/24, which the gateways split between their LANs, nor of IPv6:
    /// h1's 2001:db8:1::/64 and h2's 2001:db8:2::/64 reach each other only as protocol 41.
    func buildTwoSites(uplinkGRO: Bool = Lab.uplinkGRO) throws {
        for role in ["h1", "a", "r", "b", "h2"] { try namespace(role) }
        try link(ns("h1"), "eth0", ns("a"), "lan0")
        try link(ns("a"), "eth0", ns("r"), "eth0")
        try link(ns("r"), "eth1", ns("b"), "eth0")
        try link(ns("b"), "lan0", ns("h2"), "eth0")
        if uplinkGRO {
            try receiveLikeANIC(ns("a"), "eth0", peer: ns("r"), "eth0")
            try receiveLikeANIC(ns("b"), "eth0", peer: ns("r"), "eth1")
        }
        try sh(in: ns("h1"), "ip addr add 192.0.2.10/25 dev eth0 && ip route add default via 192.0.2.1")
        try sh(in: ns("a"), "ip addr add 192.0.2.1/25 dev lan0 && ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1")
        try sh(in: ns("r"), "ip addr add 198.51.100.1/24 dev eth0 && ip addr add 203.0.113.1/24 dev eth1 && sysctl -qw net.ipv4.ip_forward=1")
        try sh(in: ns("b"), "ip addr add 203.0.113.86/24 dev eth0 && ip route add default via 203.0.113.1 && ip addr add 192.0.2.129/25 dev lan0")
        try sh(in: ns("h2"), "ip addr add 192.0.2.130/25 dev eth0 && ip route add default via 192.0.2.129")
        try sh(in: ns("h1"), "ip addr add 2001:db8:1::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:1::1")
        try sh(in: ns("a"), "ip addr add 2001:db8:1::1/64 dev lan0 nodad")
        try sh(in: ns("b"), "ip addr add 2001:db8:2::1/64 dev lan0 nodad")
        try sh(in: ns("h2"), "ip addr add 2001:db8:2::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:2::1")
    }

    /// The seed's lab: A — R — LAN(B, C, and optionally D), with the LAN a bridge in its own namespace and
    /// A's and B's uplinks receiving like real NICs (GRO on; see `receiveLikeANIC`);
    /// the LAN is dual stack (2001:db8:b::/64), the uplinks IPv4 only.
    /// `addressOfB`: B's own address (an HA pair's box leaves the seed's .86 to keepalived).
    func buildSeedLab(withSecondHost: Bool = false, addressOfB: String = "203.0.113.86", uplinkGRO: Bool = Lab.uplinkGRO) throws {
        var roles = ["a", "r", "lan", "b", "c"]
        if withSecondHost { roles.append("d") }
        for role in roles { try namespace(role) }
        try sh(in: ns("lan"), "ip link add br0 type bridge && ip link set br0 up")
        try link(ns("a"), "eth0", ns("r"), "eth0")
        try link(ns("r"), "eth1", ns("lan"), "pr")
        try link(ns("b"), "eth0", ns("lan"), "pb")
        try link(ns("c"), "eth0", ns("lan"), "pc")
        if withSecondHost { try link(ns("d"), "eth0", ns("lan"), "pd") }
        try sh(in: ns("lan"), (withSecondHost ? ["pr", "pb", "pc", "pd"] : ["pr", "pb", "pc"]).map { "ip link set \($0) master br0" }.joined(separator: " && "))
        if uplinkGRO {
            try receiveLikeANIC(ns("a"), "eth0", peer: ns("r"), "eth0")
            try receiveLikeANIC(ns("b"), "eth0", peer: ns("lan"), "pb")
        }
        try sh(in: ns("a"), "ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1")
        try sh(in: ns("r"), "ip addr add 198.51.100.1/24 dev eth0 && ip addr add 203.0.113.1/24 dev eth1 && sysctl -qw net.ipv4.ip_forward=1")
        try sh(in: ns("b"), "ip addr add \(addressOfB)/24 dev eth0 && ip route add default via 203.0.113.1")
        try sh(in: ns("c"), "ip addr add 203.0.113.20/24 dev eth0 && ip route add default via 203.0.113.1")
        if withSecondHost { try sh(in: ns("d"), "ip addr add 203.0.113.30/24 dev eth0") }
        try sh(in: ns("b"), "ip addr add 2001:db8:b::86/64 dev eth0 nodad")
        try sh(in: ns("c"), "ip addr add 2001:db8:b::20/64 dev eth0 nodad")
    }

    /// The seed's lab over an IPv6-only underlay: A's uplink has 2001:db8:a::37 and no IPv4 address, R
    /// routes IPv6 between 2001:db8:a::/64 and the LAN's 2001:db8:b::/64, and B's endpoint is its LAN
    /// address 2001:db8:b::86 (config/machine-{a,b}-ip6tnl.yaml).
    func buildSeedLabOverIPv6(uplinkGRO: Bool = Lab.uplinkGRO) throws {
        try buildSeedLab(uplinkGRO: uplinkGRO)
        try sh(in: ns("a"), "ip addr del 198.51.100.37/24 dev eth0 && ip addr add 2001:db8:a::37/64 dev eth0 nodad "
               + "&& ip -6 route add default via 2001:db8:a::1")
        try sh(in: ns("r"), "ip addr add 2001:db8:a::1/64 dev eth0 nodad && ip addr add 2001:db8:b::1/64 dev eth1 nodad "
               + "&& sysctl -qw net.ipv6.conf.all.forwarding=1")
        try sh(in: ns("b"), "ip -6 route add default via 2001:db8:b::1")
        // The interfaces' link-local addresses are still tentative (duplicate address detection, about a
        // second): until then R sends no Neighbor Solicitation, and the first packets wait.
        for role in ["a", "r", "b", "c"] {
            #expect(eventually(timeout: 5) { (try? sh(in: ns(role), "ip -6 addr show tentative"))?.isEmpty == true }, "\(role)'s addresses stay tentative")
        }
    }

    /// The seed's lab with machine A behind a NAT, as at home: A (198.18.0.2) — N, an nftables masquerade
    /// to its outside address 198.51.100.37 (the seed's A address, which B's configs name) — R — LAN.
    func buildSeedLabBehindNAT(uplinkGRO: Bool = Lab.uplinkGRO) throws {
        try buildSeedLab(uplinkGRO: uplinkGRO)
        try namespace("n")
        try sh(in: ns("a"), "ip link del eth0")   // and R's end of it
        try link(ns("a"), "eth0", ns("n"), "eth0")
        try link(ns("n"), "eth1", ns("r"), "eth0")
        if uplinkGRO { try receiveLikeANIC(ns("a"), "eth0", peer: ns("n"), "eth0") }
        try sh(in: ns("r"), "ip addr add 198.51.100.1/24 dev eth0")
        try sh(in: ns("a"), "ip addr add 198.18.0.2/24 dev eth0 && ip route add default via 198.18.0.1")
        try sh(in: ns("n"), "ip addr add 198.18.0.1/24 dev eth0 && ip addr add 198.51.100.37/24 dev eth1 "
               + "&& ip route add default via 198.51.100.1 && sysctl -qw net.ipv4.ip_forward=1")
        try sh(in: ns("n"), "nft add table ip nat && nft 'add chain ip nat postrouting { type nat hook postrouting priority srcnat; }' "
               + "&& nft add rule ip nat postrouting oifname eth1 masquerade")
    }

    func ns(_ role: String) -> String { "\(tag)-\(role)" }

    /// `config/<base>` with each `(old, new)` text replaced, written to the scratch directory as `name`;
    /// returns its path. A replacement that finds nothing throws: the base changed under the test.
    func writeConfig(_ base: String, replacing replacements: [(String, String)], name: String) throws -> String {
        var text = try String(contentsOfFile: Lab.config(base), encoding: .utf8)
        for (old, new) in replacements {
            guard text.contains(old) else { throw LabError.commandFailed("edit \(base)", 0, "no `\(old)` in it") }
            text = text.replacingOccurrences(of: old, with: new)
        }
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `config/<base>` with `extra` appended (e.g. `tunnel: {delivery: routed}`), written to the scratch
    /// directory as `name`; returns its path.
    func writeConfig(_ base: String, appending extra: String, name: String) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try (try String(contentsOfFile: Lab.config(base), encoding: .utf8) + extra).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Sends `megabytes` of random data with netcat from one machine to another and checks that the
    /// SHA-256 on both ends agree (over IPv6 when `address` is an IPv6 address).
    func transfer(from sender: String, to receiver: String, address: String, megabytes: Int = 10) throws {
        let input = scratch.appendingPathComponent("in-\(sender)").path
        let output = scratch.appendingPathComponent("out-\(receiver)").path
        let family = address.contains(":") ? "-6" : "-4"
        try sh("head -c \(megabytes << 20) /dev/urandom > \(input)")
        let server = try spawn(in: ns(receiver), ["sh", "-c", "nc.openbsd \(family) -l 5001 > \(output)"], logName: "nc-\(receiver)")
        var listening = false
        for _ in 0..<100 where !listening {
            listening = run(in: ns(receiver), "ss -Hltn 'sport = :5001' | grep -q 5001").status == 0
            if !listening { usleep(50_000) }
        }
        #expect(listening, "netcat did not start listening on \(receiver)")
        try sh(in: ns(sender), "timeout 60 nc.openbsd -N \(address) 5001 < \(input)", timeout: 70)
        let deadline = Date().addingTimeInterval(30)
        while server.process.isRunning && Date() < deadline { usleep(50_000) }
        let sums = try sh("sha256sum \(input) \(output)").split(separator: "\n").map { $0.split(separator: " ")[0] }
        #expect(sums.count == 2 && sums[0] == sums[1], "SHA-256 differs after \(sender) → \(receiver)")
    }

    /// Runs a scapy scenario of `script` (craft.py, craft6.py) from `role`, out of `interface`, to the MAC
    /// of `target`'s `targetInterface`; returns what the script printed.
    @discardableResult
    func craft(_ script: String, _ scenario: String, from role: String, _ interface: String, to target: String, _ targetInterface: String) throws -> String {
        let mac = try mac(target, targetInterface)
        return try sh(in: ns(role), "python3 \(script) \(scenario) \(interface) \(mac)")
    }

    /// A packet capture in `role` on `interface`; `finish()` stops it and returns the file.
    func capture(_ role: String, _ interface: String, _ filter: String, name: String) throws -> () -> String {
        let file = scratch.appendingPathComponent("\(name).pcap").path
        let daemon = try spawn(in: ns(role), ["tcpdump", "-ni", interface, "-U", "-w", file, filter], logName: "tcpdump-\(name)")
        #expect(daemon.waitForLog("listening on"))
        return {
            Lab.settle(file: file)
            _ = daemon.stop(signal: SIGINT)
            return file
        }
    }

    /// tshark's dissection: one row per packet, the given fields of the first (outer) IP layer.
    func dissect(_ file: String, _ fields: [String], occurrence: String = "f", filter: String = "") throws -> [[String]] {
        let arguments = fields.map { "-e \($0)" }.joined(separator: " ")
        let display = filter.isEmpty ? "" : "-Y '\(filter)'"
        let output = try sh("tshark -r \(file) \(display) -T fields -E occurrence=\(occurrence) -o ip.check_checksum:TRUE \(arguments) 2>/dev/null")
        return output.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    /// tcpdump printing what `filter` matches on `interface` in `role`'s namespace, line by line, once
    /// it is listening (the caller stops it and reads `output`).
    /// `verbose`: -vv, which also checks each packet's transport checksum ("udp sum ok").
    func watch(in role: String, _ interface: String, _ filter: String, logName: String, verbose: Bool = false) throws -> Daemon {
        let capture = try spawn(in: ns(role), ["tcpdump", "-lni", interface] + (verbose ? ["-vv"] : []) + [filter], logName: logName)
        #expect(capture.waitForLog("listening on"), "tcpdump did not start on \(role)'s \(interface)")
        return capture
    }

    /// One of the IP counters of `role`'s kernel (/proc/net/snmp: the first "Ip:" line names them, the
    /// second holds their values), e.g. InReceives (packets into IP input), InDelivers (delivered to a
    /// local protocol or raw socket), InUnknownProtos (no taker: "protocol unreachable").
    func ipCounter(_ name: String, in role: String) throws -> Int {
        let lines = try sh(in: ns(role), "grep '^Ip:' /proc/net/snmp").split(separator: "\n").map { $0.split(separator: " ") }
        guard lines.count == 2, let index = lines[0].firstIndex(where: { $0 == name }), let value = Int(lines[1][index]) else {
            throw LabError.commandFailed("read IP \(name) in \(role)", 0, "\(lines)")
        }
        return value
    }

    /// Packets the kernel of `role` took into IP input.
    func ipInputPackets(in role: String) throws -> Int { try ipCounter("InReceives", in: role) }

    /// The MAC address of an interface inside a namespace.
    func mac(_ role: String, _ interface: String) throws -> String {
        let line = try sh("ip -n \(ns(role)) -o link show \(interface)")
        guard let range = line.range(of: #"link/ether ([0-9a-f:]{17})"#, options: .regularExpression) else {
            throw LabError.commandFailed("find the MAC address of \(interface) in \(role)", 0, line)
        }
        return String(line[range].dropFirst("link/ether ".count))
    }

    /// Starts `ipipd run` in a namespace with its own runtime directory and waits until the tunnel is up.
    func startIpipd(in role: String, config: String, extraArguments: [String] = [], waitForUp: Bool = true) throws -> Daemon {
        let runtime = runtimeDirectory(role)
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let daemon = try spawn(in: ns(role), [Lab.ipipd, "run", "-c", config, "--runtime-dir", runtime] + extraArguments,
                               logName: "ipipd-\(role)")
        if waitForUp && !daemon.waitForLog("tunnel up") {
            throw LabError.commandFailed("ipipd run in \(role)", -1, daemon.output)
        }
        return daemon
    }

    /// Sends `count` IP-in-IP packets from `role` to B's uplink address, outer source `outerSource`,
    /// inner an ICMP echo from h1 to h2. scapy builds them, not our codecs.
    func sendIPIPEchoesToB(from role: String, outerSource: String, count: Int) throws {
        try sh(in: ns(role), """
            python3 -c "from scapy.all import IP, ICMP, send; send(IP(src='\(outerSource)', dst='203.0.113.86')/IP(src='192.0.2.10', dst='192.0.2.130')/ICMP(), count=\(count), verbose=0)"
            """)
    }

    func runtimeDirectory(_ role: String) -> String { scratch.appendingPathComponent("run-\(role)").path }

    /// `ipipd status --json` of the daemon in `role`, decoded as the daemon encodes it (a missing field
    /// fails the decoding).
    func status(_ role: String, config: String) throws -> GatewayStatus {
        let output = try sh("\(Lab.ipipd) status --json -c \(config) --runtime-dir \(runtimeDirectory(role))")
        return try JSONDecoder().decode(GatewayStatus.self, from: Data(output.utf8))
    }

    /// Polls the daemon's status until `condition` holds (or `timeout` passes); returns the last one.
    @discardableResult
    func waitForStatus(_ role: String, config: String, timeout: TimeInterval = 5,
                       until condition: (GatewayStatus) throws -> Bool) throws -> GatewayStatus {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let status = try status(role, config: config)
            if try condition(status) || Date() >= deadline { return status }
            usleep(50_000)
        }
    }
}

extension Lab {
    /// Runs `scripts/<name>` with the tests' ipipd (`--binary`) and `--json`, expects it to succeed, and
    /// returns the figures it wrote.
    func runScript(_ name: String, _ arguments: String = "", timeout: TimeInterval) throws -> Any {
        let json = scratch.appendingPathComponent("\(name).json").path
        let run = run("\(Lab.repository.path)/scripts/\(name) \(arguments) --binary \(Lab.ipipd) --json \(json)", timeout: timeout)
        #expect(run.status == 0, "\(run.output)")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
@discardableResult
func eventually(timeout: TimeInterval = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

extension GatewayStatus {
    /// The peer called `name`; throws when the status has none.
    func peer(_ name: String) throws -> Peer {
        guard let peer = peers.first(where: { $0.name == name }) else {
            throw LabError.commandFailed("find peer \(name) in the status", 0, "\(peers.map(\.name))")
        }
        return peer
    }

    /// Drops counted for `reason` (the status lists only reasons that happened).
    func dropped(_ reason: String) -> UInt64 { drops[reason] ?? 0 }
}
