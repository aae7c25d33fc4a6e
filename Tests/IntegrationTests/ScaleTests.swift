import Foundation
import Testing

/// A hub's routes go to the kernel in netlink batches and come out again on a reload, all or nothing:
/// hubs made by scripts/hub-config.py (benchmark addresses only). The 10,000-peer figures are in
/// docs/BENCHMARKS.md, made by scripts/scale.sh; here it runs on 10 and 1,000 peers, checking that every
/// route is in the kernel after the start and after a reload that changes 1 % of the peers.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct ScaleTests {
    @Test func hubsOfTenAndAThousandPeersComeUpAndReloadWithEveryRouteInTheKernel() throws {
        let lab = Lab("scal")
        defer { lab.teardown() }
        let figures = try lab.runScript("scale.sh", "--peers '10 1000'", timeout: 600) as? [[String: Any]] ?? []
        #expect(figures.map { $0["prefixes"] as? Int } == [100, 10_000], "\(figures)")
        #expect(figures.allSatisfy { ($0["reload_daemon_seconds"] as? Double) != nil }, "\(figures)")
    }

    /// One route the kernel refuses in the middle of a batch — an admin's route to a prefix of the
    /// 600th peer — and nothing of the start stays; the same on a reload, which leaves the running routes.
    @Test func aRouteRefusedMidBatchUndoesTheStartOrTheReloadWhole() throws {
        let lab = Lab("scrf")
        defer { lab.teardown() }
        let hub = try lab.namespace("hub")
        try lab.sh(in: hub, "ip link add eth0 type veth peer name eth0-far && ip addr add 198.19.255.254/16 dev eth0 "
                       + "&& ip link set eth0-far up && ip link set eth0 up")
        let generator = "\(Lab.repository.path)/scripts/hub-config.py"
        let config = lab.scratch.appendingPathComponent("hub.yaml").path
        try lab.sh("\(generator) 1000 > \(config)")
        try lab.sh("\(generator) 1000 --changed-percent 1 > \(config).changed")
        // peer 600's first prefix in the first file: 198.18.23.112/32 (ten /32s per peer from 198.18.0.0).
        try lab.sh(in: hub, "ip route add 198.18.23.112/32 via 198.19.0.1")
        let refused = try lab.startIpipd(in: "hub", config: config, waitForUp: false)
        refused.process.waitUntilExit()
        #expect(refused.process.terminationStatus == 1)
        #expect(refused.output.contains("198.18.23.112/32") && refused.output.contains("already exists"), "\(refused.output)")
        #expect(try lab.sh(in: hub, "ip -o link show").contains("tunl") == false)
        #expect(try lab.sh(in: hub, "ip route show proto 73").isEmpty)

        try lab.sh(in: hub, "ip route del 198.18.23.112/32")
        _ = try lab.startIpipd(in: "hub", config: config)
        #expect(try lab.sh(in: hub, "ip route show dev tunl | wc -l").trimmingCharacters(in: .whitespacesAndNewlines) == "10000")
        // The changed file gives peer 0 (among others) new prefixes; one of them is taken by the admin.
        let taken = try lab.sh("grep -A2 'name: site-0$' \(config).changed | grep -o '198\\.18\\.[0-9.]*/[0-9]*' | tail -1")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try lab.sh(in: hub, "ip route add \(taken) via 198.19.0.1")
        try lab.sh("cp \(config).changed \(config)")
        let reload = lab.run("\(Lab.ipipd) reload -c \(config) --runtime-dir \(lab.runtimeDirectory("hub"))")
        #expect(reload.status != 0 && reload.output.contains("already exists"), "\(reload.output)")
        let routes = try lab.sh(in: hub, "ip route show dev tunl")
        #expect(routes.split(separator: "\n").count == 10_000, "the running routes stay, none of the new ones")
        // Peer 0 keeps its old first prefix; its new first one, taken in the same batch as the refused one, was taken back.
        #expect(routes.contains("198.18.0.0 ") && !routes.contains("198.18.39.16 "), "\(routes.prefix(300))")
    }
}
