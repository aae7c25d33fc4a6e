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
    /// the second reveal conflicts. With `endpoint` (an HA pair's uplink), also ARP that claims the
    /// tunnel endpoint (sender): another box holding it too is a split brain.
    /// With IPv6 ghosts, also the Neighbor Solicitations and Advertisements (ICMPv6 135 and 136 right
    /// after the IPv6 header, hop limit 255): the responder checks which target they name.
    public static func proxyARP(ghosts: [IPv4Address], ghosts6: [IPv6Address] = [], endpoint: IPv4Address? = nil) -> String {
        var filters: [String] = []
        let hex = { (address: IPv4Address) in "0x" + String(address.value, radix: 16) }
        var terms = ghosts.sorted().flatMap { ghost in ["arp[24:4] = \(hex(ghost))", "arp[14:4] = \(hex(ghost))"] }
        if let endpoint { terms.append("arp[14:4] = \(hex(endpoint))") }
        if !terms.isEmpty {
            filters.append("arp and (\(terms.joined(separator: " or ")))")
        }
        if !ghosts6.isEmpty {
            filters.append("ip6 and ip6[6] = 58 and ip6[7] = 255 and (ip6[40] = 135 or ip6[40] = 136)")
        }
        guard !filters.isEmpty else { return "arp and less 1" }   // no ghost left: matches nothing
        return filters.count == 1 ? filters[0] : filters.map { "(\($0))" }.joined(separator: " or ")
    }

    /// The proxy capture's filter for `interface` as `config` has it: its ghosts of both families, and
    /// the endpoint on an HA pair's uplink.
    public static func proxyARP(interface: String, config: GatewayConfig) -> String {
        proxyARP(ghosts: config.ghostHosts.filter { $0.interface == interface }.map(\.address),
                 ghosts6: config.ghostHosts6.filter { $0.interface == interface }.map(\.address),
                 endpoint: config.splitBrainWatchedEndpoint(on: interface))
    }
}
