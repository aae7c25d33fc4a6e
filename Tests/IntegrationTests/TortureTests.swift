import Foundation
import Testing

/// A short run of scripts/torture.sh (the full one sends a million hostile frames; docs/ROBUSTNESS.md has
/// its figures): the daemon lives through the flood, the reloads, the forged ARP claims, the link flap
/// and the SIGKILLs, the legitimate transfer arrives intact, and every frame is accounted for.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct TortureTests {
    @Test func aShortTortureRunPasses() throws {
        let lab = Lab("trtr")
        defer { lab.teardown() }
        let figures = try lab.runScript("torture.sh", "--packets 30000 --restarts 3", timeout: 600) as? [String: Any] ?? [:]
        #expect(figures["passed"] as? Bool == true, "\(figures)")
        #expect(figures["capture_unaccounted"] as? Int == 0)
        #expect(figures["transfer_sha256_matches"] as? Bool == true)
        #expect((figures["hostile_frames"] as? Int ?? 0) >= 30000)
    }
}
