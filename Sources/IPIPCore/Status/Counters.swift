import Synchronization

/// Why a packet was not carried. Counted per reason (and per peer when the peer is known); the raw
/// value is the label used in status output and metrics.
public enum DropReason: String, CaseIterable, Sendable, Codable {
    case notIP = "not-ip"                     // from the TUN: neither IPv4 nor IPv6
    case noRoute = "no-route"                 // from the TUN: no peer prefix covers the destination
    case malformedOuter = "malformed-outer"   // captured: outer header invalid
    case malformedInner = "malformed-inner"   // captured or from the TUN: inner header invalid
    case unknownPeer = "unknown-peer"         // captured: outer source is not a configured peer
    case notForUs = "not-local"               // captured: outer destination is not the local address
    case fragmentOverlap = "fragment-overlap" // captured: outer fragments that overlap (dropped whole)
    case fragmentTimeout = "fragment-timeout" // captured: outer fragments never completed in time
    case fragmentMemory = "fragment-memory"   // captured: reassembly memory cap reached
    case ttlExpired = "ttl-expired"           // decapsulated, to be forwarded with TTL <= 1
    case ecnNotECT = "ecn-ce-on-not-ect"      // RFC 6040: outer CE over a Not-ECT inner packet
    case tooBig = "too-big"                   // does not fit the path to the peer
    case truncatedCapture = "truncated-capture" // caplen < len: snaplen too small
    case captureDrop = "capture-drop"         // dropped by the kernel before libpcap saw it (pcap_stats)
    case sendFailed = "send-failed"           // the kernel refused the send
    case loop = "loop"                        // the route to the peer's endpoint leads into the tunnel
    case fragmentLimit = "fragment-limit"     // captured: more fragments for one datagram than any sender needs
    case fragmentDuplicate = "fragment-duplicate" // captured: an exact copy of a fragment already held
    case icmpIgnored = "icmp-ignored"         // captured: ICMP not about one of our outer packets, or of a kind ignored
    case icmpUnverified = "icmp-unverified"   // captured: ICMP about a peer quoting an outer packet we did not send lately
    case sourceNotAllowed = "source-not-allowed" // captured: inner source outside the peer's accept-sources
    case martianSource = "martian-source"     // captured: inner source 0/8, 127/8, multicast, class E, broadcast or ours
    case martianDestination = "martian-destination" // captured: inner destination 0/8, 127/8, multicast, class E or a broadcast
    case sourceRoute = "source-route"         // captured: inner packet with a loose or strict source route
    case standby = "standby"                  // captured or from the TUN while this box is an HA pair's standby
    case linkScope = "link-scope"             // from the TUN: IPv6 to a multicast or link-local address (the TUN's own MLD and the like)
    case unsupportedOffload = "unsupported-offload" // captured: a frame the uplink's kernel merged or marked in a way that does not fit its packet, or could not describe
    case extensionHeaders = "extension-headers" // captured: inner IPv6 with more extension headers than any sender needs (8, in 512 bytes)
    case icmpOverBudget = "icmp-over-budget"  // captured: ICMP about a peer's outer packets beyond the 10 a second looked at
    case encapsulationMismatch = "encapsulation-mismatch" // captured: from a peer, but plain, FOU or GUE where its `encap` says otherwise, or on a FOU port of the other inner family
    case unsupportedGUE = "unsupported-gue"   // captured: a GUE header of an unknown version, with unknown flags, or a control message
    case outerOptions = "outer-options"       // captured: IPv6 outer extension headers not taken (a routing header in use, an option that must not be skipped, over 8 headers or 512 bytes)
    case encapsulationLimit = "encapsulation-limit" // from the TUN: IPv6 whose Tunnel Encapsulation Limit is 0 (RFC 2473 §4.1.1; answered with a parameter problem)
}

extension DropReason {
    /// Position in `allCases`, without building the array on the per-packet path.
    @inline(__always)
    var ordinal: Int {
        switch self {
        case .notIP: 0
        case .noRoute: 1
        case .malformedOuter: 2
        case .malformedInner: 3
        case .unknownPeer: 4
        case .notForUs: 5
        case .fragmentOverlap: 6
        case .fragmentTimeout: 7
        case .fragmentMemory: 8
        case .ttlExpired: 9
        case .ecnNotECT: 10
        case .tooBig: 11
        case .truncatedCapture: 12
        case .captureDrop: 13
        case .sendFailed: 14
        case .loop: 15
        case .fragmentLimit: 16
        case .fragmentDuplicate: 17
        case .icmpIgnored: 18
        case .icmpUnverified: 19
        case .sourceNotAllowed: 20
        case .martianSource: 21
        case .martianDestination: 22
        case .sourceRoute: 23
        case .standby: 24
        case .linkScope: 25
        case .unsupportedOffload: 26
        case .extensionHeaders: 27
        case .icmpOverBudget: 28
        case .encapsulationMismatch: 29
        case .unsupportedGUE: 30
        case .outerOptions: 31
        case .encapsulationLimit: 32
        }
    }
}

