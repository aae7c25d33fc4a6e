import Foundation
import Testing

/// All or nothing, step by step: a start that fails at any step of its plan, and a reload that fails at
/// any of its changes, leave the kernel as they found it. The failure is the debug build's fail point
/// (`IPIPD_DEBUG_FAIL_STEP`, `IPIPD_DEBUG_FAIL_RELOAD_ACTION`: the configurator throws as if the kernel
/// had refused that change); every step before it is real and so is every undo.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct RollbackTests {
    /// What a failed start must leave as it was in A's namespace.
    struct Footprint: Equatable, CustomStringConvertible {
        var links: String
        var routes: String
        var routes6: String
        var sysctls: String
        var listening: String
        var runtimeFiles: [String]

        var description: String {
            "links:\n\(links)\nroutes:\n\(routes)\nroutes6:\n\(routes6)\nsysctls: \(sysctls)\nlistening:\n\(listening)\nruntime: \(runtimeFiles)"
        }
    }

    func footprint(_ lab: Lab, _ role: String) throws -> Footprint {
        let ns = lab.ns(role)
        return Footprint(
            links: try lab.sh(in: ns, "ip -o link show | cut -d' ' -f2"),
            routes: try lab.sh(in: ns, "ip route show table all | grep -v '^local\\|^broadcast' || true"),
            routes6: try lab.sh(in: ns, "ip -6 route show table main"),
            sysctls: try lab.sh(in: ns, "sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding"),
            listening: try lab.sh(in: ns, "ss -Hltn | sort"),
            runtimeFiles: ((try? FileManager.default.contentsOfDirectory(atPath: lab.runtimeDirectory(role))) ?? []).sorted())
    }

    func spawnIpipd(_ lab: Lab, in role: String, config: String, environment: String, logName: String) throws -> Daemon {
        let runtime = lab.runtimeDirectory(role)
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        return try lab.spawn(in: lab.ns(role), ["env", environment, Lab.ipipd, "run", "-c", config, "--runtime-dir", runtime], logName: logName)
    }

    /// Machine A of the seed (its pin, routes of both families, sysctls, IPv6 socket) with metrics, so
    /// that the last step opens a listener: for each step N of its plan, a start that fails there takes
    /// every earlier step back, and nothing of it stays — links, routes, sysctls, sockets, runtime files.
    @Test func aStartThatFailsAtAnyStepLeavesNothing() throws {
        let lab = Lab("rbst")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let config = try lab.writeConfig("machine-a.yaml", appending: "metrics: {listen: 127.0.0.1:9473}\n", name: "a.yaml")
        let plan = try lab.sh(in: lab.ns("a"), "\(Lab.ipipd) plan -c \(config)")
        let count = try #require(plan.firstMatch(of: /: (\d+) steps/).flatMap { Int($0.1) }, "\(plan)")
        #expect(count >= 15 && plan.contains("serve Prometheus metrics"), "\(plan)")
        let before = try footprint(lab, "a")

        for step in 1...count {
            let daemon = try spawnIpipd(lab, in: "a", config: config, environment: "IPIPD_DEBUG_FAIL_STEP=\(step)", logName: "ipipd-fail-\(step)")
            daemon.process.waitUntilExit()
            let output = daemon.output
            #expect(daemon.process.terminationStatus == 1, "step \(step): \(output)")
            #expect(output.contains("setup failed, undoing what was done") && output.contains("step \(step)/\(count):"), "step \(step): \(output)")
            if step > 1 { #expect(output.contains("step \(step - 1)/\(count):"), "step \(step - 1) was taken before \(step) failed: \(output)") }
            let after = try footprint(lab, "a")
            #expect(after == before, "failing at step \(step) left:\n\(after)\nwhere there was:\n\(before)")
        }
        // And with no fail point the same plan comes up, takes everything, and gives it back at the end.
        let daemon = try lab.startIpipd(in: "a", config: config)
        #expect(try lab.sh(in: lab.ns("a"), "ip route show proto 73").contains("203.0.113.86"))
        _ = daemon.stop(signal: SIGTERM)
        #expect(try footprint(lab, "a") == before)
    }

    /// A reload of site A that adds an IPv4 and an IPv6 prefix, removes the IPv6 prefix it carries and
    /// opens a neighbour capture for a new ghost host on its LAN — three kernel changes, in that order.
    /// Failing at each of them, the routes of both families are as before the reload, the running config
    /// stays, and IPv6 still crosses the tunnel.
    @Test(arguments: [1, 2, 3])
    func anIPv6ReloadThatFailsHalfWayRollsBack(failingChange: Int) throws {
        let lab = Lab("rbrl")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let file = lab.scratch.appendingPathComponent("a.yaml").path
        let original = try String(contentsOfFile: Lab.config("lab-site-a.yaml"), encoding: .utf8)
        try original.write(toFile: file, atomically: true, encoding: .utf8)
        let daemon = try spawnIpipd(lab, in: "a", config: file, environment: "IPIPD_DEBUG_FAIL_RELOAD_ACTION=\(failingChange)", logName: "ipipd-a")
        try #require(daemon.waitForLog("tunnel up"), "\(daemon.output)")
        _ = try lab.startIpipd(in: "b", config: Lab.config("lab-site-b.yaml"))
        let a = lab.ns("a")
        try lab.sh(in: lab.ns("h1"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:2::10")
        let routes = try lab.sh(in: a, "ip route show dev tunl"), routes6 = try lab.sh(in: a, "ip -6 route show dev tunl")

        let edited = original
            .replacingOccurrences(of: "      - 2001:db8:2::/64", with: "      - 198.18.0.0/24\n      - 2001:db8:3::/64")
            + "ghost-hosts:\n  - {address: 192.0.2.200, interface: lan0}\n"
        try edited.write(toFile: file, atomically: true, encoding: .utf8)
        let reload = lab.run("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("a"))")
        #expect(reload.status != 0 && reload.output.contains("reload change \(failingChange)"), "\(reload.output)")

        #expect(try lab.sh(in: a, "ip route show dev tunl") == routes)
        #expect(try lab.sh(in: a, "ip -6 route show dev tunl") == routes6, "the IPv6 prefix removed before the failure is back")
        #expect(try lab.sh(in: a, "ip -6 route show dev tunl").contains("2001:db8:2::/64"))
        let status = try lab.status("a", config: file)
        #expect(status.ghostHosts.isEmpty, "the running config stays: \(status.ghostHosts)")
        try lab.sh(in: lab.ns("h1"), "ping -6 -c 3 -i 0.2 -W 2 2001:db8:2::10")
    }
}
