/// Proxy NDP for the IPv6 ghost hosts of one LAN interface (RFC 4861 §7.2.8, what ndppd and the
/// kernel's `ip -6 neigh add proxy` do): which Neighbor Solicitations to answer, which to ignore, and
/// which messages reveal another node using a ghost address. Pure: frames in, decisions out, time
/// passed in. The same options and limits as `ProxyARPResponder` (`NeighbourProxy.Options`).
public struct ProxyNDPResponder: Sendable {
    public typealias Options = NeighbourProxy.Options
    public typealias Ignored = NeighbourProxy.Ignored

    public enum Decision: Equatable, Sendable {
        case reply(ghost: IPv6Address, frame: [UInt8])
        case ignore(Ignored, ghost: IPv6Address?)
        /// Another node (`mac`) claims `ghost`; with `defense`, an unsolicited advertisement to send now.
        case conflict(ghost: IPv6Address, mac: MACAddress, defense: [UInt8]?)
    }

    public typealias Ghost = GhostTable<IPv6Address>.Ghost

    /// The ghosts, their conflicts, the announcements due and the reply budgets.
    public private(set) var table: GhostTable<IPv6Address>
    public var interfaceMAC: MACAddress { table.interfaceMAC }
    public var options: Options { table.options }
    public var ghosts: [IPv6Address: Ghost] { table.ghosts }
    public var trackedRequesters: Int { table.trackedRequesters }

    public init(interfaceMAC: MACAddress, options: Options = .init()) {
        table = GhostTable(interfaceMAC: interfaceMAC, options: options)
    }

    public mutating func add(_ address: IPv6Address, mac: MACAddress?, now: Double, announce: Bool = true) {
        table.add(address, mac: mac, now: now, announce: announce)
    }

    public mutating func announceAll(now: Double) { table.announceAll(now: now) }

    public mutating func cancelAnnouncements() { table.cancelAnnouncements() }

    /// Unsolicited advertisements due at `now`.
    public mutating func dueAnnouncements(now: Double) -> [(ghost: IPv6Address, frame: [UInt8])] {
        table.dueAnnouncements(now: now).map { ($0.address, NDPBuilder.announcement(target: $0.address, mac: $0.mac)) }
    }

    public mutating func handle(_ frame: UnsafeRawBufferPointer, now: Double) -> Decision {
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.ipv6,
              let message = try? NDPMessageView(validating: ethernet.payload) else {
            return .ignore(.malformed, ghost: nil)
        }
        let sender = ethernet.source
        if table.isOwn(sender) { return .ignore(.ownFrame, ghost: nil) }
        guard ethernet.vlanID == nil else { return .ignore(.otherVLAN, ghost: nil) }
        // Another node using a ghost address: advertising it, or soliciting from it.
        let claimed: IPv6Address? = message.isSolicitation ? (message.source.isUnspecified ? nil : message.source) : message.target
        if let claimed, let ghost = ghosts[claimed] {
            let claimant = message.linkLayerAddress ?? sender
            if claimant != ghost.mac {
                let defense = table.claim(claimed, now: now).map {
                    NDPBuilder.announcement(target: $0.address, mac: $0.mac, vlanID: ethernet.vlanID)
                }
                return .conflict(ghost: claimed, mac: claimant, defense: defense)
            }
        }
        guard let ghost = ghosts[message.target] else { return .ignore(.notAGhost, ghost: nil) }
        guard message.isSolicitation else { return .ignore(.notARequest, ghost: ghost.address) }
        // Duplicate Address Detection (source ::) for a ghost address: a node about to take it.
        let isProbe = message.source.isUnspecified
        if isProbe && !options.answerProbes { return .ignore(.probe, ghost: ghost.address) }
        // Never to a group or all-zero link-layer address, whatever the frame or its option claims (a reflector).
        guard ProxyARPResponder.isStation(sender), ProxyARPResponder.isStation(message.linkLayerAddress ?? sender) else {
            return .ignore(.invalidSender, ghost: ghost.address)
        }
        if table.isYielding(ghost.address, now: now) { return .ignore(.yielding, ghost: ghost.address) }
        guard table.allowReply(to: sender, now: now) else { return .ignore(.rateLimited, ghost: ghost.address) }
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
        table = GhostTable(interface: interface, mac: mac, config: config, now: now, announce: announce)
    }

    /// The responder after a reload: ghost hosts that stay keep their state; new ones are announced.
    public func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> ProxyNDPResponder {
        var next = self
        next.table = table.reconfigured(for: config, interface: interface, previous: previous, now: now)
        return next
    }
}
