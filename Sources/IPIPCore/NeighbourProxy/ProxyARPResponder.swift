/// The proxy-ARP responder's decisions for one LAN interface: which ARP packets to answer for the ghost
/// hosts, which to ignore, and which reveal a conflict. Pure: frames in, decisions out, time passed in.
public struct ProxyARPResponder: Sendable {
    public typealias Options = NeighbourProxy.Options
    public typealias Ignored = NeighbourProxy.Ignored

    /// Whether a reply may go to `mac`: one station's address, never a group's or all zeros.
    @inline(__always)
    static func isStation(_ mac: MACAddress) -> Bool { !mac.isMulticast && mac != .zero }

    /// 127/8, multicast, class E and the limited broadcast, and 0/8 except a probe's 0.0.0.0.
    @inline(__always)
    static func isMartianSender(_ address: IPv4Address) -> Bool {
        !address.isUnspecified && (!address.isUnicastCandidate || address.isLoopback)
    }

    public enum Decision: Equatable, Sendable {
        case reply(ghost: IPv4Address, frame: [UInt8])
        case ignore(Ignored, ghost: IPv4Address?)
        /// Another machine (`mac`) claims `ghost`; the frame was not answered. With `defense`, an
        /// announcement to send that puts the ghost's MAC back in the LAN's caches (RFC 5227 §2.4(c)).
        case conflict(ghost: IPv4Address, mac: MACAddress, sender: IPv4Address, defense: [UInt8]?)
        /// Another machine (`mac`) claims the watched endpoint (`endpoint`): on an HA pair's active box,
        /// a split brain. Nothing to answer: the kernel owns that address.
        case endpointClaim(endpoint: IPv4Address, mac: MACAddress)
    }

    public typealias Ghost = GhostTable<IPv4Address>.Ghost

    /// The ghosts, their conflicts, the announcements due and the reply budgets.
    public private(set) var table: GhostTable<IPv4Address>
    public var interfaceMAC: MACAddress { table.interfaceMAC }
    public var options: Options { table.options }
    public var ghosts: [IPv4Address: Ghost] { table.ghosts }
    public var pendingAnnouncements: [(ghost: IPv4Address, due: Double)] { table.pendingAnnouncements }
    /// An address that only this box may claim on the interface (an HA pair's uplink address), whose
    /// claims by others are reported (`.endpointClaim`).
    public var endpoint: IPv4Address?
    /// Requesting MACs whose rate the responder tracks (bounded by twice `maximumTrackedRequesters`).
    public var trackedRequesters: Int { table.trackedRequesters }
    static var maximumTrackedRequesters: Int { GhostTable<IPv4Address>.maximumTrackedRequesters }

    public init(interfaceMAC: MACAddress, options: Options = Options()) {
        table = GhostTable(interfaceMAC: interfaceMAC, options: options)
    }

    /// Starts answering for `address` and, with `announce`, schedules its gratuitous announcements
    /// from `now`.
    public mutating func add(_ address: IPv4Address, mac: MACAddress?, now: Double, announce: Bool = true) {
        table.add(address, mac: mac, now: now, announce: announce)
    }

    /// Schedules every ghost host's announcements afresh from `now` (an HA pair's box becoming active).
    public mutating func announceAll(now: Double) { table.announceAll(now: now) }

    /// Forgets the announcements still due (a standby announces nothing).
    public mutating func cancelAnnouncements() { table.cancelAnnouncements() }

    public mutating func remove(_ address: IPv4Address) { table.remove(address) }

    public func isYielding(_ address: IPv4Address, now: Double) -> Bool { table.isYielding(address, now: now) }

    /// Announcement frames due at `now` (RFC 5227 ARP announcements: request with sender = target).
    public mutating func dueAnnouncements(now: Double) -> [(ghost: IPv4Address, frame: [UInt8])] {
        table.dueAnnouncements(now: now).map { ($0.address, ARPBuilder.announcement(mac: $0.mac, address: $0.address)) }
    }

    public mutating func handle(_ frame: UnsafeRawBufferPointer, now: Double) -> Decision {
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.arp,
              let arp = try? ARPPacketView(validating: ethernet.payload) else {
            return .ignore(.malformed, ghost: nil)
        }
        if table.isOwn(ethernet.source) { return .ignore(.ownFrame, ghost: nil) }
        guard ethernet.vlanID == nil else { return .ignore(.otherVLAN, ghost: nil) }
        if let endpoint, arp.senderProtocol == endpoint, arp.senderHardware != interfaceMAC {
            return .endpointClaim(endpoint: endpoint, mac: arp.senderHardware)
        }
        // Someone else using a ghost address as its own: in a request, reply or announcement.
        if let ghost = ghosts[arp.senderProtocol], arp.senderHardware != ghost.mac {
            let defense = table.claim(ghost.address, now: now).map {
                ARPBuilder.announcement(mac: $0.mac, address: $0.address, vlanID: ethernet.vlanID)
            }
            return .conflict(ghost: ghost.address, mac: arp.senderHardware, sender: arp.senderProtocol, defense: defense)
        }
        guard let ghost = ghosts[arp.targetProtocol] else { return .ignore(.notAGhost, ghost: nil) }
        guard arp.operation == ARPPacketView.operationRequest else { return .ignore(.notARequest, ghost: ghost.address) }
        guard Self.isStation(ethernet.source), Self.isStation(arp.senderHardware), !Self.isMartianSender(arp.senderProtocol) else {
            return .ignore(.invalidSender, ghost: ghost.address)
        }
        switch arp.kind {
        case .gratuitous: return .ignore(.gratuitous, ghost: ghost.address)
        case .probe where !options.answerProbes: return .ignore(.probe, ghost: ghost.address)
        default: break
        }
        if isYielding(ghost.address, now: now) { return .ignore(.yielding, ghost: ghost.address) }
        guard table.allowReply(to: arp.senderHardware, now: now) else { return .ignore(.rateLimited, ghost: ghost.address) }

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

extension NeighbourProxy.Options {
    /// The options `proxy-arp` sets (for ARP and NDP alike); an HA pair's box defends a second late.
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
        table = GhostTable(interface: interface, mac: mac, config: config, now: now, announce: announce)
        endpoint = config.splitBrainWatchedEndpoint(on: interface)
    }

    /// The responder after a reload: ghost hosts that stay keep their state; new ones are announced.
    public func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> ProxyARPResponder {
        var next = self
        next.table = table.reconfigured(for: config, interface: interface, previous: previous, now: now)
        next.endpoint = config.splitBrainWatchedEndpoint(on: interface)
        return next
    }
}
