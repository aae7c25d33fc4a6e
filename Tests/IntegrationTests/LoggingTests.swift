import Foundation
import IPIPCore
import Testing

/// ipipd's log as journald files it (issue 23): a real systemd-journald of the test's own, in a mount
/// namespace where /run/systemd and /run/log are the test's tmpfs (the machine's are never touched), and
/// ipipd started under it as systemd starts a service's process: standard error a journal stream
/// (systemd-cat) and $JOURNAL_STREAM naming it (which systemd sets, systemd-cat not). Each event must arrive with a priority (`journalctl -p warning`
/// filters), its metadata as fields (PEER=, REASON=, CHANGES=…), and no timestamp of ipipd's own.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: namespaces, mounts, TUN"))
struct LoggingTests {
    @Test func underJournaldEachEventHasItsPriorityAndFields() throws {
        let lab = Lab("jrnl")
        defer { lab.teardown() }
        try lab.buildSeedLab()
        let config = lab.scratch.appendingPathComponent("b.yaml").path
        try String(contentsOfFile: Lab.config("machine-b.yaml"), encoding: .utf8).write(toFile: config, atomically: true, encoding: .utf8)
        let journal = lab.scratch.appendingPathComponent("journal.json").path
        let warnings = lab.scratch.appendingPathComponent("warnings.txt").path
        // An accepted reload (a route added: its changes have spaces) and a refused one (an invalid file).
        let script = """
            set -u
            created=""
            for directory in /run/systemd /run/log; do [ -d $directory ] || { mkdir $directory; created="$created $directory"; }; done
            trap 'for directory in $created; do rmdir $directory 2>/dev/null; done' EXIT
            unshare -m --propagation private sh -c '
                mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /run/log && mkdir -p /run/systemd/journal
                /lib/systemd/systemd-journald & journald=$!
                for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ] && break; sleep 0.05; done
                ip netns exec \(lab.ns("b")) systemd-cat -t ipipd-unit sh -c "JOURNAL_STREAM=\\$(stat -L -c %d:%i /proc/self/fd/2) exec \(Lab.ipipd) run -c \(config) --runtime-dir \(lab.runtimeDirectory("b"))" & daemon=$!
                up() { journalctl -D /run/log/journal -o cat --no-pager 2>/dev/null | grep -c "$1"; }
                for i in $(seq 200); do [ "$(up "tunnel up")" -ge 1 ] && break; sleep 0.05; done
                sed -i "s|      - 203.0.113.87/32 |      - 198.18.0.0/24\\n      - 203.0.113.87/32 |" \(config)
                \(Lab.ipipd) reload -c \(config) --runtime-dir \(lab.runtimeDirectory("b")) >/dev/null 2>&1
                echo "peers: [" >> \(config)
                \(Lab.ipipd) reload -c \(config) --runtime-dir \(lab.runtimeDirectory("b")) >/dev/null 2>&1
                for i in $(seq 100); do [ "$(up "reload refused")" -ge 1 ] && break; sleep 0.05; done
                kill -TERM $daemon; wait $daemon
                sleep 0.3
                journalctl -D /run/log/journal -o json --no-pager > \(journal)
                journalctl -D /run/log/journal -p warning -o cat --no-pager > \(warnings)
                kill -TERM $journald; wait $journald
            '
            """
        let result = lab.run(script, timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        let entries = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { ($0["_COMM"] as? String) == "ipipd" }
        func entry(_ text: String) -> [String: Any]? { entries.first { ($0["MESSAGE"] as? String)?.contains(text) == true } }
        let up = try #require(entry("tunnel up"), "\(entries.map { $0["MESSAGE"] ?? "" })")
        #expect(up["PRIORITY"] as? String == "6" && up["SYSLOG_IDENTIFIER"] as? String == "ipipd" && up["DEVICE"] as? String == "tunl", "\(up)")
        // No timestamp of ipipd's in the message: the journal keeps its own.
        #expect((up["MESSAGE"] as? String)?.hasPrefix("tunnel up") == true, "\(up)")
        let reloaded = try #require(entry("reloaded"))
        #expect(reloaded["PRIORITY"] as? String == "5" && (reloaded["CHANGES"] as? String)?.contains("198.18.0.0/24") == true, "\(reloaded)")
        // The value with spaces is quoted in the message, whole in its field.
        #expect((reloaded["MESSAGE"] as? String)?.contains("changes=\"") == true, "\(reloaded)")
        let refused = try #require(entry("reload refused"))
        #expect(refused["PRIORITY"] as? String == "3" && refused["REASON"] != nil, "\(refused)")
        // `journalctl -p warning` shows the refusal and none of the info lines.
        let filtered = try String(contentsOfFile: warnings, encoding: .utf8)
        #expect(filtered.contains("reload refused") && !filtered.contains("tunnel up") && !filtered.contains("step 1/"), "\(filtered)")
    }
}
