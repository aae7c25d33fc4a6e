/// The Prometheus text exposition format (0.0.4), written in one pass into one buffer: each family's
/// HELP and TYPE, then its samples, families and samples always in the same order (the config's order of
/// peers and ghost hosts, `DropReason`'s of reasons). Time and memory are linear in the series: a hub of
/// 10,000 peers is a few hundred thousand lines, rendered without a registry, a dictionary or a sort.
public struct PrometheusText {
    public enum Kind: String { case counter, gauge }

    public private(set) var bytes: [UInt8] = []

    public init(reservingCapacity capacity: Int = 16 << 10) { bytes.reserveCapacity(capacity) }

    /// Starts a family: what follows, until the next, are its samples.
    public mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        append("# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(kind.rawValue)\n")
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        appendName(name, labels)
        append(" \(value)\n")
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], gauge value: Double) {
        appendName(name, labels)
        append(" \(value.isNaN ? "NaN" : value.isInfinite ? (value > 0 ? "+Inf" : "-Inf") : "\(value)")\n")
    }

    private mutating func appendName(_ name: String, _ labels: [(String, String)]) {
        append(name)
        guard !labels.isEmpty else { return }
        append("{")
        for (index, (label, value)) in labels.enumerated() {
            if index > 0 { append(",") }
            append("\(label)=\"\(Self.escapedLabel(value))\"")
        }
        append("}")
    }

    private mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// Label values escape `\`, `"` and newlines; help texts `\` and newlines.
    static func escapedLabel(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        return value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    static func escapedHelp(_ help: String) -> String {
        guard help.contains(where: { $0 == "\\" || $0 == "\n" }) else { return help }
        return help.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}

/// What `process_*` metrics say of the daemon's process (Prometheus's client conventions), read from
/// /proc by the dataplane.
public struct ProcessFacts: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: UInt64
    public var virtualBytes: UInt64
    public var startTime: Double
    public var openDescriptors: Int
    public var maximumDescriptors: Int
    public init(cpuSeconds: Double, residentBytes: UInt64, virtualBytes: UInt64, startTime: Double, openDescriptors: Int,
                maximumDescriptors: Int) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.virtualBytes = virtualBytes
        self.startTime = startTime
        self.openDescriptors = openDescriptors
        self.maximumDescriptors = maximumDescriptors
    }
}

extension DropReason {
    /// Reasons a drop is counted against a peer for (its traffic, or a report about it): each peer has a
    /// series for each from the start, at 0, so that rate() has a series to work on before the first drop.
    public static let attributableToAPeer: [DropReason] = [
        .malformedOuter, .malformedInner, .fragmentOverlap, .fragmentMemory, .fragmentLimit, .fragmentDuplicate, .ttlExpired,
        .ecnNotECT, .tooBig, .sendFailed, .loop, .icmpUnverified, .icmpOverBudget, .sourceNotAllowed, .martianSource, .martianDestination,
        .sourceRoute, .unsupportedOffload, .encapsulationMismatch, .unsupportedGUE, .outerOptions, .encapsulationLimit,
    ]
}

extension GatewayStatus {
    /// The neighbour proxy's counters per ghost host. Until issue 24 they were named `ipipd_ghost_arp_…`,
    /// though they count NDP for IPv6 ghosts too: the former names stay, as aliases, for one release.
    static let ghostFamilies: [(name: String, formerName: String, help: String, value: @Sendable (GhostHost) -> UInt64)] = [
        ("ipipd_ghost_neighbour_replies_total", "ipipd_ghost_arp_replies_total",
         "ARP replies (Neighbor Advertisements for an IPv6 ghost) sent for the ghost host.", { $0.replies }),
        ("ipipd_ghost_neighbour_announcements_total", "ipipd_ghost_arp_announcements_total",
         "Gratuitous ARP (unsolicited Neighbor Advertisement) announcements sent.", { $0.announcements }),
        ("ipipd_ghost_neighbour_probes_ignored_total", "ipipd_ghost_arp_probes_ignored_total",
         "RFC 5227 probes (IPv6 DAD solicitations) for the ghost host not answered.", { $0.probesIgnored }),
        ("ipipd_ghost_neighbour_conflicts_total", "ipipd_ghost_arp_conflicts_total",
         "ARP (or NDP) packets from other machines claiming the ghost address.", { $0.conflicts }),
    ]