/// One monotonically increasing counter, written by one dataplane thread and read by any.
public final class Counter: Sendable {
    private let storage = Atomic<UInt64>(0)
    public init() {}
    @inline(__always)
    public func add(_ amount: UInt64 = 1) { storage.wrappingAdd(amount, ordering: .relaxed) }
    /// For counters mirrored from elsewhere (e.g. the kernel's pcap_stats).
    public func set(_ value: UInt64) { storage.store(value, ordering: .relaxed) }
    public var value: UInt64 { storage.load(ordering: .relaxed) }
}

/// Drops, one counter per reason.
public final class DropCounters: Sendable {
    private let counters: [Counter] = DropReason.allCases.map { _ in Counter() }
    public init() {}

    @inline(__always)
    public func count(_ reason: DropReason, times: UInt64 = 1) {
        counters[reason.ordinal].add(times)
    }

    public func value(_ reason: DropReason) -> UInt64 {
        counters[reason.ordinal].value
    }

    public func set(_ reason: DropReason, to value: UInt64) {
        counters[reason.ordinal].set(value)
    }

    /// Non-zero counts by reason label.
    public var snapshot: [String: UInt64] {
        var result: [String: UInt64] = [:]
        for (reason, counter) in zip(DropReason.allCases, counters) where counter.value > 0 {
            result[reason.rawValue] = counter.value
        }
        return result
    }
}

/// Traffic of one peer: what was wrapped and sent to it, and unwrapped from it.
public final class PeerCounters: Sendable {
    public let name: String
    public let encapsulatedPackets = Counter()
    public let encapsulatedBytes = Counter()
    public let decapsulatedPackets = Counter()
    public let decapsulatedBytes = Counter()
    /// The IPv6 share of the four above (protocol 41): the rest is IPv4.
    public let encapsulatedIPv6Packets = Counter()
    public let encapsulatedIPv6Bytes = Counter()
    public let decapsulatedIPv6Packets = Counter()
    public let decapsulatedIPv6Bytes = Counter()
    /// Inner packets without DF split to fit the path to this peer.
    public let fragmented = Counter()
    /// Fragments of the peer's outer packets that were put together again (each whole datagram is then
    /// counted as one decapsulated packet).
    public let fragmentsReassembled = Counter()
    /// ICMP errors sent to senders of traffic to or from this peer (fragmentation needed, host
    /// unreachable, time exceeded).
    public let icmpErrorsSent = Counter()
    /// When a packet from this peer was last delivered, in milliseconds since the Unix epoch (0: never):
    /// the peer is alive and its packets pass the checks (WireGuard's "latest handshake", for a tunnel
    /// without handshakes).
    public let lastReceived = Counter()
    public let drops = DropCounters()

    public init(name: String) { self.name = name }
}

/// What the proxy-ARP (or proxy-NDP) responder did for one ghost host.
public final class GhostCounters: Sendable {
    /// The ghost's address as text: IPv4 (proxy ARP) or IPv6 (proxy NDP).
    public let address: String
    public let interface: String
    public let replies = Counter()
    public let announcements = Counter()
    public let probesIgnored = Counter()
    public let conflicts = Counter()
    /// Requests not answered for another reason (gratuitous, rate-limited, yielding).
    public let otherIgnored = Counter()

    public init(address: String, interface: String) {
        self.address = address
        self.interface = interface
    }
}

/// Every frame the capture engine took, and what became of it: each is dropped (for a reason counted in
/// the drops), delivered, acted on (an ICMP report believed), held for reassembly, or folded into a
/// reassembled datagram, which then is delivered or dropped once. So
///
///     frames = dropped + delivered + icmpActedOn + fragmentsHeld + fragmentsReassembled − datagramsReassembled
///
/// — what `GatewayStatus.Capture.unaccounted` checks, for a gateway under attack most of all.
public final class CaptureCounters: Sendable {
    public let frames = Counter()
    public let delivered = Counter()
    public let dropped = Counter()
    public let icmpActedOn = Counter()
    public let fragmentsReassembled = Counter()
    public let datagramsReassembled = Counter()
    /// A gauge: fragments the reassembly holds now.
    public let fragmentsHeld = Counter()
    /// What the kernel says passed the capture's filter (read once a second): `frames`, plus the ones it
    /// dropped for want of room in the capture's buffer (`capture-drop`), plus any still in the buffer.
    public let kernelReceived = Counter()
    public init() {}
}

