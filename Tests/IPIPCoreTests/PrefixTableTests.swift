import PropertyBased
import Testing
@testable import IPIPCore

@Suite struct PrefixTableTests {
    func address(_ text: String) -> IPAddress { IPAddress(text)! }
    func prefix(_ text: String) -> IPPrefix { IPPrefix(text)! }

    @Test func emptyTableMatchesNothing() {
        let table = PrefixTable<String>()
        #expect(table.lookup(address("192.0.2.1")) == nil)
        #expect(table.isEmpty)
    }

    @Test func defaultRouteMatchesEverything() {
        var table = PrefixTable<String>()
        table.insert(prefix("0.0.0.0/0"), "default")
        #expect(table.lookup(address("0.0.0.0")) == "default")
        #expect(table.lookup(address("255.255.255.255")) == "default")
    }

    @Test func hostRouteMatchesOnlyItsAddress() {
        var table = PrefixTable<String>()
        table.insert(prefix("203.0.113.87/32"), "ghost")
        #expect(table.lookup(address("203.0.113.87")) == "ghost")
        #expect(table.lookup(address("203.0.113.86")) == nil)
        #expect(table.lookup(address("203.0.113.88")) == nil)
    }

    @Test func longestPrefixWins() {
        var table = PrefixTable<String>()
        table.insert(prefix("0.0.0.0/0"), "default")
        table.insert(prefix("203.0.113.0/24"), "lan")
        table.insert(prefix("203.0.113.0/25"), "low-half")
        table.insert(prefix("203.0.113.87/32"), "ghost")
        #expect(table.lookup(address("203.0.113.87")) == "ghost")
        #expect(table.lookup(address("203.0.113.20")) == "low-half")
        #expect(table.lookup(address("203.0.113.200")) == "lan")
        #expect(table.lookup(address("198.51.100.1")) == "default")
        #expect(table.lookupEntry(address("203.0.113.200"))?.prefix == prefix("203.0.113.0/24"))
    }

    @Test func removalFallsBackToShorterPrefix() {
        var table = PrefixTable<String>()
        table.insert(prefix("203.0.113.0/24"), "lan")
        table.insert(prefix("203.0.113.87/32"), "ghost")
        #expect(table.remove(prefix("203.0.113.87/32")) == "ghost")
        #expect(table.lookup(address("203.0.113.87")) == "lan")
        #expect(table.remove(prefix("203.0.113.87/32")) == nil)
        table.remove(prefix("203.0.113.0/24"))
        #expect(table.lookup(address("203.0.113.87")) == nil)
        #expect(table.isEmpty && table.count == 0)
    }

    @Test func insertIgnoresHostBitsAndReplaces() {
        var table = PrefixTable<Int>()
        #expect(table.insert(prefix("192.0.2.77/24"), 1) == nil)
        #expect(table.insert(prefix("192.0.2.0/24"), 2) == 1)
        #expect(table.count == 1)
        #expect(table.value(for: prefix("192.0.2.0/24")) == 2)
    }

    @Test func iteratesLongestFirst() {
        var table = PrefixTable<Int>()
        table.insert(prefix("10.0.0.0/8"), 1)
        table.insert(prefix("192.0.2.0/24"), 2)
        table.insert(prefix("198.51.100.0/24"), 3)
        table.insert(prefix("192.0.2.1/32"), 4)
        #expect(table.entries.map(\.prefix.description) == ["192.0.2.1/32", "192.0.2.0/24", "198.51.100.0/24", "10.0.0.0/8"])
    }

    /// Both families in one table, each looked up in its own: an IPv6 default route catches no IPv4
    /// address, and removing from one family leaves the other alone.
    @Test func eachFamilyIsLookedUpInItsOwnTable() {
        var table = PrefixTable<String>([
            (prefix("::/0"), "default6"), (prefix("2001:db8:b::/64"), "lan6"), (prefix("2001:db8:b::87/128"), "ghost6"),
            (prefix("203.0.113.0/24"), "lan"), (prefix("203.0.113.87"), "ghost"),
        ], uniquingPrefixesWith: { _, later in later })
        #expect(table.count == 5)
        #expect(table.lookup(address("2001:db8:b::87")) == "ghost6" && table.lookup(address("2001:db8:b::86")) == "lan6")
        #expect(table.lookup(address("2001:db8:c::1")) == "default6")
        #expect(table.lookup(address("203.0.113.87")) == "ghost" && table.lookup(address("198.51.100.1")) == nil)
        #expect(table.lookupEntry(address("2001:db8:b::86"))?.prefix == prefix("2001:db8:b::/64"))
        #expect(table.entries.map(\.prefix.description) == ["203.0.113.87/32", "203.0.113.0/24", "2001:db8:b::87/128", "2001:db8:b::/64", "::/0"])
        #expect(table.remove(prefix("2001:db8:b::87/128")) == "ghost6")
        #expect(table.lookup(address("2001:db8:b::87")) == "lan6" && table.lookup(address("203.0.113.87")) == "ghost")
        #expect(table.remove(prefix("203.0.113.87/32")) == "ghost" && table.remove(prefix("203.0.113.87/32")) == nil)
        #expect(table.lookup(address("203.0.113.87")) == "lan" && table.count == 3)
    }

