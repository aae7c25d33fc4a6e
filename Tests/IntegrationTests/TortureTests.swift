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

    /// The same over FOU, GUE and an IPv6 underlay (issue 25): the hostile frames are of that outer
    /// header — mutated, short or lying UDP, GUE headers Linux refuses, IPv6 extension-header chains, outer
    /// fragments and forged reports of that family — and every one is accounted for.
    @Test(arguments: ["fou", "gue", "ip6tnl"])
    func aShortTortureRunPassesOverEachEncapsulation(encap: String) throws {
        let lab = Lab("trt\(encap.prefix(1))")
        defer { lab.teardown() }
        let figures = try lab.runScript("torture.sh", "--packets 10000 --restarts 1 --encap \(encap)", timeout: 600) as? [String: Any] ?? [:]
        #expect(figures["passed"] as? Bool == true, "\(figures)")
        #expect(figures["capture_unaccounted"] as? Int == 0 && figures["encap"] as? String == encap)
        let drops = figures["drops_by_reason"] as? [String: Int] ?? [:]
        let expected = ["fou": "malformed-outer", "gue": "unsupported-gue", "ip6tnl": "outer-options"][encap]!
        #expect((drops[expected] ?? 0) > 0, "the hostile frames of \(encap) reached its own checks: \(drops)")
    }
}
