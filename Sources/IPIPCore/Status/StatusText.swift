/// `ipipd status` as an admin reads it: what `--json` holds, laid out, bytes in IEC units, times as ages.
extension GatewayStatus {
    /// `now`: the wall clock, seconds since the Unix epoch (for "last received … ago").
    public func text(now: Double) -> String {
        var out = "ipipd \(version), pid \(pid), up \(Self.duration(uptimeSeconds))\n"
        out += "config \(configFile) (sha256 \(configSHA256))\n"
        out += "tunnel \(tunnel) (mtu \(tunnelMTU)), local address \(localAddress)\n"
        let problems = healthProblems
        if !problems.isEmpty { out += "UNHEALTHY (`status --check` fails): \(problems.joined(separator: "; "))\n" }
        if role.highAvailability {
            out += "role: \(role.role) (HA pair: follows \(localAddress)), for \(Self.duration(role.seconds)), "
                + "\(role.changes) change(s) since the start\n"
            if let claim = role.lastSplitBrainClaim {
                out += "SPLIT BRAIN? \(role.splitBrainClaims) claim(s) by another machine while this box was active; last: "
                    + "\(claim.mac) claimed \(claim.address) \(Self.duration(max(0, now - claim.at))) ago (is the partner active too?)\n"
            }
        }
        out += "\n"
        let header = ["peer", "endpoint", "routes", "path mtu", "sent", "received", "last received", "drops"]
        var rows = [header]
        for peer in peers {
            let flags = (peer.looping ? " LOOP" : "") + (peer.errorWindow ? " UNREACHABLE" : "")
            rows.append([peer.name + flags, peer.endpoint, peer.routes.joined(separator: ","), "\(peer.pathMTU)",
                         Self.traffic(peer.encapsulated), Self.traffic(peer.decapsulated),
                         peer.lastReceivedAt.map { Self.duration(max(0, now - $0)) + " ago" } ?? "never",
                         "\(peer.drops.values.reduce(0, +))"])
        }
        out += Self.columns(rows)
        // The outer headers, once for all peers when they share one (a hub's thousands).
        if Set(peers.map(\.encapsulation)).count == 1, let first = peers.first {
            out += "  outer header: \(first.encapsulation)\n"
        } else {
            for peer in peers { out += "  \(peer.name), outer header: \(peer.encapsulation)\n" }
        }
        for peer in peers where peer.encapsulatedIPv6.packets + peer.decapsulatedIPv6.packets > 0 {
            out += "  \(peer.name), IPv6 share: sent \(Self.traffic(peer.encapsulatedIPv6)), received \(Self.traffic(peer.decapsulatedIPv6))\n"
        }
        if !ghostHosts.isEmpty {
            out += "\nghost hosts (proxy ARP; proxy NDP for IPv6):\n"
            for ghost in ghostHosts {
                out += "  \(ghost.address) on \(ghost.interface): \(ghost.replies) replies, \(ghost.announcements) announcements, "
                    + "\(ghost.probesIgnored) probes ignored, \(ghost.conflicts) conflicts, \(ghost.otherIgnored) other ignored\n"
            }
        }
        if !loops.isEmpty {
            out += "\ndataplane loops:\n"
            for loop in loops {
                out += "  \(loop.name): \(loop.state)" + (loop.errors > 0 ? ", \(loop.errors) read errors" : "")
                    + (loop.lastError.map { " (last: \($0))" } ?? "") + "\n"
            }
        }
        out += "\ncapture on the uplink: \(capture.frames) frames taken (the kernel passed \(capture.kernelReceived) through the filter)\n"
        out += "  \(capture.delivered) delivered, \(capture.dropped) dropped, \(capture.icmpActedOn) router reports acted on, "
            + "\(capture.fragmentsHeld) fragments held for reassembly, \(capture.fragmentsReassembled) put together into "
            + "\(capture.datagramsReassembled) datagrams; unaccounted \(capture.unaccounted)\n"
        let icmp = peers.map(\.icmpErrorsSent).reduce(0, +)
        let fragmented = peers.map(\.fragmented).reduce(0, +)
        out += "\ninner packets fragmented: \(fragmented); ICMP errors sent: \(icmp) (\(icmpRateLimited) suppressed by the rate limit)\n"
        out += "large TCP packets from the kernel (TSO) segmented: \(tcpPacketsSegmented)\n"
        out += "TCP segments from peers joined for the kernel (GRO): \(tcpSegmentsCoalesced)\n"
        out += "UDP datagrams from peers joined for the kernel (GRO): \(udpDatagramsCoalesced)\n"
        out += "TCP SYNs whose MSS tunnel.clamp-mss lowered: \(tcpMSSClampedSent) sent, \(tcpMSSClampedReceived) received\n"
        out += "frames the uplink's GRO/LRO merged: \(uplinkMergedFrames), holding \(uplinkMergedSegments) segments\n"
        out += "\ndrops by reason:"
        if drops.isEmpty {
            out += " none\n"
        } else {
            out += "\n"
            for (reason, count) in drops.sorted(by: { $0.key < $1.key }) { out += "  \(reason): \(count)\n" }
        }
        return out
    }

    /// Rows padded into columns, two spaces apart.
    static func columns(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            zip(row, widths).map { $0.padding(to: $1) }.joined(separator: "  ").trimmingTrailingSpaces + "\n"
        }.joined()
    }

    static func traffic(_ traffic: Traffic) -> String { "\(traffic.packets) pkts / \(iec(traffic.bytes))" }

    /// Bytes in IEC units, three significant digits: 512 B, 1.46 KiB, 34.2 MiB, 1.02 GiB.
    public static func iec(_ bytes: UInt64) -> String {
        guard bytes >= 1024 else { return "\(bytes) B" }
        var value = Double(bytes)
        var unit = 0
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let decimals = value >= 100 ? 0 : value >= 10 ? 1 : 2
        let scale = decimals == 0 ? 1 : decimals == 1 ? 10 : 100
        let scaled = Int((value * Double(scale)).rounded())
        var text = String(scaled / scale)
        var fraction = String(scaled % scale)
        fraction = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        if decimals > 0 && !fraction.isEmpty { text += "." + fraction }
        return "\(text) \(units[unit])"
    }

    public static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        return total >= 86_400 ? "\(total / 86_400)d\(total % 86_400 / 3600)h"
            : total >= 3600 ? "\(total / 3600)h\(total % 3600 / 60)m" : total >= 60 ? "\(total / 60)m\(total % 60)s" : "\(total)s"
    }
}

extension String {
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    var trimmingTrailingSpaces: String {
        var text = Substring(self)
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
