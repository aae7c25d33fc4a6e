/// Two lists of prefixes compared by merging them sorted rather than by hashing each prefix: a hub's
/// reload compares 100,000 prefixes with 100,000, and one sort costs a fraction of as many seeded
/// hashes. For prefixes of one family or both (`IPPrefix` orders IPv4 first), one algorithm.
public enum PrefixMerge {
    /// `entries` sorted by prefix (address, then length), each prefix once: where one comes more than
    /// once, the first given is kept, and `duplicate(kept, repeated)` is told of each later one.
    public static func uniqueSorted<Prefix: Comparable, Owner>(_ entries: [(Prefix, Owner)],
                                                               duplicate: (_ kept: Owner, _ repeated: Owner) -> Void = { _, _ in })
        -> [(prefix: Prefix, owner: Owner)] {
        // Positions sorted by prefix, then by position: the first of each run is the one given first.
        // Only positions move; the owners are not touched.
        let order = entries.indices.sorted { entries[$0].0 < entries[$1].0 || (entries[$0].0 == entries[$1].0 && $0 < $1) }
        var unique: [(prefix: Prefix, owner: Owner)] = []
        unique.reserveCapacity(entries.count)
        for index in order {
            let (prefix, owner) = entries[index]
            if let last = unique.last, last.prefix == prefix {
                duplicate(last.owner, owner)
            } else {
                unique.append((prefix, owner))
            }
        }
        return unique
    }

    /// Walks two lists from `uniqueSorted` together: each prefix in one of them only, or in both.
    public static func compare<Prefix: Comparable, Old, New>(
        _ old: [(prefix: Prefix, owner: Old)], _ new: [(prefix: Prefix, owner: New)],
        onlyOld: (Prefix, Old) -> Void, onlyNew: (Prefix, New) -> Void, both: (Prefix, Old, New) -> Void
    ) {
        var i = 0, j = 0
        while i < old.count || j < new.count {
            if j == new.count || (i < old.count && old[i].prefix < new[j].prefix) {
                onlyOld(old[i].prefix, old[i].owner)
                i += 1
            } else if i == old.count || new[j].prefix < old[i].prefix {
                onlyNew(new[j].prefix, new[j].owner)
                j += 1
            } else {
                both(old[i].prefix, old[i].owner, new[j].owner)
                i += 1
                j += 1
            }
        }
    }
}
