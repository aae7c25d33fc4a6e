/// libpcap filter expressions (compiled to kernel BPF) for the two capture handles.
public enum CaptureFilter {
    /// Packets addressed to the local address, untagged or inside one 802.1Q tag: protocol 4, and the
    /// ICMP errors (destination unreachable, time exceeded) routers send about our outer packets.
    public static func tunnel(local: IPv4Address) -> String {
        let match = "dst host \(local) and (ip proto 4 or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        return "(\(match)) or (vlan and \(match))"
    }

    /// ARP packets that ask for a ghost address (target) or claim one (sender): the first are answered,
    /// the second reveal conflicts.
    public static func proxyARP(ghosts: [IPv4Address]) -> String {
        guard !ghosts.isEmpty else { return "arp and less 1" }   // no ghost left: matches nothing
        let terms = ghosts.sorted().flatMap { ghost -> [String] in
            let hex = "0x" + String(ghost.value, radix: 16)
            return ["arp[24:4] = \(hex)", "arp[14:4] = \(hex)"]
        }
        return "arp and (\(terms.joined(separator: " or ")))"
    }
}
