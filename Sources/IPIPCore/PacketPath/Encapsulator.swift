/// Wraps inner packets for the tunnel. Pure and allocation-free: the dataplane reads each inner packet
/// into a reused buffer at offset `headroom`, and `encapsulate` writes the outer header in front of it.
public struct Encapsulator: Sendable {
    /// The outer IPv4 header's length (no options): what the dataplane leaves in front of each inner packet.
    public static let headroom = IPv4PacketView.minimumHeaderLength

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
        if inner[0] >> 4 == 6 { return encapsulate6(buffer, inner: inner, now: now) }
        guard inner[0] >> 4 == 4 else { return .drop(.notIP, peer: nil) }
        let packet: IPv4PacketView
        do {
            packet = try IPv4PacketView(validating: inner, exactLength: true)
        } catch {
            return .drop(.malformedInner, peer: nil)
        }
        guard let peer = routes.lookup(packet.destination) else { return .drop(.noRoute, peer: nil) }
        let path = paths[peer]
        // One of our own outer packets came back through the TUN: the route to the endpoint leads into
        // the tunnel. Caught per packet here; the route watcher then stops the peer's traffic.
        if path.isLooping || ((packet.protocolNumber == IPProtocolNumber.ipip || packet.protocolNumber == IPProtocolNumber.ipv6)
                              && packet.source == local) {
            return .drop(.loop, peer: peer)
        }
        let mtu = mtu(toPeer: peer, now: now)
        if innerLength > mtu {
            return packet.dontFragment ? .tooBig(peer: peer, mtu: mtu) : .fragment(peer: peer, mtu: mtu)
        }
        let destination = endpoints[peer]
        IPv4HeaderFields(tos: rules.outerTOS(innerTOS: packet.tos),
                         totalLength: Self.headroom + innerLength,
                         // A counter per peer, so the ID changes per packet even with DF (as Linux
                         // does), which lets a fragmenting middlebox or a capture tell packets apart.
                         identification: path.takeIdentification(now: now, outerLength: Self.headroom + innerLength, inner: inner),
                         dontFragment: rules.outerDontFragment(innerDontFragment: packet.dontFragment),
                         ttl: rules.outerTTL(innerTTL: packet.ttl),
                         protocolNumber: IPProtocolNumber.ipip,
                         source: local,
                         destination: destination)
            .write(into: buffer)
        return .send(length: Self.headroom + innerLength, peer: peer, destination: destination,
                     notifyUnreachable: path.takeError(now: now))
    }

    /// IPv6 in IPv4 (RFC 4213 §3, as Linux's sit sends it): protocol 41, the outer TTL and TOS by the
    /// same rules as for IPv4 (the hop limit and traffic class stand in for TTL and TOS). IPv6 packets
    /// are never fragmented on the way: one that does not fit gets "packet too big" — but the inner MTU
    /// never drops below IPv6's 1280, and when the path to the peer is smaller than 1280 + 20, the outer
    /// packet goes without DF so that routers may fragment it (RFC 4213 §3.2, sit's ipip6_tunnel_xmit).
    @inline(__always)
    mutating func encapsulate6(_ buffer: UnsafeMutableRawBufferPointer, inner: UnsafeRawBufferPointer, now: Double) -> Verdict {
        let packet: IPv6PacketView
        do {
            packet = try IPv6PacketView(validating: inner, exactLength: true)
        } catch {
            return .drop(.malformedInner, peer: nil)
        }
        // The kernel's own chatter on the TUN device (MLD reports, to ff02::16): a tunnel to many peers
        // carries no link-scope traffic.
        let destination6 = packet.destination
        if destination6.isMulticast || destination6.isLinkLocal { return .drop(.linkScope, peer: nil) }
        guard let peer = routes.lookup(destination6) else { return .drop(.noRoute, peer: nil) }
        let path = paths[peer]
        if path.isLooping { return .drop(.loop, peer: peer) }
        let pathMTU = mtu(toPeer: peer, now: now)
        let mtu = max(pathMTU, Self.minimumIPv6MTU)
        if inner.count > mtu { return .tooBig(peer: peer, mtu: mtu) }
        let destination = endpoints[peer]
        IPv4HeaderFields(tos: rules.outerTOS(innerTOS: packet.trafficClass),
                         totalLength: Self.headroom + inner.count,
                         identification: path.takeIdentification(now: now, outerLength: Self.headroom + inner.count, inner: inner),
                         dontFragment: rules.pmtudisc && pathMTU >= Self.minimumIPv6MTU,
                         ttl: rules.outerTTL(innerTTL: packet.hopLimit),
                         protocolNumber: IPProtocolNumber.ipv6,
                         source: local,
                         destination: destination)
            .write(into: buffer)
        return .send(length: Self.headroom + inner.count, peer: peer, destination: destination,
                     notifyUnreachable: path.takeError(now: now))
    }

    /// RFC 8200 §5: the least MTU of a link that carries IPv6.
    public static let minimumIPv6MTU = 1280
}
