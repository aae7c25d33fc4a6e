/// libpcap filter expressions (compiled to kernel BPF) for the two capture handles.
public enum CaptureFilter {
    /// Packets addressed to the local address, untagged or inside one 802.1Q tag: protocol 4 (and with
    /// `ipv6`, 41), UDP to the `ports` FOU and GUE arrive on (and every later fragment of a UDP datagram,
    /// which has no port to match), and the ICMP errors (destination unreachable, time exceeded) routers
    /// send about our outer packets. Over an IPv6 underlay, by the first next header: 4, 41, UDP to those
    /// ports, ICMPv6 errors (packet too big among them), and the extension headers (Hop-by-Hop, Routing,
    /// Fragment, Destination Options, the last as ip6tnl sends its encapsulation limit) that may lie before
    /// them, which the parser walks and checks.
    public static func tunnel(local: IPAddress, ipv6: Bool = false, ports: [UInt16] = []) -> String {
        let udp = ports.map { "udp dst port \($0)" }.joined(separator: " or ")
        let match: String
        switch local {
        case .v4(let local):
            var carried = ipv6 ? "ip proto 4 or ip proto 41" : "ip proto 4"
            if !ports.isEmpty { carried += " or (ip proto 17 and (\(udp) or ip[6:2] & 0x1fff != 0))" }
            match = "dst host \(local) and (\(carried) or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        case .v6(let local):
            var carried = "ip6[6] = 4 or ip6[6] = 41 or ip6[6] = 0 or ip6[6] = 43 or ip6[6] = 44 or ip6[6] = 60"
            if !ports.isEmpty { carried += " or (ip6[6] = 17 and (\(udp)))" }
            match = "ip6 dst host \(local) and (\(carried) or (ip6[6] = 58 and (ip6[40] = 1 or ip6[40] = 2 or ip6[40] = 3)))"
        }
        return "(\(match)) or (vlan and \(match))"
    }

    /// ARP packets that ask for a ghost address (target) or claim one (sender): the first are answered,
    /// the second reveal conflicts. With `endpoint` (an HA pair's uplink), also ARP that claims the
    /// tunnel endpoint (sender): another box holding it too is a split brain.
    /// With IPv6 ghosts, also the Neighbor Solicitations and Advertisements (ICMPv6 135 and 136 right
    /// after the IPv6 header, hop limit 255): the responder checks which target they name.
    public static func neighbourProxy(ghosts: [IPv4Address], ghosts6: [IPv6Address] = [], endpoint: IPv4Address? = nil) -> String {
        var filters: [String] = []
        let hex = { (value: UInt32) in "0x" + String(value, radix: 16) }
        let blocks = addressBlocks(ghosts)
        if blocks.count > maximumARPBlocks {
            // More than the kernel's 4,096 BPF instructions could list: every ARP frame, each looked up in
            // the responder's table (libpcap would otherwise filter in user space, silently, every frame).
            filters.append("arp")
        } else {
            var terms = blocks.flatMap { block -> [String] in
                let match = block.length == 32 ? " = \(hex(block.address.value))"
                    : " & \(hex(block.mask)) = \(hex(block.address.value))"
                return ["arp[24:4]" + match, "arp[14:4]" + match]
            }
            if let endpoint { terms.append("arp[14:4] = \(hex(endpoint.value))") }
            if !terms.isEmpty {
                filters.append("arp and (\(terms.joined(separator: " or ")))")
            }
        }
        if !ghosts6.isEmpty {
            filters.append("ip6 and ip6[6] = 58 and ip6[7] = 255 and (ip6[40] = 135 or ip6[40] = 136)")
        }
        guard !filters.isEmpty else { return "arp and less 1" }   // no ghost left: matches nothing
        return filters.count == 1 ? filters[0] : filters.map { "(\($0))" }.joined(separator: " or ")
    }

    /// At most this many address blocks are listed in an ARP filter: two comparisons each, three BPF
    /// instructions per masked one, under the kernel's limit of 4,096 instructions.
    public static let maximumARPBlocks = 600

    /// `addresses` as the fewest aligned blocks (CIDR prefixes) that hold exactly them: 4,096 ghosts of
    /// one /20 are one block.
    public static func addressBlocks(_ addresses: [IPv4Address]) -> [IPv4Prefix] {
        let values = Array(Set(addresses.map(\.value))).sorted()
        var blocks: [IPv4Prefix] = []
        var index = 0
        while index < values.count {
            var run = 1   // consecutive addresses from values[index]
            while index + run < values.count && values[index + run] == values[index] &+ UInt32(run) { run += 1 }
            var start = values[index]
            var left = UInt64(run)
            while left > 0 {
                let aligned = start == 0 ? 32 : start.trailingZeroBitCount
                let fits = 63 - left.leadingZeroBitCount   // floor(log2(left))
                let bits = min(aligned, fits)
                blocks.append(IPv4Prefix(IPv4Address(start), length: 32 - bits))
                start = start &+ UInt32(truncatingIfNeeded: UInt64(1) << bits)
                left -= UInt64(1) << bits
            }
            index += run
        }
        return blocks
    }

    /// The proxy capture's filter for `interface` as `config` has it: its ghosts of both families, and
    /// the endpoint on an HA pair's uplink.
    public static func neighbourProxy(interface: String, config: GatewayConfig) -> String {
        neighbourProxy(ghosts: config.ghosts(IPv4Address.self, on: interface).map(\.address),
                 ghosts6: config.ghosts(IPv6Address.self, on: interface).map(\.address),
                 endpoint: config.splitBrainWatchedEndpoint(on: interface))
    }
}
