import Foundation

/// The labs the integration tests build, on documentation addresses only.
extension Lab {
    static func config(_ name: String) -> String { repository.appendingPathComponent("config/\(name)").path }

    /// h1 — A — R — B — h2. R routes between the gateways' uplinks (198.51.100.0/24, 203.0.113.0/24)
    /// and knows nothing of 192.0.2.0/24, which the gateways split between their LANs.
    func buildTwoSites() throws {
        for role in ["h1", "a", "r", "b", "h2"] { try namespace(role) }
        try link(ns("h1"), "eth0", ns("a"), "lan0")
        try link(ns("a"), "eth0", ns("r"), "eth0")
        try link(ns("r"), "eth1", ns("b"), "eth0")
        try link(ns("b"), "lan0", ns("h2"), "eth0")
        try sh(in: ns("h1"), "ip addr add 192.0.2.10/25 dev eth0 && ip route add default via 192.0.2.1")
        try sh(in: ns("a"), "ip addr add 192.0.2.1/25 dev lan0 && ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1")
        try sh(in: ns("r"), "ip addr add 198.51.100.1/24 dev eth0 && ip addr add 203.0.113.1/24 dev eth1 && sysctl -qw net.ipv4.ip_forward=1")
        try sh(in: ns("b"), "ip addr add 203.0.113.86/24 dev eth0 && ip route add default via 203.0.113.1 && ip addr add 192.0.2.129/25 dev lan0")
        try sh(in: ns("h2"), "ip addr add 192.0.2.130/25 dev eth0 && ip route add default via 192.0.2.129")
    }

    /// The seed's lab: A — R — LAN(B, C, and optionally D), with the LAN a bridge in its own namespace.
    func buildSeedLab(withSecondHost: Bool = false) throws {
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
        try sh(in: ns("a"), "ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1")
        try sh(in: ns("r"), "ip addr add 198.51.100.1/24 dev eth0 && ip addr add 203.0.113.1/24 dev eth1 && sysctl -qw net.ipv4.ip_forward=1")
        try sh(in: ns("b"), "ip addr add 203.0.113.86/24 dev eth0 && ip route add default via 203.0.113.1")
        try sh(in: ns("c"), "ip addr add 203.0.113.20/24 dev eth0 && ip route add default via 203.0.113.1")
        if withSecondHost { try sh(in: ns("d"), "ip addr add 203.0.113.30/24 dev eth0") }
    }

    func ns(_ role: String) -> String { "\(tag)-\(role)" }

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

    func runtimeDirectory(_ role: String) -> String { scratch.appendingPathComponent("run-\(role)").path }

    /// `ipipd status --json` of the daemon in `role`, decoded loosely.
    func status(_ role: String, config: String) throws -> [String: Any] {
        let output = try sh("\(Lab.ipipd) status --json -c \(config) --runtime-dir \(runtimeDirectory(role))")
        return try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: Any]
    }

    /// A counter from a status document: drops by reason, or a peer's traffic.
    static func drops(_ status: [String: Any], _ reason: String) -> Int {
        ((status["drops"] as? [String: Any])?[reason] as? Int) ?? 0
    }

    static func peerCounter(_ status: [String: Any], peer: String, _ direction: String, _ field: String = "packets") -> Int {
        let peers = status["peers"] as? [[String: Any]] ?? []
        let entry = peers.first { $0["name"] as? String == peer }
        return ((entry?[direction] as? [String: Any])?[field] as? Int) ?? 0
    }
}
