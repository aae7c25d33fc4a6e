/// Proxy NDP for the IPv6 ghost hosts of one LAN interface (RFC 4861 §7.2.8, what ndppd and the
/// kernel's `ip -6 neigh add proxy` do): which Neighbor Solicitations to answer, which to ignore, and
/// which messages reveal another node using a ghost address. Pure: frames in, decisions out, time
/// passed in. The same options and limits as `ProxyARPResponder`.
public struct ProxyNDPResponder: Sendable {
    public typealias Ignored = ProxyARPResponder.Ignored

    public enum Decision: Equatable, Sendable {
        case reply(ghost: IPv6Address, frame: [UInt8])
        case ignore(Ignored, ghost: IPv6Address?)
        /// Another node (`mac`) claims `ghost`; with `defense`, an unsolicited advertisement to send now.
        case conflict(ghost: IPv6Address, mac: MACAddress, defense: [UInt8]?)
    }

    public struct Ghost: Sendable, Equatable {
        public var address: IPv6Address
        public var mac: MACAddress
        public var conflictUntil = -Double.infinity
        public var lastDefense = -Double.infinity
        public init(address: IPv6Address, mac: MACAddress) {
            self.address = address
            self.mac = mac
        }
    }

    public let interfaceMAC: MACAddress
    public let options: ProxyARPResponder.Options
    public private(set) var ghosts: [IPv6Address: Ghost] = [:]
    private var requesters: TokenBucketTable<MACAddress>
    private var total: TokenBucket
    public private(set) var pendingAnnouncements: [(ghost: IPv6Address, due: Double)] = []
    public var trackedRequesters: Int { requesters.count }

    public init(interfaceMAC: MACAddress, options: ProxyARPResponder.Options = .init()) {
        self.interfaceMAC = interfaceMAC
        self.options = options
        requesters = TokenBucketTable(rate: options.repliesPerSecond, burst: options.replyBurst,
                                      capacity: ProxyARPResponder.maximumTrackedRequesters)
        total = TokenBucket(rate: options.totalRepliesPerSecond, burst: options.totalReplyBurst)
    }

    public mutating func add(_ address: IPv6Address, mac: MACAddress?, now: Double, announce: Bool = true) {
        pendingAnnouncements.removeAll { $0.ghost == address }
        ghosts[address] = Ghost(address: address, mac: mac ?? interfaceMAC)
        guard announce else { return }
        for index in 0..<options.announcements {
            pendingAnnouncements.append((address, now + Double(index) * options.announcementInterval))
        }
    }

    public mutating func announceAll(now: Double) {
        pendingAnnouncements = ghosts.keys.sorted().flatMap { address in
            (0..<options.announcements).map { (ghost: address, due: now + Double($0) * options.announcementInterval) }
        }
    }

    public mutating func cancelAnnouncements() { pendingAnnouncements = [] }

    public mutating func restore(_ ghost: Ghost) { ghosts[ghost.address] = ghost }

    public func isYielding(_ address: IPv6Address, now: Double) -> Bool {
        guard options.yieldOnConflict, let ghost = ghosts[address] else { return false }
        return now < ghost.conflictUntil
    }

    /// Unsolicited advertisements due at `now`.
    public mutating func dueAnnouncements(now: Double) -> [(ghost: IPv6Address, frame: [UInt8])] {
        var due: [(IPv6Address, [UInt8])] = []
        var later: [(ghost: IPv6Address, due: Double)] = []
        for entry in pendingAnnouncements {
            guard entry.due <= now else {
                later.append(entry)
                continue
            }
            if let ghost = ghosts[entry.ghost], !isYielding(entry.ghost, now: now) {
                due.append((entry.ghost, NDPBuilder.announcement(target: ghost.address, mac: ghost.mac)))
            }
        }
        pendingAnnouncements = later
        return due
    }

