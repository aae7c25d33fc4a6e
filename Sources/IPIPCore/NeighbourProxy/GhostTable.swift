/// What a proxy keeps for the ghost hosts of one LAN interface, whichever protocol asks for them (ARP for
/// IPv4, Neighbor Discovery for IPv6): each ghost with its MAC and conflict state, the announcements
/// still due, and the reply budget per requesting MAC and in all. The responders decide what a frame
/// means and build the frames; this table decides when to speak.
public struct GhostTable<Address: Hashable & Comparable & Sendable>: Sendable {
    public struct Ghost: Sendable, Equatable {
        public var address: Address
        public var mac: MACAddress
        public var conflictUntil = -Double.infinity
        /// When the last defending announcement went out.
        public var lastDefense = -Double.infinity
        public init(address: Address, mac: MACAddress) {
            self.address = address
            self.mac = mac
        }
    }

    public let interfaceMAC: MACAddress
    public let options: NeighbourProxy.Options
    public private(set) var ghosts: [Address: Ghost] = [:]
    /// Announcements still to send: (ghost, when).
    public private(set) var pendingAnnouncements: [(ghost: Address, due: Double)] = []
    /// Replies per requesting MAC (a bounded table), and in all.
    private var requesters: TokenBucketTable<MACAddress>
    private var total: TokenBucket
    /// The requesters known before a flood, and the budget only they draw on.
    private var history = RequesterHistory()
    private var establishedTotal: TokenBucket
    /// Requesting MACs whose rate the table tracks (bounded by twice `maximumTrackedRequesters`).
    public var trackedRequesters: Int { requesters.count }
    static var maximumTrackedRequesters: Int { 4096 }

    public init(interfaceMAC: MACAddress, options: NeighbourProxy.Options) {
        self.interfaceMAC = interfaceMAC
        self.options = options
        requesters = TokenBucketTable(rate: options.repliesPerSecond, burst: options.replyBurst, capacity: Self.maximumTrackedRequesters)
        total = TokenBucket(rate: options.totalRepliesPerSecond, burst: options.totalReplyBurst)
        establishedTotal = TokenBucket(rate: options.totalRepliesPerSecond, burst: options.totalReplyBurst)
    }

    /// Starts answering for `address` and, with `announce`, schedules its announcements from `now`.
    public mutating func add(_ address: Address, mac: MACAddress?, now: Double, announce: Bool = true) {
        pendingAnnouncements.removeAll { $0.ghost == address }
        ghosts[address] = Ghost(address: address, mac: mac ?? interfaceMAC)
        guard announce else { return }
        for index in 0..<options.announcements {
            pendingAnnouncements.append((address, now + Double(index) * options.announcementInterval))
        }
    }

    /// Schedules every ghost's announcements afresh from `now`: when this box becomes the active one of
    /// an HA pair, the LAN's caches must move to it.
    public mutating func announceAll(now: Double) {
        pendingAnnouncements = ghosts.keys.sorted().flatMap { address in
            (0..<options.announcements).map { (ghost: address, due: now + Double($0) * options.announcementInterval) }
        }
    }

    /// Forgets the announcements still due (a standby announces nothing).
    public mutating func cancelAnnouncements() {
        pendingAnnouncements = []
    }

    /// Takes over a ghost's state (conflict hold) from a previous table.
    public mutating func restore(_ ghost: Ghost) {
        ghosts[ghost.address] = ghost
    }

    public mutating func remove(_ address: Address) {
        ghosts[address] = nil
        pendingAnnouncements.removeAll { $0.ghost == address }
    }

    public func isYielding(_ address: Address, now: Double) -> Bool {
        guard options.yieldOnConflict, let ghost = ghosts[address] else { return false }
        return now < ghost.conflictUntil
    }

    /// Whether a frame from `mac` is one of ours (the interface's, or a ghost's configured MAC).
    public func isOwn(_ mac: MACAddress) -> Bool {
        mac == interfaceMAC || ghosts.values.contains { $0.mac == mac }
    }

