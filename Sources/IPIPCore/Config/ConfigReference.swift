/// Every key a config file may hold, with what it means and its default: the one list the loader takes
/// its known keys from (an unknown key is a typo) and `ipipd check --help` prints, which the README's
/// table and ipipd.yaml(5) follow (a test holds them to it).
public enum ConfigReference {
    public struct Key: Sendable, Equatable {
        /// The key's path: `uplink.address`, `peers[].remote` (a list's items in brackets).
        public let name: String
        public let meaning: String
        public let defaultValue: String

        /// The mapping the key belongs to (`peers[]`), and its own name in it (`remote`).
        public var section: String { name.split(separator: ".").dropLast().joined(separator: ".") }
        public var leaf: String { String(name.split(separator: ".").last!) }
    }

    public static let keys: [Key] = [
        Key(name: "uplink.interface", meaning: "the interface captured on for tunnel packets", defaultValue: "required"),
        Key(name: "uplink.address", meaning: "the local address: outer source of what is sent, outer destination of what is accepted; "
            + "IPv4, or IPv6 for an IPv6 underlay (ip6tnl, RFC 2473), whose family every peer's remote shares", defaultValue: "required"),
        Key(name: "uplink.standby-when-absent", meaning: "HA pair: while uplink.address is not on the interface (keepalived gave it to "
            + "the other box), run as the standby — everything set up, nothing answered or sent", defaultValue: "no"),
        Key(name: "tunnel.name", meaning: "the TUN device's name", defaultValue: "tunl"),
        Key(name: "tunnel.address", meaning: "the tunnel's own IPv4 address (a /32), e.g. machine A's ghost address", defaultValue: "none"),
        Key(name: "tunnel.address6", meaning: "the tunnel's own IPv6 address (a /128)", defaultValue: "none"),
        Key(name: "tunnel.mtu", meaning: "the TUN device's MTU, 68–65515 (at least 1280 when the tunnel carries IPv6), or auto",
            defaultValue: "auto: the uplink MTU − 20"),
        Key(name: "tunnel.ttl", meaning: "the outer TTL: inherit (the inner packet's) or 1–255", defaultValue: "inherit"),
        Key(name: "tunnel.tos", meaning: "the outer TOS: inherit (the inner DSCP) or a value; ECN is always copied", defaultValue: "0"),
        Key(name: "tunnel.pmtudisc", meaning: "set DF on every outer packet (path-MTU discovery)", defaultValue: "yes"),
        Key(name: "tunnel.min-pmtu", meaning: "the lowest outer path MTU a router's \"fragmentation needed\" may set", defaultValue: "552"),
        Key(name: "tunnel.delivery", meaning: "how decapsulated packets reach the kernel: kernel (received on the TUN device, as Linux's "
            + "ipip does) or routed (routed by ipipd through a raw socket; `libnet`, its former name, is still read)", defaultValue: "kernel"),
        Key(name: "tunnel.clamp-mss", meaning: "lower the MSS option of TCP SYNs and SYN-ACKs crossing the tunnel, both ways: auto (to what fits "
            + "each peer's path MTU), off, or a number (536–65495)", defaultValue: "off"),
        Key(name: "tunnel.reinjection-mark", meaning: "with delivery: routed, the SO_MARK on what ipipd reinjects; 0: none",
            defaultValue: "0x4950"),
        Key(name: "tunnel.encaplimit", meaning: "IPv6 underlay: the Tunnel Encapsulation Limit option sent in front of every inner "
            + "packet (ip6tnl's encaplimit, RFC 2473), 0–255, or none", defaultValue: "4"),
        Key(name: "peers[].name", meaning: "the peer's name, in logs, status and metrics", defaultValue: "required"),
        Key(name: "peers[].remote", meaning: "the peer's endpoint, in uplink.address's family: its uplink address, or the outside "
            + "address of the NAT it is behind", defaultValue: "required"),
        Key(name: "peers[].routes", meaning: "the inner prefixes, IPv4 and IPv6, routed into the tunnel to this peer", defaultValue: "none"),
        Key(name: "peers[].accept-sources", meaning: "the inner source prefixes, IPv4 and IPv6, accepted from this peer; anything else "
            + "it sends is dropped", defaultValue: "its routes and its remote"),
        Key(name: "peers[].encap.type", meaning: "the UDP layer of the peer's outer packets (iproute2's encap): fou, gue, or none "
            + "(protocol 4/41 right behind the IP header)", defaultValue: "none"),
        Key(name: "peers[].encap.dport", meaning: "fou, gue: the UDP port the peer receives on (encap-dport; its ip fou add port)",
            defaultValue: "required with fou and gue"),
        Key(name: "peers[].encap.dport6", meaning: "fou: the peer's port for IPv6 inner packets (FOU names no protocol: a port "
            + "with ipproto 41)", defaultValue: "required with fou and IPv6 routes"),
        Key(name: "peers[].encap.sport", meaning: "fou, gue: the UDP source port: auto (a hash of the inner flow, for ECMP and RSS) "
            + "or a fixed port (through a NAT)", defaultValue: "auto"),
        Key(name: "peers[].encap.csum", meaning: "fou, gue: a UDP checksum on every outer packet (encap-csum)",
            defaultValue: "no over IPv4, yes over IPv6"),
        Key(name: "fou[].port", meaning: "a UDP port this gateway receives tunnel packets on (ip fou add port P)", defaultValue: "none"),
        Key(name: "fou[].ipproto", meaning: "the inner protocol of every FOU packet on the port: 4 (IPv4) or 41 (IPv6)",
            defaultValue: "required unless gue"),
        Key(name: "fou[].gue", meaning: "the port takes GUE (its header names each packet's inner protocol) instead of FOU",
            defaultValue: "no"),
        Key(name: "ghost-hosts[].address", meaning: "answer ARP (an IPv4 address) or Neighbor Solicitations (IPv6: proxy NDP) for it",
            defaultValue: "required"),
        Key(name: "ghost-hosts[].interface", meaning: "the LAN interface to answer on", defaultValue: "required"),
        Key(name: "ghost-hosts[].mac", meaning: "the MAC address answered with, or auto", defaultValue: "auto: the interface's own"),
        Key(name: "proxy-arp.answer-probes", meaning: "answer RFC 5227 probes and IPv6 DAD solicitations for ghost addresses",
            defaultValue: "no"),
        Key(name: "proxy-arp.on-conflict", meaning: "defend: keep answering when another machine claims a ghost address; yield: stop "
            + "while the conflict lasts", defaultValue: "defend"),
        Key(name: "metrics.listen", meaning: "serve Prometheus metrics at http://ADDRESS:PORT/metrics (IPv6: [ADDRESS]:PORT)",
            defaultValue: "off"),
    ]

