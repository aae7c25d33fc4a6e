import Foundation
import Testing

/// The CLI as an admin uses it: `check` and `plan` on the example configs.
@Suite(.serialized) struct CLITests {
    @Test func checkAcceptsMachineB() {
        let lab = Lab("chkb")
        let result = lab.run("\(Lab.ipipd) check -c \(Lab.repository.path)/config/machine-b.yaml")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("ghost-hosts:"))
        // `check` spells out the rule for inner sources, and the delivery mode.
        #expect(result.output.contains("# accept-sources: [203.0.113.87/32, \"2001:db8:b::87/128\", 198.51.100.37/32]   (not set: the default, its routes and its endpoint)"),
                "\(result.output)")
        #expect(result.output.contains("delivery: kernel"))
    }

    /// Machine A tunnels 203.0.113.0/24, where B's endpoint lies: the seed's looping tunnel, said under that peer.
    @Test func checkSaysWhichEndpointIsPinnedOutOfTheTunnel() {
        let result = Lab("chka").run("\(Lab.ipipd) check -c \(Lab.repository.path)/config/machine-a.yaml")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("""
                remote: 203.0.113.86
                routes: [203.0.113.0/24, "2001:db8:b::/64"]
                # accept-sources: [203.0.113.0/24, "2001:db8:b::/64", 203.0.113.86/32]   (not set: the default, its routes and its endpoint)
                # endpoint inside a tunneled prefix: run pins a host route to it through the uplink
            """), "\(result.output)")
    }

    @Test func checkListsEveryMistakeWithItsLine() {
        let lab = Lab("chki")
        let file = "\(Lab.repository.path)/config/invalid-example.yaml"
        let result = lab.run("\(Lab.ipipd) check -c \(file)")
        #expect(result.status == 1)
        for expected in ["invalid-example.yaml:4:12: error: uplink.address",
                         "invalid-example.yaml:13:13: error: peers[0].remote",
                         "invalid-example.yaml:15:5: error: peers[0].keepalive: unknown key",
                         "invalid-example.yaml:19:9: error: peers[1].routes[0]: duplicate prefix",
                         "8 errors; nothing was applied"] {
            #expect(result.output.contains(expected), "missing: \(expected)\n\(result.output)")
        }
    }

    /// In the system's words, with the path: what `ls` or `cat` would say.
    @Test func checkNamesAFileItCannotReadAndWhy() throws {
        let lab = Lab("chkm")
        defer { lab.teardown() }
        let missing = lab.run("\(Lab.ipipd) check -c /nonexistent/ipipd.yaml")
        #expect(missing.status == 1 && missing.output.contains("/nonexistent/ipipd.yaml: error: cannot read the config file: No such file or directory"),
                "\(missing.output)")
        let directory = lab.scratch.path
        let isDirectory = lab.run("\(Lab.ipipd) check -c \(directory)")
        #expect(isDirectory.status == 1 && isDirectory.output.contains("\(directory): error: cannot read the config file: Is a directory"),
                "\(isDirectory.output)")
        if Lab.isRoot {
            let unreadable = lab.scratch.appendingPathComponent("secret.yaml").path
            try lab.sh("cp \(Lab.repository.path)/config/machine-b.yaml \(unreadable) && chmod 0600 \(unreadable) && chmod 0755 \(directory)")
            let denied = lab.run("setpriv --reuid=65534 --regid=65534 --clear-groups \(Lab.ipipd) check -c \(unreadable)")
            #expect(denied.status == 1 && denied.output.contains("\(unreadable): error: cannot read the config file: Permission denied"),
                    "\(denied.output)")
        }
    }

    /// What `check` prints is a config file that means the same: read back, it prints the same again.
    @Test(arguments: ["machine-a.yaml", "machine-b.yaml", "lab-site-a.yaml", "lab-site-b.yaml", "ha-pair-b.yaml"])
    func checksOutputLoadsBack(config: String) throws {
        let lab = Lab("chkr")
        defer { lab.teardown() }
        let first = lab.run("\(Lab.ipipd) check -c \(Lab.repository.path)/config/\(config)")
        #expect(first.status == 0, "\(first.output)")
        let normalized = lab.scratch.appendingPathComponent("normalized.yaml")
        try first.output.write(to: normalized, atomically: true, encoding: .utf8)
        let second = lab.run("\(Lab.ipipd) check -c \(normalized.path)")
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output == first.output)
    }

    /// Every script's --help prints its header comment, and nothing of its code; none starts working.
    @Test(arguments: ["demo.sh", "test.sh", "install-deps.sh", "install.sh", "uninstall.sh", "bench.sh", "torture.sh",
                      "failover.sh", "scale.sh", "fuzz.sh"])
    func everyScriptExplainsItself(script: String) throws {
        let path = "\(Lab.repository.path)/scripts/\(script)"
        let header = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[1].dropFirst(2)
        let result = Lab("shlp").run("\(path) --help", timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.hasPrefix(String(header)), "\(script): \(result.output.prefix(200))")
        #expect(!result.output.contains("set -euo pipefail") && !result.output.contains("installing:"), "\(result.output)")
    }

    /// The latency breakdown (`bench.sh --latency`, docs/BENCHMARKS.md) walks a round trip's events and
    /// splits a thread's stage into its system calls as the trace says: checked on a trace whose every
    /// event has a known time (Tests/IntegrationTests/latency_walk.py).
    @Test func theLatencyBreakdownReadsATraceAsItIs() {
        let result = Lab("latw").run("python3 \(Lab.repository.path)/Tests/IntegrationTests/latency_walk.py", timeout: 30)
        #expect(result.status == 0 && result.output.hasSuffix("ok\n"), "\(result.output)")
    }

    /// What the README shows of `check`'s errors is what `check` prints (`...` cuts a long line short).
    @Test func theReadmesSampleErrorsAreCheckOwn() throws {
        let readme = try String(contentsOfFile: "\(Lab.repository.path)/README.md", encoding: .utf8)
        let samples = readme.split(separator: "\n").filter { $0.hasPrefix("config/invalid-example.yaml:") }
        let output = Lab("rdme").run("cd \(Lab.repository.path) && \(Lab.ipipd) check -c config/invalid-example.yaml").output
        #expect(samples.count >= 3)
        for sample in samples {
            let shown = sample.hasSuffix("...") ? String(sample.dropLast(3)) : String(sample)
            #expect(output.split(separator: "\n").contains { $0.hasPrefix(shown) }, "README: \(sample)\ncheck:\n\(output)")
        }
    }

    /// `run --help` says what the shipped unit does (its Type=).
    @Test func runsHelpAgreesWithTheUnit() throws {
        let unit = try String(contentsOfFile: "\(Lab.repository.path)/packaging/ipipd.service", encoding: .utf8)
        let type = try #require(unit.split(separator: "\n").first { $0.hasPrefix("Type=") })
        let help = Lab("rhlp").run("\(Lab.ipipd) run --help").output.replacingOccurrences(of: "\n", with: " ")
        #expect(help.contains("the unit's \(type)"), "\(type) not in run --help:\n\(help)")
    }

    @Test func helpIsSelfDocumenting() {
        let result = Lab("help").run("\(Lab.ipipd) --help; \(Lab.ipipd) plan --help; \(Lab.ipipd) version")
        #expect(result.status == 0)
        for word in ["check", "plan", "run", "Exit status", "--config", "ipipd 0."] {
            #expect(result.output.contains(word), "\(word)")
        }
    }

    /// `plan` for machine A, run as an unprivileged user inside a namespace laid out like machine A's
    /// network: it lists the changes, including the pinned endpoint via A's router.
    @Test(.enabled(if: Lab.isRoot, "needs root to build namespaces"))
    func planRunsWithoutRootAndPinsTheEndpoint() throws {
        let lab = Lab("plan")
        defer { lab.teardown() }
        let a = try lab.namespace("a")
        let r = try lab.namespace("r")
        try lab.link(a, "eth0", r, "eth1", mtu: 1400)
        try lab.sh(in: a, "ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1")
        try lab.sh(in: r, "ip addr add 198.51.100.1/24 dev eth1")
        let result = lab.run(in: a, "setpriv --reuid=65534 --regid=65534 --clear-groups \(Lab.ipipd) plan -c \(Lab.repository.path)/config/machine-a.yaml")
        #expect(result.status == 0, "\(result.output)")
        for expected in ["create TUN device tunl",
                         "ip link set dev tunl mtu 1380",
                         "ip address add 203.0.113.87/32 dev tunl",
                         "ip route add 203.0.113.86/32 via 198.51.100.1 dev eth0",
                         "ip route add 203.0.113.0/24 dev tunl",
                         "ip -6 address add 2001:db8:b::87/128 dev tunl nodad",
                         "ip -6 route add 2001:db8:b::/64 dev tunl",
                         "sysctl -w net.ipv4.ip_forward=1",
                         "sysctl -w net.ipv6.conf.all.forwarding=1",
                         "filter: (dst host 198.51.100.37 and (ip proto 4 or ip proto 41 or (icmp and (icmp[0] = 3 or icmp[0] = 11))))",
                         "peer machine-b: inner packets accepted only from 203.0.113.0/24, 2001:db8:b::/64, 203.0.113.86/32",
                         "delivery: kernel — decapsulated packets are received by the kernel on tunl"] {
            #expect(result.output.contains(expected), "missing: \(expected)\n\(result.output)")
        }
        // Nothing was changed.
        #expect(!(try lab.sh(in: a, "ip -o link")).contains("tunl"))
    }
}
