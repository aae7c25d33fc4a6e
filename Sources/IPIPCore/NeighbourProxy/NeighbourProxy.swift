/// The neighbour proxy of one LAN interface: proxy ARP for its IPv4 ghost hosts and proxy NDP for its
/// IPv6 ones (what `ip neigh add proxy` and `ip -6 neigh add proxy` make the kernel do), behind one set
/// of decisions and one announcement schedule, so that the thread reading the interface's capture takes
/// each step once instead of once per protocol. Pure: frames in, decisions out, time passed in.
public struct NeighbourProxy: Sendable {
    public struct Options: Sendable, Equatable {
        /// Answer RFC 5227 probes (sender 0.0.0.0) for ghost addresses. Off by default: a DHCP client
        /// that probes the address it was offered and gets an answer declines the lease.
        public var answerProbes = false
        /// Stop answering for a ghost address while another machine claims it.
        public var yieldOnConflict = false
        /// A conflict lasts until no other machine has claimed the address for this long.
        public var conflictHoldSeconds = 30.0
        /// When defending, at most one announcement per ghost this often. RFC 5227 §2.4(c) lets a host
        /// that defends indefinitely choose it; its DEFEND_INTERVAL of 10 s let a host that claims a
        /// ghost every second hold the LAN's caches nine seconds in ten (issue 27, finding 3). Answered
        /// at once, a claim holds them for a moment; two claimants exchange at most two frames a second
        /// per ghost, and the conflict is counted and logged for the admin.
        public var defendIntervalSeconds = 0.5
        /// How long after a conflict the defending announcement goes out. 0: at once. An HA pair's box
        /// waits: the claim may be its partner taking over, and a box that becomes the standby meanwhile
        /// cancels what it had scheduled instead of pulling the LAN's caches back to itself.
        public var defenseDelaySeconds = 0.0
        /// Replies per second per requesting MAC (sustained) and burst: no ARP amplifier.
        public var repliesPerSecond = 5.0
        public var replyBurst = 10.0
        /// Replies per second from this interface in all, whoever asks: requesters are whatever MAC a
        /// frame says, so the per-requester table (bounded) cannot be the only limit.
        public var totalRepliesPerSecond = 500.0
        public var totalReplyBurst = 500.0
        /// RFC 5227 §2.3: ANNOUNCE_NUM 2, ANNOUNCE_INTERVAL 2 s.
        public var announcements = 2
        public var announcementInterval = 2.0
        public init() {}
    }

    public enum Ignored: String, Sendable, CaseIterable {
        case malformed, ownFrame = "own-frame", notARequest = "not-a-request", gratuitous
        case probe, notAGhost = "not-a-ghost", yielding, rateLimited = "rate-limited"
        /// A request no host can send: from a group (multicast, broadcast) or all-zero MAC, or a martian
        /// address. Answering it would send the reply where the forger points (a reflector).
        case invalidSender = "invalid-sender"
        /// An 802.1Q-tagged frame: of another VLAN than the interface's own (which carries its frames
        /// untagged; a VLAN of its own is an interface of its own, e.g. eth0.10).
        case otherVLAN = "other-vlan"
    }

    public enum Decision: Equatable, Sendable {
        /// A reply to send for `ghost` (an ARP reply or a Neighbor Advertisement).
        case reply(ghost: IPAddress, frame: [UInt8])
        case ignore(Ignored, ghost: IPAddress?)
        /// Another machine (`mac`, saying it is `sender`) claims `ghost`; with `defense`, an announcement
        /// to send now that puts the ghost's MAC back in the LAN's caches.
        case conflict(ghost: IPAddress, mac: MACAddress, sender: IPAddress, defense: [UInt8]?)
        /// Another machine (`mac`) claims the watched endpoint, which only this box may hold.
        case endpointClaim(endpoint: IPv4Address, mac: MACAddress)
    }

    public private(set) var arp: ProxyARPResponder
    public private(set) var ndp: ProxyNDPResponder
    public var options: Options { arp.options }

    /// The proxy for `interface` as `config` describes it; `announcing`: its ghost hosts' announcements
    /// are scheduled from `now` (false: an HA pair's standby, which announces nothing).
    public init(interface: String, mac: MACAddress, config: GatewayConfig, announcing: Bool, now: Double) {
        arp = ProxyARPResponder(interface: interface, mac: mac, config: config, now: now, announce: announcing)
        ndp = ProxyNDPResponder(interface: interface, mac: mac, config: config, now: now, announce: announcing)
    }

    /// After a reload: ghost hosts that stay keep their state, new ones are announced (while `announcing`).
    public mutating func reconfigure(for config: GatewayConfig, interface: String, previous: GatewayConfig, announcing: Bool, now: Double) {
        arp = arp.reconfigured(for: config, interface: interface, previous: previous, now: now)
        ndp = ndp.reconfigured(for: config, interface: interface, previous: previous, now: now)
        if !announcing { cancelAnnouncements() }
    }

    /// Every ghost host announced from `now` (becoming the active box).
    public mutating func announceAll(now: Double) {
        arp.announceAll(now: now)
        ndp.announceAll(now: now)
    }

    /// Nothing announced until `announceAll` (becoming the standby).
    public mutating func cancelAnnouncements() {
        arp.cancelAnnouncements()
        ndp.cancelAnnouncements()
    }

    /// The announcements due at `now` (gratuitous ARP, unsolicited Neighbor Advertisements), each once.
    public mutating func dueAnnouncements(now: Double) -> [(ghost: IPAddress, frame: [UInt8])] {
        arp.dueAnnouncements(now: now).map { (.v4($0.ghost), $0.frame) } + ndp.dueAnnouncements(now: now).map { (.v6($0.ghost), $0.frame) }
    }

    /// What to do with one captured frame: IPv6 frames go to proxy NDP, everything else to proxy ARP
    /// (which ignores what is not ARP as malformed).
    public mutating func handle(_ frame: UnsafeRawBufferPointer, now: Double) -> Decision {
        if let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.ipv6 {
            return switch ndp.handle(frame, now: now) {
            case let .reply(ghost, reply): .reply(ghost: .v6(ghost), frame: reply)
            case let .conflict(ghost, mac, defense): .conflict(ghost: .v6(ghost), mac: mac, sender: .v6(ghost), defense: defense)
            case let .ignore(reason, ghost): .ignore(reason, ghost: ghost.map(IPAddress.v6))
            }
        }
        return switch arp.handle(frame, now: now) {
        case let .reply(ghost, reply): .reply(ghost: .v4(ghost), frame: reply)
        case let .conflict(ghost, mac, sender, defense): .conflict(ghost: .v4(ghost), mac: mac, sender: .v4(sender), defense: defense)
        case let .endpointClaim(endpoint, mac): .endpointClaim(endpoint: endpoint, mac: mac)
        case let .ignore(reason, ghost): .ignore(reason, ghost: ghost.map(IPAddress.v4))
        }
    }
}