    /// The ghosts whose announcement is due at `now` (none while yielding).
    public mutating func dueAnnouncements(now: Double) -> [Ghost] {
        var due: [Ghost] = []
        var later: [(ghost: Address, due: Double)] = []
        for entry in pendingAnnouncements {
            guard entry.due <= now else {
                later.append(entry)
                continue
            }
            if let ghost = ghosts[entry.ghost], !isYielding(entry.ghost, now: now) { due.append(ghost) }
        }
        pendingAnnouncements = later
        return due
    }

    /// Another machine claims the ghost `address`: the conflict holds for `conflictHoldSeconds`. Returns
    /// the ghost when it is to be defended at once (RFC 5227 §2.4(c), at most every `defendIntervalSeconds`);
    /// with a defense delay, the defense is scheduled as an announcement instead.
    public mutating func claim(_ address: Address, now: Double) -> Ghost? {
        guard var ghost = ghosts[address] else { return nil }
        ghost.conflictUntil = now + options.conflictHoldSeconds
        var defendNow = false
        if !options.yieldOnConflict && now - ghost.lastDefense >= options.defendIntervalSeconds {
            ghost.lastDefense = now
            if options.defenseDelaySeconds > 0 {
                pendingAnnouncements.append((address, now + options.defenseDelaySeconds))
            } else {
                defendNow = true
            }
        }
        ghosts[address] = ghost
        return defendNow ? ghost : nil
    }

    /// Takes one reply from `requester`'s budget and the interface's — the established requesters'
    /// (`RequesterHistory`) or everyone else's; false when either is spent. A flood from new MACs spends
    /// only the second: the hosts the LAN had before it are still answered.
    public mutating func allowReply(to requester: MACAddress, now: Double) -> Bool {
        let established = history.noteRequest(from: requester, now: now)
        guard requesters.take(requester, now: now) else { return false }
        guard established ? establishedTotal.take(now: now) : total.take(now: now) else { return false }
        history.noteAnswered(requester, now: now)
        return true
    }

    /// Requesters that draw on the established budget.
    public var establishedRequesters: Int { history.establishedCount }

    /// The table after a reload, with the new config's `options` and `ghosts` on this interface: those
    /// for which `kept` holds carry their state over; the others are announced from `now`. The reply
    /// budgets start afresh; the established requesters stay.
    public func reconfigured(options: NeighbourProxy.Options, ghosts: [(address: Address, mac: MACAddress?)],
                             kept: (Address) -> Bool, now: Double) -> GhostTable {
        var next = GhostTable(interfaceMAC: interfaceMAC, options: options)
        next.history = history   // a reload during a flood keeps knowing the LAN's hosts
        for (address, mac) in ghosts {
            if kept(address), let state = self.ghosts[address] {
                next.restore(state)
            } else {
                next.add(address, mac: mac, now: now, announce: true)
            }
        }
        return next
    }
}

extension GhostTable where Address: FamilyAddress {
    /// One LAN interface's ghost hosts of this family as `config` describes them, each announced from
    /// `now` unless `announce` is false: what the ARP and the NDP responder each start from.
    public init(interface: String, mac: MACAddress, config: GatewayConfig, now: Double, announce: Bool) {
        self.init(interfaceMAC: mac, options: NeighbourProxy.Options(config))
        for ghost in config.ghosts(Address.self, on: interface) {
            add(ghost.address, mac: ghost.mac, now: now, announce: announce)
        }
    }

    /// The table after a reload from `previous`: ghost hosts that stay keep their state; new ones are announced.
    public func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> GhostTable {
        let kept = Set(config.ghostsKept(on: interface, from: previous).compactMap(Address.init))
        return reconfigured(options: NeighbourProxy.Options(config), ghosts: config.ghosts(Address.self, on: interface),
                            kept: { kept.contains($0) }, now: now)
    }
}
