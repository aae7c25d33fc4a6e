/// The proxy-ARP responder's decisions for one LAN interface: which ARP packets to answer for the ghost
/// hosts, which to ignore, and which reveal a conflict. Pure: frames in, decisions out, time passed in.
public struct ProxyARPResponder: Sendable {
    public struct Options: Sendable, Equatable {
        /// Answer RFC 5227 probes (sender 0.0.0.0) for ghost addresses. Off by default: a DHCP client
        /// that probes the address it was offered and gets an answer declines the lease.
        public var answerProbes = false
        /// Stop answering for a ghost address while another machine claims it.
        public var yieldOnConflict = false
        /// A conflict lasts until no other machine has claimed the address for this long.
        public var conflictHoldSeconds = 30.0
        /// RFC 5227 DEFEND_INTERVAL: when defending, at most one announcement per ghost this often, so
        /// that two claimants do not flood the LAN with an endless exchange.
        public var defendIntervalSeconds = 10.0
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
    }

    public enum Decision: Equatable, Sendable {
        case reply(ghost: IPv4Address, frame: [UInt8])
        case ignore(Ignored, ghost: IPv4Address?)
        /// Another machine (`mac`) claims `ghost`; the frame was not answered. With `defense`, an
        /// announcement to send that puts the ghost's MAC back in the LAN's caches (RFC 5227 §2.4(c)).
        case conflict(ghost: IPv4Address, mac: MACAddress, sender: IPv4Address, defense: [UInt8]?)
    }

    public struct Ghost: Sendable, Equatable {
        public var address: IPv4Address
        public var mac: MACAddress
        public var conflictUntil = -Double.infinity
        /// When the last defending announcement went out.
        public var lastDefense = -Double.infinity
        public init(address: IPv4Address, mac: MACAddress) {
            self.address = address
            self.mac = mac
        }
    }

    public let interfaceMAC: MACAddress
    public let options: Options
    public private(set) var ghosts: [IPv4Address: Ghost] = [:]
    /// Requesting MACs whose rate the responder tracks (bounded by twice `maximumTrackedRequesters`).
    public var trackedRequesters: Int { requesters.count }

    /// Replies per requesting MAC, and in all.
    private var requesters: TokenBucketTable<MACAddress>
    private var total: TokenBucket
    /// Announcements still to send: (ghost, when).
    public private(set) var pendingAnnouncements: [(ghost: IPv4Address, due: Double)] = []
    static let maximumTrackedRequesters = 4096

    public init(interfaceMAC: MACAddress, options: Options = Options()) {
        self.interfaceMAC = interfaceMAC
        self.options = options
        requesters = TokenBucketTable(rate: options.repliesPerSecond, burst: options.replyBurst, capacity: Self.maximumTrackedRequesters)
        total = TokenBucket(rate: options.totalRepliesPerSecond, burst: options.totalReplyBurst)
    }

    /// Starts answering for `address` and, with `announce`, schedules its gratuitous announcements
    /// from `now`.
    public mutating func add(_ address: IPv4Address, mac: MACAddress?, now: Double, announce: Bool = true) {
        pendingAnnouncements.removeAll { $0.ghost == address }
        ghosts[address] = Ghost(address: address, mac: mac ?? interfaceMAC)
        guard announce else { return }
        for index in 0..<options.announcements {
            pendingAnnouncements.append((address, now + Double(index) * options.announcementInterval))
        }
    }

    /// Schedules every ghost host's announcements afresh from `now`: when this box becomes the active
    /// one of an HA pair, the LAN's caches must move to it.
    public mutating func announceAll(now: Double) {
        pendingAnnouncements = ghosts.keys.sorted().flatMap { address in
            (0..<options.announcements).map { (ghost: address, due: now + Double($0) * options.announcementInterval) }
        }
    }

    /// Forgets the announcements still due (a standby announces nothing).
    public mutating func cancelAnnouncements() {
        pendingAnnouncements = []
    }

    /// Takes over a ghost host's state (conflict hold) from a previous responder.
    public mutating func restore(_ ghost: Ghost) {
        ghosts[ghost.address] = ghost
    }

    public mutating func remove(_ address: IPv4Address) {
        ghosts[address] = nil
        pendingAnnouncements.removeAll { $0.ghost == address }
    }

    public func isYielding(_ address: IPv4Address, now: Double) -> Bool {
        guard options.yieldOnConflict, let ghost = ghosts[address] else { return false }
        return now < ghost.conflictUntil
    }