    /// The counters in the Prometheus text format, every series present from the start (peers' at 0).
    public func prometheus(process: ProcessFacts?) -> [UInt8] {
        var out = PrometheusText(reservingCapacity: 4096 + peers.count * 4096)
        out.family("ipipd_build_info", .gauge, "Always 1; the labels say which ipipd this is.")
        out.sample("ipipd_build_info", [("version", version)], gauge: 1)
        out.family("ipipd_start_time_seconds", .gauge, "When the daemon started, seconds since the Unix epoch.")
        out.sample("ipipd_start_time_seconds", [], gauge: startedAt)
        out.family("ipipd_active", .gauge, "1 while the gateway carries traffic, 0 while it is an HA pair's standby.")
        out.sample("ipipd_active", [], gauge: role.role == .active ? 1 : 0)
        out.family("ipipd_role_changes_total", .counter, "Times the HA role changed (standby <-> active) since the start.")
        out.sample("ipipd_role_changes_total", [], role.changes)
        out.family("ipipd_split_brain_claims_total", .counter,
                   "Claims of the tunnel endpoint or a ghost host by another machine while this HA box was active (both boxes active: a split brain).")
        out.sample("ipipd_split_brain_claims_total", [], role.splitBrainClaims)

        func perPeer(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ samples: (Peer, [(String, String)]) -> Void) {
            out.family(name, kind, help)
            for peer in peers { samples(peer, [("peer", peer.name)]) }
        }
        out.family("ipipd_tcp_mss_clamped_total", .counter, "TCP SYNs and SYN-ACKs whose MSS option tunnel.clamp-mss lowered, by direction.")
        out.sample("ipipd_tcp_mss_clamped_total", [("direction", "sent")], tcpMSSClampedSent)
        out.sample("ipipd_tcp_mss_clamped_total", [("direction", "received")], tcpMSSClampedReceived)
        perPeer("ipipd_peer_info", .gauge, "Always 1; the labels say the peer's endpoint and outer header (encap: ipip, fou or gue; "
                + "underlay: ipv4 or ipv6) and how many bytes of each packet it takes.") { peer, labels in
            out.sample("ipipd_peer_info", labels + [("endpoint", peer.endpoint), ("encap", peer.encapsulationKind),
                                                     ("underlay", peer.endpoint.contains(":") ? "ipv6" : "ipv4"),
                                                     ("overhead", "\(peer.overhead)")], gauge: 1)
        }
        perPeer("ipipd_peer_packets_total", .counter, "Inner packets carried, by peer and direction.") { peer, labels in
            out.sample("ipipd_peer_packets_total", labels + [("direction", "sent")], peer.encapsulated.packets)
            out.sample("ipipd_peer_packets_total", labels + [("direction", "received")], peer.decapsulated.packets)
        }
        perPeer("ipipd_peer_bytes_total", .counter, "Inner bytes carried, by peer and direction.") { peer, labels in
            out.sample("ipipd_peer_bytes_total", labels + [("direction", "sent")], peer.encapsulated.bytes)
            out.sample("ipipd_peer_bytes_total", labels + [("direction", "received")], peer.decapsulated.bytes)
        }
        perPeer("ipipd_peer_ipv6_packets_total", .counter, "The IPv6 (protocol 41) share of ipipd_peer_packets_total.") { peer, labels in
            out.sample("ipipd_peer_ipv6_packets_total", labels + [("direction", "sent")], peer.encapsulatedIPv6.packets)
            out.sample("ipipd_peer_ipv6_packets_total", labels + [("direction", "received")], peer.decapsulatedIPv6.packets)
        }
        perPeer("ipipd_peer_ipv6_bytes_total", .counter, "The IPv6 (protocol 41) share of ipipd_peer_bytes_total.") { peer, labels in
            out.sample("ipipd_peer_ipv6_bytes_total", labels + [("direction", "sent")], peer.encapsulatedIPv6.bytes)
            out.sample("ipipd_peer_ipv6_bytes_total", labels + [("direction", "received")], peer.decapsulatedIPv6.bytes)
        }
        perPeer("ipipd_peer_fragmented_total", .counter, "Inner packets fragmented to fit the path to the peer.") { peer, labels in
            out.sample("ipipd_peer_fragmented_total", labels, peer.fragmented)
        }
        perPeer("ipipd_peer_icmp_errors_sent_total", .counter, "ICMP errors sent to senders of the peer's traffic.") { peer, labels in
            out.sample("ipipd_peer_icmp_errors_sent_total", labels, peer.icmpErrorsSent)
        }
        perPeer("ipipd_peer_drops_total", .counter, "Packets dropped, by peer and reason.") { peer, labels in
            for reason in DropReason.attributableToAPeer {
                out.sample("ipipd_peer_drops_total", labels + [("reason", reason.rawValue)], peer.drops[reason.rawValue] ?? 0)
            }
        }
        perPeer("ipipd_peer_path_mtu_bytes", .gauge, "Largest inner packet that reaches the peer unfragmented.") { peer, labels in
            out.sample("ipipd_peer_path_mtu_bytes", labels, gauge: Double(peer.pathMTU))
        }
        perPeer("ipipd_peer_unreachable", .gauge, "1 while a router reports the peer unreachable (30 s window).") { peer, labels in
            out.sample("ipipd_peer_unreachable", labels, gauge: peer.errorWindow ? 1 : 0)
        }
        perPeer("ipipd_peer_last_received_timestamp_seconds", .gauge,
                "When a packet from the peer was last delivered, seconds since the Unix epoch (0: never).") { peer, labels in
            out.sample("ipipd_peer_last_received_timestamp_seconds", labels, gauge: peer.lastReceivedAt ?? 0)
        }

        out.family("ipipd_drops_total", .counter, "Packets dropped, by reason (all peers and none).")
        for reason in DropReason.allCases { out.sample("ipipd_drops_total", [("reason", reason.rawValue)], drops[reason.rawValue] ?? 0) }
        let globals: [(String, String, UInt64)] = [
            ("ipipd_icmp_rate_limited_total", "ICMP errors not sent because of the rate limit.", icmpRateLimited),
            ("ipipd_tcp_segmentation_total", "Large TCP packets from the TUN device (TSO) that ipipd cut into segments.", tcpPacketsSegmented),
            ("ipipd_tcp_coalesced_segments_total", "TCP segments from peers written to the TUN device in super-packets ipipd joined.", tcpSegmentsCoalesced),
            ("ipipd_udp_coalesced_datagrams_total", "UDP datagrams from peers written to the TUN device in super-packets ipipd joined.", udpDatagramsCoalesced),
            ("ipipd_uplink_merged_frames_total", "Frames the uplink's GRO or LRO had merged before the capture took them.", uplinkMergedFrames),
            ("ipipd_uplink_merged_segments_total", "Segments (as their senders sent them) in the frames the uplink merged.", uplinkMergedSegments),
            ("ipipd_capture_frames_total", "Frames the capture engine took from the uplink.", capture.frames),
            ("ipipd_capture_delivered_total", "Captured frames whose inner packet was delivered.", capture.delivered),
            ("ipipd_capture_dropped_total", "Captured frames dropped (by reason: ipipd_drops_total).", capture.dropped),
        ]
        for (name, help, value) in globals {
            out.family(name, .counter, help)
            out.sample(name, [], value)
        }
        out.family("ipipd_capture_unaccounted", .gauge, "Captured frames with no outcome: 0 unless one was lost track of.")
        out.sample("ipipd_capture_unaccounted", [], gauge: Double(capture.unaccounted))

        for family in Self.ghostFamilies {
            for (name, help) in [(family.name, family.help), (family.formerName, "Former name of \(family.name), kept for one release: \(family.help)")] {
                out.family(name, .counter, help)
                for ghost in ghostHosts { out.sample(name, [("ghost", ghost.address), ("interface", ghost.interface)], family.value(ghost)) }
            }
        }

        if let process {
            out.family("process_cpu_seconds_total", .counter, "Total user and system CPU time spent in seconds.")
            out.sample("process_cpu_seconds_total", [], gauge: process.cpuSeconds)
            out.family("process_resident_memory_bytes", .gauge, "Resident memory size in bytes.")
            out.sample("process_resident_memory_bytes", [], gauge: Double(process.residentBytes))
            out.family("process_virtual_memory_bytes", .gauge, "Virtual memory size in bytes.")
            out.sample("process_virtual_memory_bytes", [], gauge: Double(process.virtualBytes))
            out.family("process_start_time_seconds", .gauge, "Start time of the process since the Unix epoch in seconds.")
            out.sample("process_start_time_seconds", [], gauge: process.startTime)
            out.family("process_open_fds", .gauge, "Number of open file descriptors.")
            out.sample("process_open_fds", [], gauge: Double(process.openDescriptors))
            out.family("process_max_fds", .gauge, "Maximum number of open file descriptors.")
            out.sample("process_max_fds", [], gauge: Double(process.maximumDescriptors))
        }
        return out.bytes
    }
}
