import IPIPCore

/// Prints a config back as YAML with every default spelled out: what `check` shows on success, which
/// `check` and `run` read back as the same config.
enum ConfigPrinter {
    /// A prefix as a YAML flow list's item: IPv6 quoted (YAML reads a bare `::` there as a key).
    static func item(_ prefix: some CustomStringConvertible) -> String {
        let text = prefix.description
        return text.contains(":") ? "\"\(text)\"" : text
    }

    static func yaml(_ config: GatewayConfig) -> String {
        var out = "uplink:\n"
        out += "  interface: \(config.uplink.interface)\n"
        out += "  address: \(config.uplink.address)\n"
        out += "  standby-when-absent: \(config.uplink.standbyWhenAbsent ? "yes   # HA pair: standby while the address is elsewhere" : "no")\n"
        out += "tunnel:\n"
        out += "  name: \(config.tunnel.name)\n"
        if let address = config.tunnel.address { out += "  address: \(address)\n" }
        if let address = config.tunnel.address6 { out += "  address6: \(address)\n" }
        let overhead = config.encapsulations.map(\.overhead).max() ?? 20
        out += "  mtu: " + (config.tunnel.mtu.map(String.init) ?? "auto   # uplink MTU - \(overhead)") + "\n"
        out += "  ttl: \(config.tunnel.ttl)\n"
        out += "  tos: \(config.tunnel.tos)\n"
        out += "  pmtudisc: \(config.tunnel.pmtudisc ? "yes" : "no")\n"
        out += "  min-pmtu: \(config.tunnel.minimumPathMTU)\n"
        out += "  delivery: \(config.tunnel.delivery.rawValue)\n"
        out += "  clamp-mss: \(config.tunnel.clampMSS)\n"
        if config.tunnel.delivery == .routed {
            out += "  reinjection-mark: 0x\(String(config.tunnel.reinjectionMark, radix: 16))\n"
        }
        if config.uplink.isIPv6 {
            out += "  encaplimit: " + (config.tunnel.encapsulationLimit.map { "\($0)" } ?? "none") + "\n"
        }
        out += "peers:\n"
        // Once, not per peer: a hub's config has thousands of peers and a table of all their routes.
        let pinned = Set(config.endpointsNeedingPins.map(\.name))
        for peer in config.peers {
            out += "  - name: \(peer.name)\n"
            out += "    remote: \(peer.remote)\n"
            if let encap = peer.encapsulation {
                // A checksum left to the underlay's default stays unset: read back, the file means the same.
                out += "    encap: {type: \(encap.kind.rawValue), dport: \(encap.destinationPort)"
                    + (encap.destinationPort6.map { ", dport6: \($0)" } ?? "") + ", sport: \(encap.sourcePort)"
                    + (encap.checksum.map { ", csum: \($0 ? "yes" : "no")" } ?? "") + "}"
                    + (encap.checksum == nil ? "   # UDP checksum: \(encap.sendsChecksum(underlayIPv6: config.uplink.isIPv6) ? "yes" : "no") (the default)" : "")
                    + "\n"
            }
            out += "    routes: [\(peer.routes.map(item).joined(separator: ", "))]\n"
            let sources = "[\(peer.allowedSources.map(item).joined(separator: ", "))]"
            // Left out, the default stays a comment: read back, the file means the same (and prints the same).
            out += peer.acceptSources == nil
                ? "    # accept-sources: \(sources)   (not set: the default, its routes and its endpoint)\n"
                : "    accept-sources: \(sources)\n"
            if pinned.contains(peer.name) {
                out += "    # endpoint inside a tunneled prefix: run pins a host route to it through the uplink\n"
            }
        }
        if !config.ghostHosts.isEmpty {
            out += "ghost-hosts:\n"
            for ghost in config.ghostHosts {
                out += "  - address: \(ghost.address)   # proxy \(ghost.address.isIPv6 ? "NDP" : "ARP")\n"
                out += "    interface: \(ghost.interface)\n"
                out += "    mac: " + (ghost.mac.map { "\($0)" } ?? "auto   # the interface's own") + "\n"
            }
            out += "proxy-arp:\n"
            out += "  answer-probes: \(config.proxyARP.answerProbes ? "yes" : "no")\n"
            out += "  on-conflict: \(config.proxyARP.onConflict.rawValue)\n"
        }
        if !config.fouPorts.isEmpty {
            out += "fou:\n"
            for port in config.fouPorts {
                switch port.payload {
                case .fou(let innerProtocol): out += "  - {port: \(port.port), ipproto: \(innerProtocol)}\n"
                case .gue: out += "  - {port: \(port.port), gue: yes}\n"
                }
            }
        }
        if let metrics = config.metricsListen {
            out += "metrics:\n  listen: \"\(metrics)\"\n"
        }
        return out
    }
}