    /// Announcement frames due at `now` (RFC 5227 ARP announcements: request with sender = target).
    public mutating func dueAnnouncements(now: Double) -> [(ghost: IPv4Address, frame: [UInt8])] {
        var due: [(IPv4Address, [UInt8])] = []
        var later: [(ghost: IPv4Address, due: Double)] = []
        for entry in pendingAnnouncements {
            guard entry.due <= now else {
                later.append(entry)
                continue
            }
            if let ghost = ghosts[entry.ghost], !isYielding(entry.ghost, now: now) {
                due.append((entry.ghost, ARPBuilder.announcement(mac: ghost.mac, address: ghost.address)))
            }
        }
        pendingAnnouncements = later
        return due
    }

    public mutating func handle(_ frame: UnsafeRawBufferPointer, now: Double) -> Decision {
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.arp,
              let arp = try? ARPPacketView(validating: ethernet.payload) else {
            return .ignore(.malformed, ghost: nil)
        }
        let source = ethernet.source
        if source == interfaceMAC || ghosts.values.contains(where: { $0.mac == source }) {
            return .ignore(.ownFrame, ghost: nil)
        }
        // Someone else using a ghost address as its own: in a request, reply or announcement.
        if let ghost = ghosts[arp.senderProtocol], arp.senderHardware != ghost.mac {
            ghosts[arp.senderProtocol]!.conflictUntil = now + options.conflictHoldSeconds
            var defense: [UInt8]?
            if !options.yieldOnConflict && now - ghost.lastDefense >= options.defendIntervalSeconds {
                ghosts[arp.senderProtocol]!.lastDefense = now
                if options.defenseDelaySeconds > 0 {
                    pendingAnnouncements.append((ghost.address, now + options.defenseDelaySeconds))
                } else {
                    defense = ARPBuilder.announcement(mac: ghost.mac, address: ghost.address, vlanID: ethernet.vlanID)
                }
            }
            return .conflict(ghost: ghost.address, mac: arp.senderHardware, sender: arp.senderProtocol, defense: defense)
        }
        guard let ghost = ghosts[arp.targetProtocol] else { return .ignore(.notAGhost, ghost: nil) }
        guard arp.operation == ARPPacketView.operationRequest else { return .ignore(.notARequest, ghost: ghost.address) }
        switch arp.kind {
        case .gratuitous: return .ignore(.gratuitous, ghost: ghost.address)
        case .probe where !options.answerProbes: return .ignore(.probe, ghost: ghost.address)
        default: break
        }
        if isYielding(ghost.address, now: now) { return .ignore(.yielding, ghost: ghost.address) }
        guard requesters.take(arp.senderHardware, now: now), total.take(now: now) else { return .ignore(.rateLimited, ghost: ghost.address) }

        // A probe's sender has no address yet: answer it as RFC 5227 defends, by broadcast.
        let isProbe = arp.senderProtocol.isUnspecified
        let reply = EthernetBuilder.frame(
            destination: isProbe ? .broadcast : arp.senderHardware, source: ghost.mac, etherType: EtherType.arp,
            vlanID: ethernet.vlanID,
            payload: ARPBuilder.packet(operation: ARPPacketView.operationReply, senderHardware: ghost.mac,
                                       senderProtocol: ghost.address, targetHardware: arp.senderHardware,
                                       targetProtocol: arp.senderProtocol))
        return .reply(ghost: ghost.address, frame: reply)
    }
}

extension ProxyARPResponder.Options {
    /// The options `proxy-arp` sets (for proxy NDP too); an HA pair's box defends a second late.
    public init(_ config: GatewayConfig) {
        self.init()
        answerProbes = config.proxyARP.answerProbes
        yieldOnConflict = config.proxyARP.onConflict == .yield
        if config.uplink.standbyWhenAbsent { defenseDelaySeconds = 1 }
    }
}

extension ProxyARPResponder {
    /// The responder for one LAN interface as `config` describes it, announcing every ghost host from `now`.
    public init(interface: String, mac: MACAddress, config: GatewayConfig, now: Double, announce: Bool = true) {
        self.init(interfaceMAC: mac, options: Options(config))
        for ghost in config.ghostHosts where ghost.interface == interface {
            add(ghost.address, mac: ghost.mac, now: now, announce: announce)
        }
    }

    /// The responder after a reload: ghost hosts that stay keep their state; new ones are announced.
    public func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> ProxyARPResponder {
        let kept = Set(previous.ghostHosts.filter { $0.interface == interface }).intersection(config.ghostHosts)
        var next = ProxyARPResponder(interface: interface, mac: interfaceMAC, config: config, now: now, announce: false)
        for ghost in config.ghostHosts where ghost.interface == interface {
            if kept.contains(ghost), let state = ghosts[ghost.address] {
                next.restore(state)
            } else {
                next.add(ghost.address, mac: ghost.mac, now: now, announce: true)
            }
        }
        return next
    }
}
