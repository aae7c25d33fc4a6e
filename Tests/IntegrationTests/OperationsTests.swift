import Foundation
import IPIPCore
import Testing

/// Running ipipd on a gateway box: reload, status and metrics, systemd's notify protocol, least privilege.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct OperationsTests {
    let siteB = Lab.config("lab-site-b.yaml")

    /// Site A's config with an extra peer (and its prefix) or not: what the reload test toggles.
    func writeSiteA(_ lab: Lab, withExtraPeer: Bool, file: String) throws {
        var text = try String(contentsOfFile: Lab.config("lab-site-a.yaml"), encoding: .utf8)
        if withExtraPeer {
            text += "  - name: site-c\n    remote: 203.0.113.99\n    routes: [198.18.0.0/24]\n"
        }
        try text.write(toFile: file, atomically: true, encoding: .utf8)
    }

    /// The two-site lab with site A's config in a scratch file (for editing) and both daemons up;
    /// returns the file and site A's daemon.
    func startTwoSites(_ lab: Lab, siteAArguments: [String] = []) throws -> (file: String, a: Daemon) {
        try lab.buildTwoSites()
        let file = lab.scratch.appendingPathComponent("site-a.yaml").path
        try writeSiteA(lab, withExtraPeer: false, file: file)
        let a = try lab.startIpipd(in: "a", config: file, extraArguments: siteAArguments)
        _ = try lab.startIpipd(in: "b", config: siteB)
        return (file, a)
    }

    @Test func twentyReloadsLoseNoPacketOfAnUnchangedPeer() throws {
        let lab = Lab("rld")
        defer { lab.teardown() }
        let (file, a) = try startTwoSites(lab)
        try lab.sh(in: lab.ns("h1"), "ping -c 1 -W 2 192.0.2.130")
        let ping = try lab.spawn(in: lab.ns("h1"), ["ping", "-i", "0.05", "-c", "200", "-W", "1", "192.0.2.130"], logName: "ping")
        for round in 0..<20 {
            try writeSiteA(lab, withExtraPeer: round % 2 == 0, file: file)
            if round % 2 == 0 {
                let reload = try lab.sh("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("a"))")
                #expect(reload.contains("peer site-c added") && reload.contains("route 198.18.0.0/24 added"), "\(reload)")
                #expect(try lab.sh(in: lab.ns("a"), "ip route show 198.18.0.0/24").contains("dev tunl"))
            } else {
                kill(a.pid, SIGHUP)
                #expect(a.waitForLog("peer site-c removed", occurrences: (round + 1) / 2, timeout: 5))
            }
            usleep(300_000)   // pacing: the 20 reloads spread over the 10 s of pings
        }
        ping.process.waitUntilExit()
        #expect(ping.output.contains("200 received") && ping.output.contains(" 0% packet loss"), "\(ping.output)")
        #expect(try lab.sh(in: lab.ns("a"), "ip route show 198.18.0.0/24").isEmpty)
        #expect(a.output.components(separatedBy: ": create TUN device").count == 2, "the TUN device was recreated")
        let status = try lab.status("a", config: file)
        #expect(status.configSHA256 == String(try lab.sh("sha256sum \(file)").prefix(64)))
        #expect((try status.peer("site-b").encapsulated.packets) >= 200, "counters survived the reloads")
    }

    @Test func anInvalidFileIsRefusedAndTheRunningConfigStays() throws {
        let lab = Lab("rlbad")
        defer { lab.teardown() }
        let (file, a) = try startTwoSites(lab)
        try (try String(contentsOfFile: file, encoding: .utf8) + "  - name: broken\n    remote: 300.1.1.1\n    rutes: []\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let reload = lab.run("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("a"))")
        #expect(reload.status == 1)
        #expect(reload.output.contains("300.1.1.1") && reload.output.contains("rutes"), "\(reload.output)")
        #expect(reload.output.contains("the running configuration stays"))
        #expect(a.waitForLog("reload refused"))
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130")
        // Changing the uplink needs a restart: refused the same way.
        try (try String(contentsOfFile: Lab.config("lab-site-a.yaml"), encoding: .utf8).replacingOccurrences(of: "interface: eth0", with: "interface: lan0"))
            .write(toFile: file, atomically: true, encoding: .utf8)
        let restart = lab.run("\(Lab.ipipd) reload -c \(Lab.config("lab-site-a.yaml")) --runtime-dir \(lab.runtimeDirectory("a"))")
        #expect(restart.status == 1 && restart.output.contains("needs a restart"), "\(restart.output)")
    }

    @Test func aGhostHostAddedByReloadIsAnnouncedAndAnswered() throws {
        let lab = Lab("rlgh")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let file = lab.scratch.appendingPathComponent("machine-b.yaml").path
        let original = try String(contentsOfFile: Lab.config("machine-b.yaml"), encoding: .utf8)
        try original.write(toFile: file, atomically: true, encoding: .utf8)
        let b = try lab.startIpipd(in: "b", config: file)
        let announcements = try lab.watch(in: "c", "eth0", "arp and arp[14:4] = 0xcb007158", logName: "garp")
        try original.replacingOccurrences(of: "203.0.113.87/32", with: "203.0.113.87/32\n      - 203.0.113.88/32")
            .appending("  - address: 203.0.113.88\n    interface: eth0\n").write(toFile: file, atomically: true, encoding: .utf8)
        kill(b.pid, SIGHUP)
        #expect(b.waitForLog("ghost host 203.0.113.88 added"), "\(b.output)")
        #expect(announcements.waitForLog("Request who-has 203.0.113.88 tell 203.0.113.88", timeout: 5), "\(announcements.output)")
        let arping = try lab.sh(in: lab.ns("c"), "arping -c 2 -I eth0 203.0.113.88")
        #expect(arping.contains("Received 2 response(s)"), "\(arping)")
        // And removed again: no more answers.
        try original.write(toFile: file, atomically: true, encoding: .utf8)
        kill(b.pid, SIGHUP)
        #expect(b.waitForLog("ghost host 203.0.113.88 removed"))
        // The responder takes the new config within its 100 ms poll; from then on nothing answers.
        #expect(eventually { lab.run(in: lab.ns("c"), "arping -c 1 -w 1 -I eth0 203.0.113.88").output.contains("Received 0 response(s)") })
        #expect(lab.run(in: lab.ns("c"), "arping -c 2 -w 3 -I eth0 203.0.113.88").output.contains("Received 0 response(s)"))
    }

    @Test func runsAsAnUnprivilegedUserWithOnlyTheNetworkCapabilities() throws {
        let lab = Lab("priv")
        defer { lab.teardown() }
        let (file, a) = try startTwoSites(lab, siteAArguments: ["--user", "nobody"])
        let originalForwarding = "0\n"   // a new namespace's default, which the daemon must restore
        #expect(a.output.contains("dropped privileges"))
        let procStatus = try String(contentsOfFile: "/proc/\(a.pid)/status", encoding: .utf8)
        let fields = Dictionary(procStatus.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
        }, uniquingKeysWith: { a, _ in a })
        #expect(fields["Uid"]?.split(separator: "\t").allSatisfy { $0 == "65534" } == true, "\(fields["Uid"] ?? "")")
        // CAP_NET_ADMIN (12) and CAP_NET_RAW (13) only: 0x3000.
        #expect(fields["CapEff"] == "0000000000003000" && fields["CapPrm"] == "0000000000003000", "\(procStatus)")
        #expect(fields["CapBnd"] == "0000000000003000")
        // The threads that parse packets hold no capability at all; the main thread and the control
        // socket's (reloads, cleanup at exit) keep the two.
        var names: [String] = []
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(a.pid)/task") {
            let taskStatus = try String(contentsOfFile: "/proc/\(a.pid)/task/\(task)/status", encoding: .utf8)
            let name = String(taskStatus.prefix { $0 != "\n" }.dropFirst("Name:\t".count))
            names.append(name)
            let keeps = name == "ipipd" || name == "ipipd-control"
            #expect(taskStatus.contains("CapEff:\t\(keeps ? "0000000000003000" : "0000000000000000")"), "thread \(name)")
            if !keeps { #expect(taskStatus.contains("CapPrm:\t0000000000000000"), "thread \(name)") }
        }
        #expect(Set(["ipipd", "ipipd-control", "ipipd-tun", "ipipd-capture", "ipipd-routes"]).isSubset(of: Set(names)), "\(names)")
        // The control socket is for root (and the daemon's user) only.
        let socketMode = try lab.sh("stat -c %a \(lab.runtimeDirectory("a"))/tunl.sock")
        #expect(socketMode == "600\n")
        #expect(lab.run("setpriv --reuid=1000 --regid=1000 --clear-groups \(Lab.ipipd) status -c \(file) --runtime-dir \(lab.runtimeDirectory("a"))").status == 1)
        // It still does its job: traffic, a reload that changes routes, and a clean exit.
        try lab.sh(in: lab.ns("h1"), "ping -c 2 -i 0.2 -W 2 192.0.2.130")
        try writeSiteA(lab, withExtraPeer: true, file: file)
        try lab.sh("\(Lab.ipipd) reload -c \(file) --runtime-dir \(lab.runtimeDirectory("a"))")
        #expect(try lab.sh(in: lab.ns("a"), "ip route show 198.18.0.0/24").contains("dev tunl"))
        _ = a.stop(signal: SIGTERM)
        #expect(a.output.contains("every change to the kernel was undone"), "\(a.output)")
        #expect(try lab.sh(in: lab.ns("a"), "ip route show proto 73").isEmpty)
        #expect(try lab.sh(in: lab.ns("a"), "sysctl -n net.ipv4.ip_forward") == originalForwarding)
    }

    @Test func notifiesSystemdAndServesPrometheusMetrics() throws {
        let lab = Lab("ntfy")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let notifySocket = lab.scratch.appendingPathComponent("notify.sock").path
        let received = lab.scratch.appendingPathComponent("notify.txt").path
        let listener = try lab.spawn(in: lab.ns("a"), ["python3", Lab.repository.appendingPathComponent("Tests/IntegrationTests/notify_listener.py").path,
                                                       notifySocket, received], logName: "notify")
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: notifySocket) { usleep(50_000) }
        let runtime = lab.runtimeDirectory("a")
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let config = lab.scratch.appendingPathComponent("site-a.yaml").path
        try (try String(contentsOfFile: Lab.config("lab-site-a.yaml"), encoding: .utf8) + "metrics:\n  listen: 127.0.0.1:9473\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let a = try lab.spawn(in: lab.ns("a"), ["env", "NOTIFY_SOCKET=\(notifySocket)", Lab.ipipd, "run", "-c", config,
                                                "--runtime-dir", runtime], logName: "ipipd-a")
        #expect(a.waitForLog("serve Prometheus metrics at http://127.0.0.1:9473/metrics") && a.waitForLog("tunnel up"), "\(a.output)")
        _ = try lab.startIpipd(in: "b", config: siteB)
        try lab.sh(in: lab.ns("h1"), "ping -c 3 -i 0.2 -W 2 192.0.2.130")

        let metrics = try lab.sh(in: lab.ns("a"), "curl -sf http://127.0.0.1:9473/metrics")
        #expect(metrics.contains(#"ipipd_peer_packets_total{peer="site-b",direction="sent"} 3"#)
                || metrics.contains(#"ipipd_peer_packets_total{direction="sent",peer="site-b"} 3"#), "\(metrics)")
        #expect(metrics.contains("# TYPE ipipd_peer_packets_total counter"))
        #expect(metrics.contains("\nipipd_active 1") && metrics.contains("\nipipd_role_changes_total 0"), "\(metrics)")
        #expect(metrics.contains("ipipd_peer_path_mtu_bytes"))
        #expect(lab.run(in: lab.ns("a"), "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9473/other").output == "404")

        kill(a.pid, SIGHUP)
        #expect(a.waitForLog("no changes") || a.waitForLog("reloaded"))
        _ = a.stop(signal: SIGTERM)
        #expect(eventually { ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").contains("STOPPING=1") })
        _ = listener.stop(signal: SIGTERM)
        let messages = try String(contentsOfFile: received, encoding: .utf8).split(separator: "\n").map(String.init)
        let kinds = messages.compactMap { line -> String? in
            if line.hasPrefix("READY=1") { return "READY" }
            if line.hasPrefix("RELOADING=1|MONOTONIC_USEC=") { return "RELOADING" }
            if line.hasPrefix("STOPPING=1") { return "STOPPING" }
            return nil
        }
        #expect(kinds == ["READY", "RELOADING", "READY", "STOPPING"], "\(messages)")
    }

    /// The metrics endpoint as Prometheus and its users expect it (issue 23): on an IPv6 listen address,
    /// answering HEAD, with ipipd_build_info and the process_* metrics, every peer's series there before
    /// any traffic (at 0), and the same order at every scrape.
    @Test func metricsFollowPrometheusConventions() throws {
        let lab = Lab("prom")
        defer { lab.teardown() }
        try lab.buildTwoSites()
        let config = try lab.writeConfig("lab-site-a.yaml", appending: "metrics:\n  listen: \"[::1]:9474\"\n", name: "a.yaml")
        let a = try lab.startIpipd(in: "a", config: config)
        #expect(a.output.contains("serve Prometheus metrics at http://[::1]:9474/metrics"), "\(a.output)")
        let first = try lab.sh(in: lab.ns("a"), "curl -sf -g 'http://[::1]:9474/metrics'")
        let second = try lab.sh(in: lab.ns("a"), "curl -sf -g 'http://[::1]:9474/metrics'")
        #expect(first.contains("ipipd_build_info{version=\"0.") && first.contains("process_resident_memory_bytes")
                && first.contains("process_cpu_seconds_total") && first.contains("process_open_fds"), "\(first)")
        #expect(first.contains(#"ipipd_peer_drops_total{peer="site-b",reason="source-not-allowed"} 0"#), "\(first)")
        // Line for line the same families and series, in the same order (only values may move).
        func shape(_ text: String) -> [Substring] { text.split(separator: "\n").map { $0.split(separator: " ").first ?? "" } }
        #expect(shape(first) == shape(second))
        let head = try lab.sh(in: lab.ns("a"), "curl -sf -g -I 'http://[::1]:9474/metrics'")
        #expect(head.contains("200 OK") && head.contains("Content-Length:") && head.contains("text/plain; version=0.0.4"), "\(head)")
        #expect(lab.run(in: lab.ns("a"), "curl -s -o /dev/null -w '%{http_code}' -X POST -g 'http://[::1]:9474/metrics'").output == "405")
        // IPv6 only: not on the IPv4 loopback.
        #expect(lab.run(in: lab.ns("a"), "curl -sf http://127.0.0.1:9474/metrics").status != 0)
    }
}
