import Testing
@testable import IPIPCore

@Suite struct YAMLLimitsTests {
    /// The "billion laughs" with the last alias used as a mapping key: the parser would expand and hash
    /// 9⁹ nodes (over a minute of `check`, and of a reload under its lock). Refused at the 33rd alias.
    @Test func anAliasBombUsedAsAMappingKeyIsRefusedWithItsLine() {
        var text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
        for (level, name) in "bcdefghi".enumerated() {
            let previous = "abcdefghi"[String.Index(utf16Offset: level, in: "abcdefghi")]
            text += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
        }
        text += "peers:\n  - {*i: 1}\n"
        let result = ConfigLoader.load(yaml: text, file: "bomb.yaml")
        #expect(result.config == nil)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.description.hasPrefix("bomb.yaml:5:") == true, "\(result.errors)")
        #expect(result.errors.first?.message.contains("more than 32 aliases") == true)
    }

    @Test func aliasesWithinTheLimitStillWork() throws {
        let text = """
            uplink: {interface: eth0, address: 198.51.100.37}
            peers:
              - name: b
                remote: 203.0.113.86
                routes: &lan [203.0.113.0/24]
              - name: c
                remote: 203.0.113.99
                routes: [198.18.0.0/24]
            # a comment with *stars* and [brackets [[[[[[
            """
        let config = try #require(ConfigLoader.load(yaml: text, file: "ok.yaml").config)
        #expect(config.peers.count == 2)
    }

    @Test(arguments: [
        ("deep flow", String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n", "nested more than 64"),
        ("deep block", String(repeating: "- ", count: 100) + "x\n", "nested more than 64"),
        ("deep indentation", String(repeating: " ", count: 300) + "x: 1\n", "indented 300 columns"),
    ])
    func deepNestingIsRefusedBeforeTheParserRecurses(name: String, text: String, message: String) {
        let result = ConfigLoader.load(yaml: text, file: "deep.yaml")
        #expect(result.errors.count == 1 && result.errors[0].message.contains(message) && result.errors[0].line == 1,
                "\(name): \(result.errors)")
    }

    @Test func quotedTextAndBlockScalarsAreNotMistakenForStructure() {
        let stars = String(repeating: "*x ", count: 40)
        let text = "a: '\(stars)'\nb: \"\(stars) \\\" [[[\"\nc: |\n  \(stars)\n  [[[[[[[[\nd: 1\n"
        #expect(YAMLLimits.check(text, file: "q.yaml").isEmpty)
    }

    /// An apostrophe inside a plain scalar starts no quoted text: what follows it is still scanned.
    @Test func anApostropheInAWordDoesNotHideWhatFollows() {
        let text = "note: don't\n" + (0..<40).map { "k\($0): *a\n" }.joined()
        #expect(YAMLLimits.check(text, file: "a.yaml").first?.message.contains("more than 32 aliases") == true)
    }

    @Test func aHugeFileIsRefused() {
        let text = String(repeating: "#", count: YAMLLimits.maximumBytes + 1)
        #expect(ConfigLoader.load(yaml: text, file: "big.yaml").errors.first?.message.contains("16 MiB") == true)
    }
}
