import Testing
@testable import IPIPCore

/// One list of keys: what the loader accepts, what `check --help` names, what the README's table and
/// ipipd.yaml(5) describe.
@Suite struct ConfigReferenceTests {
    /// The keys the README's table names (`peers[].name` / `.remote` cells expanded).
    static func readmeKeys() -> [String] {
        let text = Repository.text("README.md")
        guard let start = text.range(of: "| key | meaning | default |") else { return [] }
        var keys: [String] = []
        for line in text[start.upperBound...].split(separator: "\n").dropFirst() {
            guard line.hasPrefix("|") else { break }
            let cell = line.split(separator: "|", omittingEmptySubsequences: false)[1]
            let names = cell.split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            guard let first = names.first else { continue }
            let section = first.split(separator: ".").dropLast().joined(separator: ".")
            keys.append(first)
            keys += names.dropFirst().map { section + $0 }
        }
        return keys
    }

    @Test func theReadmeTableNamesEveryKeyOnce() {
        let readme = Self.readmeKeys()
        #expect(readme.sorted() == ConfigReference.keys.map(\.name).sorted(), "README: \(readme)")
        #expect(Set(readme).count == readme.count)
    }

    @Test func theManPageDescribesEveryKey() {
        let manual = Repository.text("packaging/man/ipipd.yaml.5")
        for key in ConfigReference.keys {
            // roff escapes the minus signs of option-like words.
            let written = key.leaf.replacingAll("-", with: "\\-")
            #expect(manual.contains(".B \(written)") || manual.contains(".BR \(written)"), "ipipd.yaml(5) lacks \(key.name)")
        }
    }

    /// Every key the reference lists is one the loader takes, and a key it does not list is a typo.
    @Test func theLoaderAcceptsExactlyTheReferencesKeys() {
        let full = """
            uplink: {interface: eth0, address: 192.0.2.1, standby-when-absent: no}
            tunnel: {name: tunl, address: 198.18.0.1, address6: "2001:db8::1", mtu: auto, ttl: inherit, tos: 0, pmtudisc: yes,
                     min-pmtu: 552, delivery: routed, clamp-mss: auto, reinjection-mark: 0x4950}
            peers:
              - {name: a, remote: 192.0.2.9, routes: [198.18.1.0/24, "2001:db8:1::/64"], accept-sources: [198.18.1.0/24, "2001:db8:1::/64"]}
            ghost-hosts:
              - {address: 198.18.1.5, interface: eth1, mac: auto}
            proxy-arp: {answer-probes: no, on-conflict: defend}
            metrics: {listen: 127.0.0.1:9473}
            """
        let result = ConfigLoader.load(yaml: full, file: "all.yaml")
        #expect(result.errors.isEmpty, "\(result.errors.map(\.description))")
        let used = Set(ConfigReference.keys.map(\.name))
        #expect(used.count == ConfigReference.keys.count)
        #expect(ConfigLoader.load(yaml: full + "\ntunnels: {}\n", file: "all.yaml").errors.map(\.key) == ["tunnels"])
    }
}
