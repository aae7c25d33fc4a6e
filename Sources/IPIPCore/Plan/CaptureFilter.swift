/// libpcap filter expressions (compiled to kernel BPF) for the two capture handles.
public enum CaptureFilter {
    /// Packets addressed to the local address, untagged or inside one 802.1Q tag: protocol 4, and the
    /// ICMP errors (destination unreachable, time exceeded) routers send about our outer packets.
    /// With `ipv6`, protocol 41 too.
    public static func tunnel(local: IPv4Address, ipv6: Bool = false) -> String {
        let tunnel = ipv6 ? "ip proto 4 or ip proto 41" : "ip proto 4"
        let match = "dst host \(local) and (\(tunnel) or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        return "(\(match)) or (vlan and \(match))"
    }

    /// ARP packets that ask for a ghost address (target) or claim one (sender): the first are answered,
    /// the second reveal conflicts.
    /// With IPv6 ghosts, also the Neighbor Solicitations and Advertisements (ICMPv6 135 and 136 right
    /// after the IPv6 header, hop limit 255): the responder checks which target they name.
    public static func proxyARP(ghosts: [IPv4Address], ghosts6: [IPv6Address] = []) -> String {
        var filters: [String] = []
        if !ghosts.isEmpty {
            let terms = ghosts.sorted().flatMap { ghost -> [String] in
                let hex = "0x" + String(ghost.value, radix: 16)
                return ["arp[24:4] = \(hex)", "arp[14:4] = \(hex)"]
            }
            filters.append("arp and (\(terms.joined(separator: " or ")))")
        }
        if !ghosts6.isEmpty {
            filters.append("ip6 and ip6[6] = 58 and ip6[7] = 255 and (ip6[40] = 135 or ip6[40] = 136)")
        }
        guard !filters.isEmpty else { return "arp and less 1" }   // no ghost left: matches nothing
        return filters.count == 1 ? filters[0] : filters.map { "(\($0))" }.joined(separator: " or ")
    }
}