    /// The keys a mapping may hold: `""` for the file's top level, `uplink`, `peers[]`, …
    public static func allowed(in section: String) -> [String] {
        if section.isEmpty {
            var top: [String] = []
            for key in keys {
                let name = String(key.name.split(separator: ".")[0].split(separator: "[")[0])
                if !top.contains(name) { top.append(name) }
            }
            return top
        }
        var names: [String] = []
        for key in keys {
            // A key's own leaf, or the mapping under this section it belongs to (`peers[]` holds `encap`).
            let name = key.section == section ? key.leaf
                : key.section.hasPrefix(section + ".") ? String(key.section.dropFirst(section.count + 1).split(separator: ".")[0]) : nil
            if let name, !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The keys as `check --help` lists them, section by section (ipipd.yaml(5) says what each means).
    public static var help: String {
        allowed(in: "").map { top in
            let section = keys.contains { $0.section == "\(top)[]" || $0.section.hasPrefix("\(top)[].") } ? "\(top)[]" : top
            return "\(section): " + allowed(in: section).map { name in
                let inner = "\(section).\(name)"
                return keys.contains { $0.section == inner } ? "\(name) (" + allowed(in: inner).joined(separator: ", ") + ")" : name
            }.joined(separator: ", ") + "."
        }.joined(separator: " ")
    }
}
