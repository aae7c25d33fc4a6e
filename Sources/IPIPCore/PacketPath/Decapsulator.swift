/// This machine's IPv4 addresses, and the broadcast addresses of its subnets, and its IPv6 addresses:
/// what an inner packet may not claim to come from, or be sent to, when it arrives through the tunnel.
public struct LocalNetworks: Sendable, Equatable {
    public var addresses: AddressSet
    /// Directed broadcasts (and the all-zeros host of each subnet, which old stacks took for one).
    public var broadcasts: AddressSet
    /// This machine's IPv6 addresses (the tunnel's own among them).
    public var addresses6: Set<IPv6Address>

    /// `networks`: each local address with its prefix length, as the interfaces have them.
    public init(addresses: Set<IPv4Address> = [], networks: [IPv4Prefix] = [], addresses6: Set<IPv6Address> = []) {
        self.addresses6 = addresses6
        self.addresses = AddressSet(addresses.union(networks.map(\.address)))
        broadcasts = AddressSet(networks.filter { $0.length <= 30 }.flatMap { network in
            [IPv4Address(network.address.value | ~network.mask), IPv4Address(network.address.value & network.mask)]
        })
    }
}

/// The prefixes the kernel delivers to this machine: its routes of type `local`, in any table — each
/// interface address, and AnyIP ranges that no interface shows (`ip route add local 198.18.50.0/24 dev
/// lo`). A packet ipipd routed itself to one of them would be received through `lo`, which every
/// firewall accepts; such packets take the TUN device instead.
public struct LocalRoutes: Sendable {
    private let table: PrefixTable<Bool>
    /// False until the routes have been read once.
    public let isRead: Bool

    /// Before the routes are read, every destination counts as local: the TUN device is the safe way in.
    public static let unread = LocalRoutes(table: PrefixTable(), isRead: false)

    private init(table: PrefixTable<Bool>, isRead: Bool) {
        self.table = table
        self.isRead = isRead
    }

    public init(_ prefixes: some Sequence<IPv4Prefix>) {
        self.init(table: PrefixTable(prefixes.lazy.map { ($0, true) }, uniquingPrefixesWith: { _, _ in true }), isRead: true)
    }

    /// Whether a packet to `address` must enter this machine by the TUN device.
    @inline(__always)
    public func mustTakeTheTUNDevice(_ address: IPv4Address) -> Bool { !isRead || table.lookup(address) != nil }

    /// Whether `address` is known to be this machine's: no inner packet may claim it as its source.
    @inline(__always)
    public func isKnownLocal(_ address: IPv4Address) -> Bool { isRead && table.lookup(address) != nil }

    public var count: Int { table.count }
}

/// Checks and unwraps captured tunnel packets. Pure: it decides and edits the inner header in place;
/// the dataplane delivers the bytes it points at.
///
/// Every packet a peer sends is hostile until checked: its inner source must lie in the peer's
/// `accept-sources` (what WireGuard's AllowedIPs do and Linux's ipip cannot), and neither its source nor
/// its destination may be a martian — 0/8, 127/8, multicast, class E, the limited or a directed
/// broadcast, or (as source) one of this machine's addresses — nor may it carry a source route. Then it
/// goes by the delivery mode: to the kernel's receive path on the TUN device, or routed by ipipd
/// as a router would, its TTL decremented — except packets for this machine (its addresses, and every
/// prefix the kernel routes as local: `localRoutes`), which take the TUN device in both modes, so that
/// nothing from the tunnel is ever delivered through `lo`.
public struct Decapsulator: Sendable {
    /// How a delivered inner packet leaves.
    public enum Route: Equatable, Sendable {
        /// Written to the TUN device: the kernel receives it on `tunl`.
        case tun
        /// Sent through the raw socket, routed by the kernel as locally generated (routed delivery).
        case routed
    }

    public enum Verdict: Equatable, Sendable {
        /// Deliver `buffer[inner]` (already edited: ECN, and the TTL when routed) as received from `peer`.
        case deliver(peer: Int, inner: Range<Int>, route: Route)
        /// A fragment of an outer packet from `peer`: reassemble it first.
        case reassemble(peer: Int)
        /// The inner packet `buffer[inner]` would be forwarded with TTL <= 1 (routed delivery): dropped,
        /// and its sender should get ICMP time exceeded.
        case timeExceeded(peer: Int, inner: Range<Int>)
        /// An ICMP error from a router, about one of our outer packets or not.
        case aboutOuter(OuterICMP)
        case drop(DropReason, peer: Int?)
    }

    /// What arrives on the uplink: the local address and the UDP ports tunnel packets come to.
    public let parser: OuterHeaderParser
    public let delivery: GatewayConfig.Delivery
    /// With `ttl: inherit`, "time exceeded" about an outer packet is the inner sender's own business.
    public let ttlInherited: Bool
    /// The peers by endpoint, with how each one's outer packets look.
    public let peers: OuterPeers
    /// How each peer's packets must arrive (its `encap`), by peer index.
    private let arrivals: [OuterHeaderParser.Arrival]
    /// Each peer's accepted inner sources of both families, by peer index.
    public let acceptSources: [PrefixTable<Bool>]
    public var localNetworks: LocalNetworks
    /// The kernel's local routes, as the route watcher last read them.
    public var localRoutes: LocalRoutes

    public var local: IPAddress { parser.local }