    /// Against a naive reference: the longest matching prefix in a plain list, after random inserts and
    /// removals, in each family. `spread` turns 8 random bits into an address whose top bits repeat
    /// them, so that short prefixes collide often (IPv6: on both sides of the 64-bit halves).
    func agreesWithLinearScan<Address: FamilyAddress>(_ family: Address.Type, spread: @escaping @Sendable (UInt32) -> Address) async {
        let operation = zip(Gen.bool, Gen.uint32(in: 0...0xFF), Gen.int(in: 0...Address.bitWidth), Gen.int(in: 0...99))
        await propertyCheck(count: 300, input: operation.array(of: 1...60), Gen.uint32(in: 0...0xFF).array(of: 20)) { operations, probes in
            var table = LongestPrefixMatch<Address, Int>()
            var reference: [NetworkPrefix<Address>: Int] = [:]
            for (isRemoval, bits, length, value) in operations {
                let prefix = NetworkPrefix(spread(bits), length: length).network
                if isRemoval {
                    #expect(table.remove(prefix) == reference.removeValue(forKey: prefix))
                } else {
                    table.insert(prefix, value)
                    reference[prefix] = value
                }
            }
            #expect(table.count == reference.count)
            for bits in probes {
                let probe = spread(bits)
                let expected = reference.filter { $0.key.contains(probe) }.max { $0.key.length < $1.key.length }?.value
                #expect(table.lookup(probe) == expected, "probe \(probe)")
            }
        }
    }

    @Test func ipv4AgreesWithLinearScan() async {
        await agreesWithLinearScan(IPv4Address.self) { bits in IPv4Address(bits << 24 | bits << 12 | bits) }
    }

    @Test func ipv6AgreesWithLinearScan() async {
        await agreesWithLinearScan(IPv6Address.self) { bits in
            let bits = UInt64(bits)
            return IPv6Address(high: bits << 56 | bits << 4, low: bits << 60 | bits)
        }
    }

    /// A hub's table, shaped as scripts/hub-config.py writes it — runs of consecutive /32s, /31s and /30s,
    /// which a hash must spread — answers every address of the space as the longest prefix says.
    @Test func aHubsConsecutivePrefixesAreAllFoundAtEveryLength() {
        let base: UInt32 = 0xC612_0000   // 198.18.0.0
        var entries: [(IPv4Prefix, Int)] = []
        for offset in 0..<30_000 { entries.append((IPv4Prefix(IPv4Address(base + UInt32(offset)), length: 32), offset)) }
        for offset in stride(from: 0, to: 50_000, by: 2) { entries.append((IPv4Prefix(IPv4Address(base + UInt32(offset)), length: 31), 100_000 + offset)) }
        for offset in stride(from: 0, to: 65_536, by: 4) { entries.append((IPv4Prefix(IPv4Address(base + UInt32(offset)), length: 30), 200_000 + offset)) }
        let table = LongestPrefixMatch(entries, uniquingPrefixesWith: { _, later in later })
        #expect(table.count == entries.count)
        var wrong = 0
        for offset in 0..<(65_536 + 64) {
            let expected: Int? = offset < 30_000 ? offset : offset < 50_000 ? 100_000 + offset & ~1 : offset < 65_536 ? 200_000 + offset & ~3 : nil
            if table.lookup(IPv4Address(base + UInt32(offset))) != expected { wrong += 1 }
        }
        #expect(wrong == 0)
        #expect(table.value(for: IPv4Prefix(IPv4Address(base + 7), length: 32)) == 7)
        #expect(table.value(for: IPv4Prefix(IPv4Address(base + 40_000), length: 32)) == nil)
    }

    /// Built at once, the table equals the one built by inserting in order, duplicates combined as told.
    func buildingAtOnceAgreesWithInsertingInOrder<Address: FamilyAddress>(_ family: Address.Type, spread: @escaping @Sendable (UInt32) -> Address) async {
        let entry = zip(Gen.uint32(in: 0...0xFF), Gen.int(in: 0...Address.bitWidth), Gen.int(in: 0...99))
        await propertyCheck(count: 300, input: entry.array(of: 0...80)) { entries in
            let prefixed = entries.map { bits, length, value in (NetworkPrefix(spread(bits), length: length).network, value) }
            var inserted = LongestPrefixMatch<Address, Int>(), keptFirst = LongestPrefixMatch<Address, Int>()
            for (prefix, value) in prefixed {
                inserted.insert(prefix, value)
                if keptFirst.value(for: prefix) == nil { keptFirst.insert(prefix, value) }
            }
            let lastWins = LongestPrefixMatch(prefixed, uniquingPrefixesWith: { _, later in later })
            let firstWins = LongestPrefixMatch(prefixed, uniquingPrefixesWith: { earlier, _ in earlier })
            #expect(lastWins.entries.map { "\($0.prefix)=\($0.value)" } == inserted.entries.map { "\($0.prefix)=\($0.value)" })
            #expect(firstWins.entries.map { "\($0.prefix)=\($0.value)" } == keptFirst.entries.map { "\($0.prefix)=\($0.value)" })
            for (prefix, _) in prefixed {
                #expect(lastWins.lookup(prefix.address) == inserted.lookup(prefix.address))
            }
        }
    }

    @Test func ipv4BuildingAtOnceAgreesWithInsertingInOrder() async {
        await buildingAtOnceAgreesWithInsertingInOrder(IPv4Address.self) { bits in IPv4Address(bits << 24 | bits << 12) }
    }

    @Test func ipv6BuildingAtOnceAgreesWithInsertingInOrder() async {
        await buildingAtOnceAgreesWithInsertingInOrder(IPv6Address.self) { bits in
            let bits = UInt64(bits)
            return IPv6Address(high: bits << 56 | bits << 4, low: bits << 60)
        }
    }
}
