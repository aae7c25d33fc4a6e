/// Wraps inner packets for the tunnel. Pure and allocation-free: the dataplane reads each inner packet
/// into a reused buffer at offset `headroom`, and `encapsulate` writes the outer header in front of it.
public struct Encapsulator: Sendable {
    /// What the dataplane leaves in front of each inner packet for the outer header.
    public static let headroom = Encapsulation.maximumHeaderLength

    public enum Verdict: Equatable, Sendable {
        /// Send `length` bytes from the start of the buffer (outer header + inner packet) to `peer`.
        /// With `notifyUnreachable`, a router recently reported the peer unreachable (RFC 2003 §4):
        /// the packet still goes, and its sender is told "host unreachable".
        case send(length: Int, peer: Int, destination: IPv4Address, notifyUnreachable: Bool)
        /// The inner packet has DF set and exceeds `mtu`, the inner MTU towards `peer`: its sender
        /// must get "fragmentation needed" with that MTU.
        case tooBig(peer: Int, mtu: Int)
        /// The inner packet exceeds `mtu` and may be fragmented: split it, then encapsulate each piece.
        case fragment(peer: Int, mtu: Int)
        case drop(DropReason, peer: Int?)
    }

    public let local: IPv4Address
    public let encapsulation = Encapsulation.ipInIPv4
    public private(set) var rules: EncapsulationRules
    public let tunnelMTU: Int
    public private(set) var routes: PrefixTable<Int>
    public private(set) var endpoints: [IPv4Address]
    public private(set) var paths: [PeerPathState]

    public init(config: GatewayConfig, tunnelMTU: Int, paths: [PeerPathState]? = nil) {
        local = config.uplink.address
        rules = EncapsulationRules(config.tunnel)
        self.tunnelMTU = tunnelMTU
        routes = config.routingTable
        endpoints = config.peers.map(\.remote)
        self.paths = paths ?? config.peers.map { _ in PeerPathState() }
    }

    /// Takes the peers, routes and options of a reloaded config; each peer's IP ID sequence goes on.
    public mutating func reconfigure(_ config: GatewayConfig, paths: [PeerPathState]) {
        rules = EncapsulationRules(config.tunnel)
        routes = config.routingTable
        endpoints = config.peers.map(\.remote)
        self.paths = paths
    }

    /// The largest inner packet that reaches `peer` without fragmentation.
    @inline(__always)
    public func mtu(toPeer peer: Int, now: Double) -> Int {
        min(tunnelMTU, paths[peer].currentMTU(now: now) ?? tunnelMTU)
    }

    /// `buffer[headroom ..< headroom + innerLength]` holds what the TUN delivered.
    @inline(__always)
    public mutating func encapsulate(_ buffer: UnsafeMutableRawBufferPointer, innerLength: Int, now: Double) -> Verdict {
        let inner = UnsafeRawBufferPointer(rebasing: buffer[Self.headroom..<(Self.headroom + innerLength)])
        guard innerLength >= 1 else { return .drop(.notIP, peer: nil) }
        switch inner[0] >> 4 {
        case 4:
            guard let packet = IPv4PacketView.checkedInner(inner) else { return .drop(.malformedInner, peer: nil) }
            return encapsulate(buffer, packet, inner: inner, now: now)
        // IPv6 in IPv4 as Linux's sit sends it (RFC 4213 §3): the hop limit and traffic class stand in
        // for TTL and TOS.
        case 6:
            guard let packet = IPv6PacketView.checkedInner(inner) else { return .drop(.malformedInner, peer: nil) }
            return encapsulate(buffer, packet, inner: inner, now: now)
        default: return .drop(.notIP, peer: nil)
        }
    }

    /// The one flow for both inner families (`ip_tunnel_xmit`'s): the peer by longest-prefix match, the
    /// loop and MTU checks, the outer header by the RFC 2003 / RFC 6040 rules. Where the families differ, `Inner` says.
    @inline(__always)
    mutating func encapsulate<Inner: InnerPacket>(_ buffer: UnsafeMutableRawBufferPointer, _ packet: Inner,
                                                  inner: UnsafeRawBufferPointer, now: Double) -> Verdict {
        if packet.isLinkScoped { return .drop(.linkScope, peer: nil) }
        guard let peer = routes.lookup(inFamilyOf: packet.destination) else { return .drop(.noRoute, peer: nil) }
        let path = paths[peer]
        // One of our own outer packets came back through the TUN: the route to the endpoint leads into
        // the tunnel. Caught per packet here; the route watcher then stops the peer's traffic.
        if path.isLooping || packet.isOuterPacket(from: local) { return .drop(.loop, peer: peer) }
        let pathMTU = mtu(toPeer: peer, now: now)
        switch packet.fit(length: inner.count, pathMTU: pathMTU) {
        case .fits: break
        case .tooBig(let mtu): return .tooBig(peer: peer, mtu: mtu)
        case .fragment(let mtu): return .fragment(peer: peer, mtu: mtu)
        }
        let destination = endpoints[peer]
        let outerLength = encapsulation.headerLength + inner.count
        encapsulation.write(.init(tos: rules.outerTOS(innerTOS: packet.trafficClass),
                                  // A counter per peer, so the ID changes per packet even with DF (as Linux
                                  // does), which lets a fragmenting middlebox or a capture tell packets apart.
                                  identification: path.takeIdentification(now: now, outerLength: outerLength, inner: inner),
                                  dontFragment: packet.outerDontFragment(rules, pathMTU: pathMTU),
                                  ttl: rules.outerTTL(innerTTL: packet.hopLimit),
                                  innerProtocol: Inner.outerProtocol,
                                  source: local,
                                  destination: destination),
                            innerLength: inner.count, into: buffer)
        return .send(length: outerLength, peer: peer, destination: destination, notifyUnreachable: path.takeError(now: now))
    }

    /// RFC 8200 §5: the least MTU of a link that carries IPv6.
    public static let minimumIPv6MTU = 1280
}
