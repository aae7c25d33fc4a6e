import Foundation
import Testing

/// scripts/demo.sh end to end with this build, kept running (--keep): every command it prints for
/// exploring and removing the lab must work as printed, from a directory other than the repository's.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, TUN, raw sockets"))
struct DemoTests {
    @Test func demoPassesAndItsKeepHintsWorkAsPrintedFromAnywhere() throws {
        let lab = Lab("demo")
        let prefix = lab.tag
        let removeLab = "LAB_PREFIX=\(prefix) bash -c 'source \(Lab.repository.path)/scripts/lib/lab.sh; lab_down'"
        defer {
            _ = lab.run(removeLab)
            lab.teardown()
        }
        // The kept daemons outlive the script: they must not inherit the descriptor by which Foundation's
        // Process learns that the script ended (it waits for every holder to close it).
        let closeInherited = "python3 -c 'import os, sys; os.closerange(3, 65536); os.execvp(sys.argv[1], sys.argv[1:])'"
        let demo = lab.run("cd / && LAB_PREFIX=\(prefix) \(closeInherited) \(Lab.repository.path)/scripts/demo.sh --keep --binary \(Lab.ipipd)",
                           timeout: 300)
        try #require(demo.status == 0, "demo.sh failed:\n\(demo.output.suffix(3000))")
        #expect(demo.output.contains("all steps passed"))
        let hints = demo.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let enter = hints.filter { $0.hasPrefix("ip netns exec \(prefix)-") && $0.contains(" bash") }
        #expect(enter.count == 4, "\(hints)")
        for line in enter {
            let command = line.components(separatedBy: " bash")[0] + " true"
            #expect(lab.run("cd / && \(command)").status == 0, "\(line)")
        }
        let status = hints.filter { $0.contains(" status -c ") }
        #expect(status.count == 2, "\(hints)")
        for (line, peer) in zip(status, ["machine-b", "machine-a"]) {
            let result = lab.run("cd / && \(line)")
            #expect(result.status == 0 && result.output.contains(peer), "\(line):\n\(result.output)")
        }
        let removal = try #require(hints.first { $0.hasPrefix("LAB_PREFIX=\(prefix) bash -c") }, "\(hints)")
        let removed = lab.run("cd / && \(removal)", timeout: 60)
        #expect(removed.status == 0, "\(removal):\n\(removed.output)")
        let left = try lab.sh("ip netns list")
        #expect(!left.contains("\(prefix)-"), "namespaces left after the printed removal: \(left)")
        let logDirectory = removal.components(separatedBy: "rm -rf ").last ?? ""
        #expect(!logDirectory.isEmpty && !FileManager.default.fileExists(atPath: logDirectory), "\(removal)")
    }
}