/// All counters of a running gateway: per peer, per ghost host, and drops that belong to no peer.
/// What `SplitBrainWatch` confirmed: how many claims, and the last (its time since the Unix epoch).
public final class SplitBrainCounters: Sendable {
    public let claims = Counter()
    private let lastClaim = Mutex<SplitBrainWatch.Claim?>(nil)
    public init() {}
    public var last: SplitBrainWatch.Claim? { lastClaim.withLock { $0 } }
    public func note(_ claim: SplitBrainWatch.Claim) {
        claims.add()
        lastClaim.withLock { $0 = claim }
    }
}

public final class TunnelCounters: Sendable {
    public let peers: [PeerCounters]
    public let ghosts: [GhostCounters]
    public let drops: DropCounters
    /// ICMP errors not sent because of the rate limit.
    public let icmpRateLimited: Counter
    /// TCP packets of up to 64 KiB that the kernel handed over whole (TSO) and ipipd cut into segments.
    public let tcpPacketsSegmented: Counter
    /// TCP segments from peers that reached the TUN device joined into super-packets (kernel delivery).
    public let tcpSegmentsCoalesced: Counter
    /// UDP datagrams from peers that reached the TUN device joined into super-packets (kernel delivery).
    public let udpDatagramsCoalesced: Counter
    /// TCP SYNs and SYN-ACKs whose MSS option `tunnel.clamp-mss` lowered: sent to peers, and received from them.
    public let tcpMSSClampedSent: Counter
    public let tcpMSSClampedReceived: Counter
    /// Frames the uplink's GRO or LRO had merged before the capture took them, and the segments (TCP
    /// segments or UDP datagrams, as their sender sent them) they held.
    public let uplinkMergedFrames: Counter
    public let uplinkMergedSegments: Counter
    public let capture: CaptureCounters
    /// Claims of the tunnel endpoint or a ghost by another machine while this HA box was active.
    public let splitBrain: SplitBrainCounters

    public init(peerNames: [String], ghostHosts: [(address: String, interface: String)] = []) {
        peers = peerNames.map(PeerCounters.init(name:))
        ghosts = ghostHosts.map { GhostCounters(address: $0.address, interface: $0.interface) }
        drops = DropCounters()
        icmpRateLimited = Counter()
        tcpPacketsSegmented = Counter()
        tcpSegmentsCoalesced = Counter()
        udpDatagramsCoalesced = Counter()
        tcpMSSClampedSent = Counter()
        tcpMSSClampedReceived = Counter()
        uplinkMergedFrames = Counter()
        uplinkMergedSegments = Counter()
        capture = CaptureCounters()
        splitBrain = SplitBrainCounters()
    }

    /// The counters for a reloaded config: peers and ghost hosts that stay keep their counts (matched by
    /// name, and by address and interface); the global ones carry on.
    public init(continuing previous: TunnelCounters, peerNames: [String], ghostHosts: [(address: String, interface: String)]) {
        let oldPeers = Dictionary(previous.peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        peers = peerNames.map { oldPeers[$0] ?? PeerCounters(name: $0) }
        ghosts = ghostHosts.map { ghost in
            previous.ghosts.first { $0.address == ghost.address && $0.interface == ghost.interface }
                ?? GhostCounters(address: ghost.address, interface: ghost.interface)
        }
        drops = previous.drops
        icmpRateLimited = previous.icmpRateLimited
        tcpPacketsSegmented = previous.tcpPacketsSegmented
        tcpSegmentsCoalesced = previous.tcpSegmentsCoalesced
        udpDatagramsCoalesced = previous.udpDatagramsCoalesced
        tcpMSSClampedSent = previous.tcpMSSClampedSent
        tcpMSSClampedReceived = previous.tcpMSSClampedReceived
        uplinkMergedFrames = previous.uplinkMergedFrames
        uplinkMergedSegments = previous.uplinkMergedSegments
        capture = previous.capture
        splitBrain = previous.splitBrain
    }

    /// Counts `count` packets dropped for `reason` globally and, when known, against their peer.
    @inline(__always)
    public func drop(_ reason: DropReason, peer: Int? = nil, count: Int = 1) {
        guard count > 0 else { return }
        drops.count(reason, times: UInt64(count))
        if let peer { peers[peer].drops.count(reason, times: UInt64(count)) }
    }

    /// Counts `count` captured frames dropped for `reason` (the capture engine's side).
    @inline(__always)
    public func dropCaptured(_ reason: DropReason, peer: Int? = nil, count: Int = 1) {
        drop(reason, peer: peer, count: count)
        capture.dropped.add(UInt64(max(0, count)))
    }
}