    /// `localRoutes`: the dataplane passes what it read (or `.unread`); none by default.
    public init(config: GatewayConfig, localNetworks: LocalNetworks, localRoutes: LocalRoutes = LocalRoutes([])) {
        parser = OuterHeaderParser(local: config.uplink.address, ports: config.fouPorts)
        delivery = config.tunnel.delivery
        ttlInherited = config.tunnel.ttl == .inherit
        peers = OuterPeers(config: config)
        arrivals = peers.encapsulations.map(\.arrival)
        acceptSources = config.peers.map { peer in
            PrefixTable(peer.allowedSources.map { ($0, true) }, uniquingPrefixesWith: { _, _ in true })
        }
        self.localNetworks = localNetworks
        self.localRoutes = localRoutes
    }

    public init(config: GatewayConfig, localAddresses: Set<IPv4Address>) {
        self.init(config: config, localNetworks: LocalNetworks(addresses: localAddresses))
    }

    /// `packet` starts at the outer header and ends where the capture ended; `checksum` is what the kernel
    /// said of its UDP checksum, if it has one.
    @inline(__always)
    public func decapsulate(_ packet: UnsafeMutableRawBufferPointer, checksum: OuterHeaderParser.ChecksumState = .unknown) -> Verdict {
        switch parser.parse(packet, checksum: checksum) {
        case let .tunnelled(source, inner, family, ecn, arrival):
            guard let peer = peers.peer(source) else { return .drop(.unknownPeer, peer: nil) }
            guard arrivals[peer] == arrival else { return .drop(.encapsulationMismatch, peer: peer) }
            let bytes = UnsafeRawBufferPointer(rebasing: packet[inner])
            switch family {
            case .ipv4:
                guard let view = IPv4PacketView.checkedInner(bytes) else { return .drop(Self.innerProblem(bytes, expected: 4, arrival), peer: peer) }
                return unwrap(packet, view, at: inner, outerECN: ecn, peer: peer)
            // Protocol 41 (RFC 4213 §3.6, what Linux's sit accepts, and more).
            case .ipv6:
                guard let view = IPv6PacketView.checkedInner(bytes) else { return .drop(Self.innerProblem(bytes, expected: 6, arrival), peer: peer) }
                return unwrap(packet, view, at: inner, outerECN: ecn, peer: peer)
            }
        case .fragment(let source):
            guard let peer = peers.peer(source) else { return .drop(.unknownPeer, peer: nil) }
            return .reassemble(peer: peer)
        case .icmp(let message):
            return .aboutOuter(OuterICMP.classify(UnsafeRawBufferPointer(packet), messageAt: message, peers: peers, ttlInherited: ttlInherited))
        case let .invalid(reason, source):
            return .drop(reason, peer: source.flatMap(peers.peer))
        }
    }

    /// Why an inner packet that is not what its outer header says was refused: on a FOU port, a packet of
    /// the other family came to a port that names one (the sender's `encap-dport` is the other port's).
    private static func innerProblem(_ inner: UnsafeRawBufferPointer, expected version: UInt8, _ arrival: OuterHeaderParser.Arrival) -> DropReason {
        guard arrival == .fou, let first = inner.first, first >> 4 == 10 - version else { return .malformedInner }
        return .encapsulationMismatch
    }

    /// The one flow for both inner families (`ipip_tunnel_rcv`'s, with the inner protocol a parameter) for
    /// the inner packet `inner` at `packet[range]`, checked whole by the caller: no martian source or destination, its source inside the peer's accept-sources,
    /// no source route or abusive options, RFC 6040 ECN, then the delivery mode. Where the families differ, `Inner` says.
    @inline(__always)
    func unwrap<Inner: InnerPacket>(_ packet: UnsafeMutableRawBufferPointer, _ inner: Inner, at range: Range<Int>,
                                    outerECN: ECN, peer: Int) -> Verdict {
        let innerBytes = UnsafeMutableRawBufferPointer(rebasing: packet[range])
        if let reason = inner.martian(local: localNetworks, routes: localRoutes) { return .drop(reason, peer: peer) }
        guard acceptSources[peer].lookup(inFamilyOf: inner.source) != nil else { return .drop(.sourceNotAllowed, peer: peer) }
        if let reason = inner.refusedOptions { return .drop(reason, peer: peer) }

        switch ECNDecapsulation.decide(outer: outerECN, inner: inner.ecn) {
        case .pass: break
        case .drop: return .drop(.ecnNotECT, peer: peer)
        case .setCE: Inner.setCongestionExperienced(innerBytes)
        }

        if delivery == .kernel || inner.mustTakeTUNDevice(local: localNetworks, routes: localRoutes) {
            return .deliver(peer: peer, inner: range, route: .tun)
        }
        // Routed by ipipd: a router decrements the TTL and never forwards one that expires.
        guard inner.hopLimit > 1 else { return .timeExceeded(peer: peer, inner: range) }
        Inner.decrementHopLimit(innerBytes)
        return .deliver(peer: peer, inner: range, route: .routed)
    }
}

/// What IPv4 options a router must look at before forwarding.
public enum IPv4Options {
    public enum SourceRouting: Equatable, Sendable { case none, sourceRoute, malformed }

    /// Whether the header carries a loose or strict source route (options 131 and 137), which a router
    /// drops by default (Linux's accept_source_route = 0): it would let the sender pick the path back.
    public static func sourceRoute(in packet: IPv4PacketView) -> SourceRouting {
        let header = packet.bytes
        var index = IPv4PacketView.minimumHeaderLength
        while index < packet.headerLength {
            let type = header[index]
            if type == 0 { return .none }                 // end of options
            if type == 1 { index += 1; continue }         // no-operation
            guard index + 1 < packet.headerLength else { return .malformed }
            let length = Int(header[index + 1])
            guard length >= 2, index + length <= packet.headerLength else { return .malformed }
            if type == 0x83 || type == 0x89 { return .sourceRoute }
            index += length
        }
        return .none
    }
}
