/// A running gateway's state as `ipipd status` shows it (JSON with --json).
public struct GatewayStatus: Codable, Sendable, Equatable {
    public struct Traffic: Codable, Sendable, Equatable {
        public var packets: UInt64
        public var bytes: UInt64
        public init(packets: UInt64, bytes: UInt64) {
            self.packets = packets
            self.bytes = bytes
        }
    }

    public struct Peer: Codable, Sendable, Equatable {
        public var name: String
        public var endpoint: String
        /// The outer header, in iproute2's words: `ipip/sit (protocol 4/41)`, `… encap fou encap-dport 5555 …`.
        public var encapsulation: String
        /// The bytes the outer header takes of each packet's room.
        public var overhead: Int
        /// `ipip` (protocol 4/41 right behind the IP header), `fou` or `gue`.
        public var encapsulationKind: String
        public var routes: [String]
        public var encapsulated: Traffic
        public var decapsulated: Traffic
        /// The IPv6 (protocol 41) share of `encapsulated` and `decapsulated`.
        public var encapsulatedIPv6: Traffic
        public var decapsulatedIPv6: Traffic
        public var fragmented: UInt64
        /// Fragments of the peer's outer packets put together again.
        public var fragmentsReassembled: UInt64
        public var icmpErrorsSent: UInt64
        /// The inner MTU towards the peer: the tunnel MTU (less where its outer header leaves less of the
        /// uplink's), or lower when a router reported less.
        public var pathMTU: Int
        /// A router reported the peer unreachable within the last 30 s.
        public var errorWindow: Bool
        /// The route to the endpoint currently leads into the tunnel: nothing is sent.
        public var looping: Bool
        public var drops: [String: UInt64]
        /// When a packet from the peer was last delivered, seconds since the Unix epoch; nil: never.
        public var lastReceivedAt: Double?
    }

    /// What became of every frame the capture engine took (see `CaptureCounters`).
    public struct Capture: Codable, Sendable, Equatable {
        /// Frames the kernel let through the capture's filter (once a second).
        public var kernelReceived: UInt64
        public var frames: UInt64
        public var delivered: UInt64
        public var dropped: UInt64
        public var icmpActedOn: UInt64
        public var fragmentsHeld: UInt64
        public var fragmentsReassembled: UInt64
        public var datagramsReassembled: UInt64
        /// Frames none of the above accounts for: 0 unless a frame was lost track of (or one is between
        /// the capture and the send as the status is read).
        public var unaccounted: Int64

        init(_ counters: CaptureCounters) {
            kernelReceived = counters.kernelReceived.value
            frames = counters.frames.value
            delivered = counters.delivered.value
            dropped = counters.dropped.value
            icmpActedOn = counters.icmpActedOn.value
            fragmentsHeld = counters.fragmentsHeld.value
            fragmentsReassembled = counters.fragmentsReassembled.value
            datagramsReassembled = counters.datagramsReassembled.value
            let outcomes = Int64(dropped) + Int64(delivered) + Int64(icmpActedOn) + Int64(fragmentsHeld)
                + Int64(fragmentsReassembled) - Int64(datagramsReassembled)
            unaccounted = Int64(frames) - outcomes
        }
    }

    /// One dataplane loop (a thread): whether it is running, and its read errors.
    public struct Loop: Codable, Sendable, Equatable {
        public var name: String
        public var state: String
        public var errors: UInt64
        public var lastError: String?
    }

    /// Whether the gateway carries traffic; for an HA pair's box, also how often that changed.
    public struct Role: Codable, Sendable, Equatable {
        public var role: GatewayRole
        /// `uplink.standby-when-absent`: the role follows the uplink address (keepalived).
        public var highAvailability: Bool
        public var changes: UInt64
        /// How long the gateway has had its role (since the start when it never changed).
        public var seconds: Double
        /// Claims of the tunnel endpoint or a ghost host by another machine while this box was active
        /// (a split brain: both boxes of the pair active), and the last one.
        public var splitBrainClaims: UInt64 = 0
        public var lastSplitBrainClaim: SplitBrainClaim?
        public init(role: GatewayRole, highAvailability: Bool, changes: UInt64, seconds: Double) {
            self.role = role
            self.highAvailability = highAvailability
            self.changes = changes
            self.seconds = seconds
        }
    }

    public struct SplitBrainClaim: Codable, Sendable, Equatable {
        public var mac: String
        public var address: String
        /// Seconds since the Unix epoch.
        public var at: Double
    }

    public struct GhostHost: Codable, Sendable, Equatable {
        public var address: String
        public var interface: String
        public var replies: UInt64
        public var announcements: UInt64
        public var probesIgnored: UInt64
        public var conflicts: UInt64
        public var otherIgnored: UInt64
    }

    public var version: String
    public var pid: Int32
    public var configFile: String
    /// SHA-256 of the config file in effect (what `sha256sum FILE` prints for that version).
    public var configSHA256: String
    public var startedAt: Double        // seconds since the Unix epoch
    public var uptimeSeconds: Double
    public var tunnel: String
    /// Whether the TUN device still exists, as the daemon sees it in its own network namespace (a
    /// deleted device does not make the loop's reads fail at once).
    public var tunnelPresent: Bool
    public var tunnelMTU: Int
    public var localAddress: String
    public var role: Role
    public var peers: [Peer]
    public var ghostHosts: [GhostHost]
    public var loops: [Loop]
    public var capture: Capture
    /// Every drop by reason (peer-attributed ones included).
    public var drops: [String: UInt64]