    public mutating func handle(_ frame: UnsafeRawBufferPointer, now: Double) -> Decision {
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.ipv6,
              let message = try? NDPMessageView(validating: ethernet.payload) else {
            return .ignore(.malformed, ghost: nil)
        }
        let sender = ethernet.source
        if sender == interfaceMAC || ghosts.values.contains(where: { $0.mac == sender }) {
            return .ignore(.ownFrame, ghost: nil)
        }
        // Another node using a ghost address: advertising it, or soliciting from it.
        let claimed: IPv6Address? = message.isSolicitation ? (message.source.isUnspecified ? nil : message.source) : message.target
        if let claimed, let ghost = ghosts[claimed] {
            let claimant = message.linkLayerAddress ?? sender
            if claimant != ghost.mac {
                ghosts[claimed]!.conflictUntil = now + options.conflictHoldSeconds
                var defense: [UInt8]?
                if !options.yieldOnConflict && now - ghost.lastDefense >= options.defendIntervalSeconds {
                    ghosts[claimed]!.lastDefense = now
                    if options.defenseDelaySeconds > 0 {
                        pendingAnnouncements.append((claimed, now + options.defenseDelaySeconds))
                    } else {
                        defense = NDPBuilder.announcement(target: ghost.address, mac: ghost.mac, vlanID: ethernet.vlanID)
                    }
                }
                return .conflict(ghost: claimed, mac: claimant, defense: defense)
            }
        }
        guard let ghost = ghosts[message.target] else { return .ignore(.notAGhost, ghost: nil) }
        guard message.isSolicitation else { return .ignore(.notARequest, ghost: ghost.address) }
        // Duplicate Address Detection (source ::) for a ghost address: a node about to take it.
        let isProbe = message.source.isUnspecified
        if isProbe && !options.answerProbes { return .ignore(.probe, ghost: ghost.address) }
        if isYielding(ghost.address, now: now) { return .ignore(.yielding, ghost: ghost.address) }
        guard requesters.take(sender, now: now), total.take(now: now) else { return .ignore(.rateLimited, ghost: ghost.address) }
        // RFC 4861 §7.2.4: to the soliciting node (its link-layer address from the option, or the frame),
        // Solicited set; a DAD probe is answered to all nodes with Solicited clear. §7.2.8: a proxy
        // leaves Override clear, so that the address's real owner, should it appear, wins.
        let reply = isProbe
            ? NDPBuilder.advertisement(target: ghost.address, mac: ghost.mac, to: .allNodes,
                                       destinationMAC: IPv6Address.allNodes.multicastMAC, solicited: false, override: false,
                                       vlanID: ethernet.vlanID)
            : NDPBuilder.advertisement(target: ghost.address, mac: ghost.mac, to: message.source,
                                       destinationMAC: message.linkLayerAddress ?? sender, solicited: true, override: false,
                                       vlanID: ethernet.vlanID)
        return .reply(ghost: ghost.address, frame: reply)
    }
}

extension ProxyNDPResponder {
    /// The responder for one LAN interface as `config` describes it, announcing every IPv6 ghost from `now`.
    public init(interface: String, mac: MACAddress, config: GatewayConfig, now: Double, announce: Bool = true) {
        self.init(interfaceMAC: mac, options: ProxyARPResponder.Options(config))
        for ghost in config.ghostHosts6 where ghost.interface == interface {
            add(ghost.address, mac: ghost.mac, now: now, announce: announce)
        }
    }

    /// The responder after a reload: ghost hosts that stay keep their state; new ones are announced.
    public func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> ProxyNDPResponder {
        let kept = Set(previous.ghostHosts6.filter { $0.interface == interface }).intersection(config.ghostHosts6)
        var next = ProxyNDPResponder(interface: interface, mac: interfaceMAC, config: config, now: now, announce: false)
        for ghost in config.ghostHosts6 where ghost.interface == interface {
            if kept.contains(ghost), let state = ghosts[ghost.address] {
                next.restore(state)
            } else {
                next.add(ghost.address, mac: ghost.mac, now: now, announce: true)
            }
        }
        return next
    }
}
