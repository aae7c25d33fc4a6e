import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running gateway's uptime, peers and counters.",
        discussion: """
        Asks the daemon running the config's tunnel over its control socket \
        (<runtime-dir>/<tunnel>.sock, readable by root only) and prints a table per peer: endpoint, \
        prefixes, packets and bytes each way, and drops by reason; with --json, the same as a JSON \
        document for scripts. Exit status 1 when no daemon answers.
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    @Flag(help: "Print the status as JSON.")
    var json = false

    func run() throws {
        let (path, tunnel) = try controlSocketPath(configPath: options.path, runtimeDirectory: runtime.directory)
        let reply: [UInt8]
        do {
            reply = try ControlSocket.request(path: path)
        } catch {
            printError("ipipd status: no daemon answers for tunnel \(tunnel): \(error)")
            throw ExitCode.failure
        }
        if json {
            print(String(decoding: reply, as: UTF8.self))
            return
        }
        let status = try JSONDecoder().decode(GatewayStatus.self, from: Data(reply))
        print(StatusPrinter.table(status))
    }
}

enum StatusPrinter {
    static func table(_ status: GatewayStatus) -> String {
        var out = "ipipd \(status.version), pid \(status.pid), up \(duration(status.uptimeSeconds))\n"
        out += "config \(status.configFile) (sha256 \(status.configSHA256))\n"
        out += "tunnel \(status.tunnel) (mtu \(status.tunnelMTU)), local address \(status.localAddress)\n"
        if status.role.highAvailability {
            out += "role: \(status.role.role) (HA pair: follows \(status.localAddress)), for \(duration(status.role.seconds)), "
                + "\(status.role.changes) change(s) since the start\n"
        }
        out += "\n"
        let header = ["peer", "endpoint", "routes", "path mtu", "sent pkts", "sent bytes", "recv pkts", "recv bytes", "drops"]
        var rows = [header]
        for peer in status.peers {
            let flags = (peer.looping ? " LOOP" : "") + (peer.errorWindow ? " UNREACHABLE" : "")
            rows.append([peer.name + flags, peer.endpoint, peer.routes.joined(separator: ","), "\(peer.pathMTU)",
                         "\(peer.encapsulated.packets)", "\(peer.encapsulated.bytes)",
                         "\(peer.decapsulated.packets)", "\(peer.decapsulated.bytes)",
                         peer.drops.values.reduce(0, +).description])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            out += zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
        }
        for peer in status.peers where peer.encapsulatedIPv6.packets + peer.decapsulatedIPv6.packets > 0 {
            out += "  \(peer.name), IPv6 share: sent \(peer.encapsulatedIPv6.packets) pkts / \(peer.encapsulatedIPv6.bytes) bytes, "
                + "received \(peer.decapsulatedIPv6.packets) pkts / \(peer.decapsulatedIPv6.bytes) bytes\n"
        }
        if !status.ghostHosts.isEmpty {
            out += "\nghost hosts (proxy ARP; proxy NDP for IPv6):\n"
            for ghost in status.ghostHosts {
                out += "  \(ghost.address) on \(ghost.interface): \(ghost.replies) replies, \(ghost.announcements) announcements, "
                    + "\(ghost.probesIgnored) probes ignored, \(ghost.conflicts) conflicts, \(ghost.otherIgnored) other ignored\n"
            }
        }
        let icmp = status.peers.map(\.icmpErrorsSent).reduce(0, +)
        let fragmented = status.peers.map(\.fragmented).reduce(0, +)
        out += "\ninner packets fragmented: \(fragmented); ICMP errors sent: \(icmp) (\(status.icmpRateLimited) suppressed by the rate limit)\n"
        out += "large TCP packets from the kernel (TSO) segmented: \(status.tcpPacketsSegmented)\n"
        out += "TCP segments from peers joined for the kernel (GRO): \(status.tcpSegmentsCoalesced)\n"
        out += "frames the uplink's GRO/LRO merged: \(status.uplinkMergedFrames), holding \(status.uplinkMergedSegments) segments\n"
        out += "\ndrops by reason:"
        if status.drops.isEmpty {
            out += " none\n"
        } else {
            out += "\n"
            for (reason, count) in status.drops.sorted(by: { $0.key < $1.key }) { out += "  \(reason): \(count)\n" }
        }
        return out
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        return total >= 3600 ? "\(total / 3600)h\(total % 3600 / 60)m" : total >= 60 ? "\(total / 60)m\(total % 60)s" : "\(total)s"
    }
}
