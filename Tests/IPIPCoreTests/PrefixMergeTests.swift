import PropertyBased
import Testing
@testable import IPIPCore

@Suite struct PrefixMergeTests {
    /// Against sets and dictionaries: the merge finds what only one list has, what both have, and keeps
    /// the first owner of a prefix given twice, telling of the others.
    @Test func mergingSortedListsAgreesWithHashing() async {
        // Addresses from a small set spread over the whole space (top bits included), so that they repeat.
        let entry = zip(Gen.uint32(in: 0...0x3F).map { $0 &* 0x0421_0843 }, Gen.int(in: 24...32))
        await propertyCheck(count: 300, input: entry.array(of: 0...60), entry.array(of: 0...60)) { old, new in
            func prefixes(_ list: [(UInt32, Int)]) -> [(IPv4Prefix, Int)] {
                list.enumerated().map { (IPv4Prefix(IPv4Address($1.0), length: $1.1).network, $0) }
            }
            var repeats = 0
            let oldList = PrefixMerge.uniqueSorted(prefixes(old)) { kept, repeated in
                #expect(kept < repeated)
                repeats += 1
            }
            let newList = PrefixMerge.uniqueSorted(prefixes(new))
            let firstOld = Dictionary(prefixes(old), uniquingKeysWith: { a, _ in a })
            #expect(oldList.count == firstOld.count && repeats == old.count - firstOld.count)
            #expect(oldList.allSatisfy { firstOld[$0.prefix] == $0.owner })
            #expect(zip(oldList, oldList.dropFirst()).allSatisfy { $0.prefix < $1.prefix })
            var onlyOld = Set<IPv4Prefix>(), onlyNew = Set<IPv4Prefix>(), both = Set<IPv4Prefix>()
            PrefixMerge.compare(oldList, newList, onlyOld: { p, _ in onlyOld.insert(p) }, onlyNew: { p, _ in onlyNew.insert(p) },
                                both: { p, _, _ in both.insert(p) })
            let a = Set(oldList.map(\.prefix)), b = Set(newList.map(\.prefix))
            #expect(onlyOld == a.subtracting(b) && onlyNew == b.subtracting(a) && both == a.intersection(b))
        }
    }
}
