/// Two lists of prefixes compared by merging them sorted rather than by hashing each prefix: a hub's
/// reload compares 100,000 prefixes with 100,000, and sorting integers costs a fraction of as many
/// seeded hashes.
public enum PrefixMerge {
    /// `entries` sorted by prefix (address, then length), each prefix once: where one comes more than
    /// once, the first given is kept, and `duplicate(kept, repeated)` is told of each later one.
    public static func uniqueSorted<Owner>(_ entries: [(IPv4Prefix, Owner)],
                                           duplicate: (_ kept: Owner, _ repeated: Owner) -> Void = { _, _ in })
        -> [(prefix: IPv4Prefix, owner: Owner)] {
        // Sorted by prefix, then by position: the first of each run is the one given first. Only the
        // prefixes, packed into integers with their positions, are sorted; the owners are not touched.
        // Address in the top 32 bits, length in the next 6, position in the low 26 (a config holds far
        // fewer than 67 million prefixes: its file may have 16 MiB).
        precondition(entries.count < 1 << 26, "too many prefixes to compare")
        let order = entries.indices.map { UInt64(entries[$0].0.address.value) << 32 | UInt64(entries[$0].0.length) << 26 | UInt64($0) }
            .sorted()
            .map { Int(truncatingIfNeeded: $0 & (1 << 26 - 1)) }
        var unique: [(prefix: IPv4Prefix, owner: Owner)] = []
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
    public static func compare<Old, New>(_ old: [(prefix: IPv4Prefix, owner: Old)], _ new: [(prefix: IPv4Prefix, owner: New)],
                                         onlyOld: (IPv4Prefix, Old) -> Void, onlyNew: (IPv4Prefix, New) -> Void,
                                         both: (IPv4Prefix, Old, New) -> Void) {
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
