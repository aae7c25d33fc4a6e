import Foundation
import Testing

/// `plan` and `run` come from one list of steps: what `run` does is what `plan` printed, in its order.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct PlanAndRunTests {
    /// The numbered lines of `ipipd plan`, without their numbers.
    static func plannedSteps(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            guard let match = line.firstMatch(of: /^ *\d+\. (.*)$/) else { return nil }
            return String(match.1)
        }
    }

    /// The `step N/M: ...` lines of `ipipd run`'s log, in order.
    static func stepsTaken(_ log: String) -> [String] {
        log.split(separator: "\n").compactMap { line in
            guard let match = line.firstMatch(of: /step (\d+)\/(\d+): (.*)$/) else { return nil }
            return String(match.3)
        }
    }

    @Test(arguments: ["machine-a.yaml", "machine-b.yaml"])
    func runTakesExactlyTheStepsPlanPrints(config: String) throws {
        let lab = Lab("step")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let role = config == "machine-a.yaml" ? "a" : "b"
        let file = lab.scratch.appendingPathComponent(config).path
        try (try String(contentsOfFile: Lab.config(config), encoding: .utf8) + "metrics:\n  listen: 127.0.0.1:9473\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let runtime = lab.runtimeDirectory(role)
        let plan = try lab.sh(in: lab.ns(role), "\(Lab.ipipd) plan -c \(file) --runtime-dir \(runtime)")
        let planned = Self.plannedSteps(plan)
        let daemon = try lab.startIpipd(in: role, config: file)
        let taken = Self.stepsTaken(daemon.output)
        // Each step's log line is the plan's line, possibly followed by what came of it: "(was 0)".
        let same = taken.count == planned.count && zip(planned, taken).allSatisfy { $1 == $0 || $1.hasPrefix($0 + " (") }
        #expect(!planned.isEmpty && same, "plan:\n\(plan)\nrun:\n\(daemon.output)")
        for kind in ["create TUN device", "capture on eth0", "listen on the control socket", "serve Prometheus metrics"] {
            #expect(planned.contains { $0.hasPrefix(kind) }, "no `\(kind)` step")
        }
        if role == "b" {
            #expect(planned.contains("answer ARP for 203.0.113.87 on eth0 with eth0's own MAC"), "\(plan)")
        }
    }

    /// What `run` would meet, `plan` says first, in the same words, with exit status 1 — so that
    /// `check && plan` in ExecStartPre predicts `run`: a route to a tunneled prefix already in the main
    /// table (IPv4 and IPv6), and IPv6 switched off on a machine whose config carries it. Neither leaves
    /// anything behind.
    @Test func planListsWhatRunWouldRefuse() throws {
        let lab = Lab("pred")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let b = lab.ns("b")
        try lab.sh(in: b, "ip route add 203.0.113.87/32 via 203.0.113.1 && ip -6 route add 2001:db8:b::87/128 dev eth0")
        let config = Lab.config("machine-b.yaml")
        func planAndRun() throws -> (plan: (status: Int32, output: String), run: (status: Int32, output: String)) {
            (lab.run(in: b, "\(Lab.ipipd) plan -c \(config)"),
             lab.run(in: b, "\(Lab.ipipd) run -c \(config) --runtime-dir \(lab.runtimeDirectory("b"))", timeout: 20))
        }
        var (plan, run) = try planAndRun()
        for prefix in ["203.0.113.87/32", "2001:db8:b::87/128"] {
            let problem = "a route to \(prefix) already exists"
            #expect(plan.status == 1 && plan.output.contains(problem), "plan:\n\(plan.output)")
            #expect(run.status == 1 && run.output.contains("cannot run here: \(problem)"), "run:\n\(run.output)")
        }
        #expect(plan.output.contains("203.0.113.87/32 via 203.0.113.1 dev eth0 proto boot"), "\(plan.output)")
        #expect(!(try lab.sh(in: b, "ip -o link")).contains("tunl"))

        try lab.sh(in: b, "ip route del 203.0.113.87/32 && ip -6 route del 2001:db8:b::87/128")
        try lab.sh(in: b, "sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
        (plan, run) = try planAndRun()
        let problem = "IPv6 is disabled on this machine (net.ipv6.conf.default.disable_ipv6 = 1)"
        #expect(plan.status == 1 && plan.output.contains(problem), "plan:\n\(plan.output)")
        #expect(run.status == 1 && run.output.contains(problem) && !run.output.contains("Permission denied"), "run:\n\(run.output)")
        #expect(!(try lab.sh(in: b, "ip -o link")).contains("tunl"))
    }
}
