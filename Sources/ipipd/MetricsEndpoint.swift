import IPIPCore
import IPIPDataplane
import Logging
import Prometheus

/// `GET /metrics` in the Prometheus text format (swift-prometheus), on the listener the gateway opened
/// for `metrics.listen`, served by its own thread. The dataplane's own counters are the source of truth:
/// each scrape renders them into a registry of its own, so what is exported is exactly what the
/// counters hold — a peer removed by a reload disappears, one added back starts again from zero (a
/// counter reset, which Prometheus's rate() expects) — and there is no state to get out of step.
final class MetricsEndpoint: @unchecked Sendable {
    private let logger: Logger
    private var thread: DedicatedThread?
    private let stopSignal = StopSignal()

    init(logger: Logger) {
        self.logger = logger
    }

    func start(serving gateway: Gateway, on server: StreamServer) throws {
        thread = try DedicatedThread(name: "ipipd-metrics") { [self] in
            PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: "ipipd-metrics")
            server.serve(until: stopSignal, isComplete: Self.isCompleteRequest) { request in
                self.answer(request, gateway: gateway)
            }
        }
    }

    func stop() {
        stopSignal.stop()
        thread?.join()
    }

    /// The request's headers have ended.
    static func isCompleteRequest(_ bytes: [UInt8]) -> Bool {
        let end: [UInt8] = Array("\r\n\r\n".utf8), bareEnd: [UInt8] = Array("\n\n".utf8)
        return bytes.count >= 2 && (bytes.suffix(4).elementsEqual(end) || bytes.suffix(2).elementsEqual(bareEnd))
    }

    private func answer(_ request: [UInt8], gateway: Gateway) -> [UInt8]? {
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        guard !line.isEmpty else { return nil }
        if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
            let body = Self.metrics(gateway.status)
            return Array("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        }
        let body = Array("ipipd serves /metrics only\n".utf8)
        return Array("HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
    }

    /// The gateway's counters in the Prometheus text format.
    static func metrics(_ status: GatewayStatus) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: UInt64) {
            // The whole name (unit suffix included) is the metric name: an empty unit adds nothing.
            let counter = registry.makeCounter(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels)
            if value > 0 { counter.increment(by: Int64(clamping: value)) }
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            registry.makeGauge(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels).set(value)
        }
        gauge("ipipd_start_time_seconds", "When the daemon started, seconds since the Unix epoch.", [], status.startedAt)
        gauge("ipipd_active", "1 while the gateway carries traffic, 0 while it is an HA pair's standby.", [],
              status.role.role == .active ? 1 : 0)
        counter("ipipd_role_changes_total", "Times the HA role changed (standby <-> active) since the start.", [], status.role.changes)
        for peer in status.peers {
            let labels = [("peer", peer.name)]
            counter("ipipd_peer_packets_total", "Inner packets carried, by peer and direction.", labels + [("direction", "sent")], peer.encapsulated.packets)
            counter("ipipd_peer_packets_total", "Inner packets carried, by peer and direction.", labels + [("direction", "received")], peer.decapsulated.packets)
            counter("ipipd_peer_bytes_total", "Inner bytes carried, by peer and direction.", labels + [("direction", "sent")], peer.encapsulated.bytes)
            counter("ipipd_peer_bytes_total", "Inner bytes carried, by peer and direction.", labels + [("direction", "received")], peer.decapsulated.bytes)
            counter("ipipd_peer_ipv6_packets_total", "The IPv6 (protocol 41) share of ipipd_peer_packets_total.", labels + [("direction", "sent")], peer.encapsulatedIPv6.packets)
            counter("ipipd_peer_ipv6_packets_total", "The IPv6 (protocol 41) share of ipipd_peer_packets_total.", labels + [("direction", "received")], peer.decapsulatedIPv6.packets)
            counter("ipipd_peer_ipv6_bytes_total", "The IPv6 (protocol 41) share of ipipd_peer_bytes_total.", labels + [("direction", "sent")], peer.encapsulatedIPv6.bytes)
            counter("ipipd_peer_ipv6_bytes_total", "The IPv6 (protocol 41) share of ipipd_peer_bytes_total.", labels + [("direction", "received")], peer.decapsulatedIPv6.bytes)
            counter("ipipd_peer_fragmented_total", "Inner packets fragmented to fit the path to the peer.", labels, peer.fragmented)
            counter("ipipd_peer_icmp_errors_sent_total", "ICMP errors sent to senders of the peer's traffic.", labels, peer.icmpErrorsSent)
            for (reason, count) in peer.drops {
                counter("ipipd_peer_drops_total", "Packets dropped, by peer and reason.", labels + [("reason", reason)], count)
            }
            gauge("ipipd_peer_path_mtu_bytes", "Largest inner packet that reaches the peer unfragmented.", labels, Double(peer.pathMTU))
            gauge("ipipd_peer_unreachable", "1 while a router reports the peer unreachable (30 s window).", labels, peer.errorWindow ? 1 : 0)
        }
        for (reason, count) in status.drops {
            counter("ipipd_drops_total", "Packets dropped, by reason (all peers and none).", [("reason", reason)], count)
        }
        counter("ipipd_icmp_rate_limited_total", "ICMP errors not sent because of the rate limit.", [], status.icmpRateLimited)
        counter("ipipd_tcp_segmentation_total", "Large TCP packets from the TUN device (TSO) that ipipd cut into segments.", [],
                status.tcpPacketsSegmented)
        counter("ipipd_tcp_coalesced_segments_total", "TCP segments from peers written to the TUN device joined into super-packets.", [],
                status.tcpSegmentsCoalesced)
        counter("ipipd_uplink_merged_frames_total", "Frames the uplink's GRO or LRO had merged before the capture took them.", [],
                status.uplinkMergedFrames)
        counter("ipipd_uplink_merged_segments_total", "Segments (as their senders sent them) in the frames the uplink merged.", [],
                status.uplinkMergedSegments)
        for ghost in status.ghostHosts {
            let labels = [("ghost", ghost.address), ("interface", ghost.interface)]
            counter("ipipd_ghost_arp_replies_total", "ARP replies (NDP advertisements for an IPv6 ghost) sent for the ghost host.", labels, ghost.replies)
            counter("ipipd_ghost_arp_announcements_total", "Gratuitous ARP (unsolicited NDP advertisement) announcements sent.", labels, ghost.announcements)
            counter("ipipd_ghost_arp_probes_ignored_total", "RFC 5227 probes (IPv6 DAD solicitations) for the ghost host not answered.", labels, ghost.probesIgnored)
            counter("ipipd_ghost_arp_conflicts_total", "ARP (or NDP) packets from other machines claiming the ghost address.", labels, ghost.conflicts)
        }
        return registry.emitToBuffer()
    }
}
