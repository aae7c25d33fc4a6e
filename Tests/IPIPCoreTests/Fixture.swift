import Foundation
import IPIPCore

/// Packets made by scapy (see Fixtures/FIXTURES.md), loaded from the source tree.
enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func bytes(_ name: String) -> [UInt8] {
        let url = directory.appendingPathComponent("\(name).hex")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            fatalError("missing fixture \(url.path)")
        }
        return hex(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// What the ICMP error in fixture `name` (an IPv4 packet) quotes of the outer packet it is about.
    static func quote(inReport name: String) -> OuterPacketQuote {
        bytes(name).withUnsafeBytes { OuterPacketQuote(quoted: UnsafeRawBufferPointer(rebasing: $0[28...]))! }
    }

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}

/// Repository root, for the example configs in config/.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ relativePath: String) -> String {
        try! String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }
}
