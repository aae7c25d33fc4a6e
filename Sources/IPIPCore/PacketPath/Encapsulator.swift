/// Wraps inner packets for the tunnel. Pure and allocation-free: the dataplane reads each inner packet
/// into a reused buffer at offset `headroom`, and `encapsulate` writes the outer header in front of it.
public struct Encapsulator: Sendable {
    public static let headroom = 20

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
    public private(set) var routes: RoutingTable<Int>
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
        guard innerLength >= 1, inner[0] >> 4 == 4 else { return .drop(.notIPv4, peer: nil) }
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
        if path.isLooping || (packet.protocolNumber == IPProtocolNumber.ipip && packet.source == local) {
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
                         identification: path.takeIdentification(now: now),
                         dontFragment: rules.outerDontFragment(innerDontFragment: packet.dontFragment),
                         ttl: rules.outerTTL(innerTTL: packet.ttl),
                         protocolNumber: IPProtocolNumber.ipip,
                         source: local,
                         destination: destination)
            .write(into: buffer)
        return .send(length: Self.headroom + innerLength, peer: peer, destination: destination,
                     notifyUnreachable: path.takeError(now: now))
    }
}