    public var icmpRateLimited: UInt64
    /// Large TCP packets from the TUN device (TSO) that ipipd segmented.
    public var tcpPacketsSegmented: UInt64
    /// TCP segments from peers written to the TUN device joined into super-packets (GRO).
    public var tcpSegmentsCoalesced: UInt64
    /// UDP datagrams from peers written to the TUN device joined into super-packets (GRO).
    public var udpDatagramsCoalesced: UInt64
    /// TCP SYNs and SYN-ACKs whose MSS `tunnel.clamp-mss` lowered, sent to peers and received from them.
    public var tcpMSSClampedSent: UInt64
    public var tcpMSSClampedReceived: UInt64
    /// Frames the uplink's GRO or LRO had merged before the capture took them, and the segments in them.
    public var uplinkMergedFrames: UInt64
    public var uplinkMergedSegments: UInt64

    public init(version: String, pid: Int32, configFile: String, configSHA256: String, startedAt: Double, uptimeSeconds: Double,
                config: GatewayConfig, tunnelMTU: Int, uplinkMTU: Int? = nil, counters: TunnelCounters, paths: [PeerPathState],
                loops: [LoopHealth] = [], role: Role? = nil, tunnelPresent: Bool = true, now: Double) {
        self.version = version
        self.pid = pid
        self.configFile = configFile
        self.configSHA256 = configSHA256
        self.startedAt = startedAt
        self.uptimeSeconds = uptimeSeconds
        tunnel = config.tunnel.name
        self.tunnelPresent = tunnelPresent
        self.tunnelMTU = tunnelMTU
        localAddress = "\(config.uplink.address)"
        var role = role ?? Role(role: .active, highAvailability: config.uplink.standbyWhenAbsent, changes: 0, seconds: uptimeSeconds)
        role.splitBrainClaims = counters.splitBrain.claims.value
        role.lastSplitBrainClaim = counters.splitBrain.last.map { SplitBrainClaim(mac: "\($0.mac)", address: $0.address, at: $0.at) }
        self.role = role
        peers = zip(zip(config.peers, config.encapsulations), zip(counters.peers, paths)).map { configured, state in
            let (peer, encapsulation) = configured
            let (counter, path) = state
            let peerMTU = Encapsulator.innerMTU(encapsulation, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU)
            return Peer(name: peer.name, endpoint: "\(peer.remote)", encapsulation: encapsulation.summary, overhead: encapsulation.overhead,
                        encapsulationKind: encapsulation.udp?.kind.rawValue ?? "ipip",
                        routes: peer.routes.map(\.description),
                        encapsulated: Traffic(packets: counter.encapsulatedPackets.value, bytes: counter.encapsulatedBytes.value),
                        decapsulated: Traffic(packets: counter.decapsulatedPackets.value, bytes: counter.decapsulatedBytes.value),
                        encapsulatedIPv6: Traffic(packets: counter.encapsulatedIPv6Packets.value, bytes: counter.encapsulatedIPv6Bytes.value),
                        decapsulatedIPv6: Traffic(packets: counter.decapsulatedIPv6Packets.value, bytes: counter.decapsulatedIPv6Bytes.value),
                        fragmented: counter.fragmented.value, fragmentsReassembled: counter.fragmentsReassembled.value,
                        icmpErrorsSent: counter.icmpErrorsSent.value,
                        pathMTU: min(peerMTU, path.currentMTU(now: now) ?? peerMTU),
                        errorWindow: path.isInErrorWindow(now: now), looping: path.isLooping,
                        drops: counter.drops.snapshot,
                        lastReceivedAt: counter.lastReceived.value == 0 ? nil : Double(counter.lastReceived.value) / 1000)
        }
        icmpRateLimited = counters.icmpRateLimited.value
        tcpPacketsSegmented = counters.tcpPacketsSegmented.value
        tcpSegmentsCoalesced = counters.tcpSegmentsCoalesced.value
        udpDatagramsCoalesced = counters.udpDatagramsCoalesced.value
        tcpMSSClampedSent = counters.tcpMSSClampedSent.value
        tcpMSSClampedReceived = counters.tcpMSSClampedReceived.value
        uplinkMergedFrames = counters.uplinkMergedFrames.value
        uplinkMergedSegments = counters.uplinkMergedSegments.value
        ghostHosts = counters.ghosts.map {
            GhostHost(address: "\($0.address)", interface: $0.interface, replies: $0.replies.value,
                      announcements: $0.announcements.value, probesIgnored: $0.probesIgnored.value,
                      conflicts: $0.conflicts.value, otherIgnored: $0.otherIgnored.value)
        }
        drops = counters.drops.snapshot
        capture = Capture(counters.capture)
        self.loops = loops.map { Loop(name: $0.name, state: $0.current.label, errors: $0.errorCount, lastError: $0.lastError) }
    }
}
