/// Wraps inner packets for the tunnel. Pure and allocation-free: the dataplane reads each inner packet
/// into a reused buffer at offset `headroom`, and `encapsulate` writes the peer's outer header in front of it.
public struct Encapsulator: Sendable {
    /// What the dataplane leaves in front of each inner packet for the outer header: room for the longest.
    public static let headroom = Encapsulation.maximumHeaderLength

    public enum Verdict: Equatable, Sendable {
        /// Send `packet`, a range of the buffer (outer header + inner packet), to `peer`. With
        /// `notifyUnreachable`, a router recently reported the peer unreachable (RFC 2003 §4): the packet
        /// still goes, and its sender is told "host unreachable".
        case send(packet: Range<Int>, peer: Int, notifyUnreachable: Bool)
        /// As `send`, but the outer IPv6 packet is larger than the path to the peer, `outerMTU`: an inner
        /// IPv6 packet that fits the least IPv6 MTU must still get through (RFC 2473 §7.1), in outer fragments.
        case sendInFragments(packet: Range<Int>, peer: Int, notifyUnreachable: Bool, outerMTU: Int)
        /// The inner packet has DF set and exceeds `mtu`, the inner MTU towards `peer`: its sender
        /// must get "fragmentation needed" with that MTU.
        case tooBig(peer: Int, mtu: Int)
        /// The inner packet exceeds `mtu` and may be fragmented: split it, then encapsulate each piece.
        case fragment(peer: Int, mtu: Int)
        /// An inner IPv6 packet whose Tunnel Encapsulation Limit is 0 (RFC 2473 §4.1.1): its sender gets an
        /// ICMPv6 parameter problem pointing at the limit, `pointer` bytes into the packet.
        case encapsulationLimitReached(peer: Int, pointer: Int)
        case drop(DropReason, peer: Int?)
    }

    public let local: IPAddress
    public private(set) var rules: EncapsulationRules
    public let tunnelMTU: Int
    /// The uplink's MTU, which no outer packet may exceed; nil: not known (the tunnel MTU alone counts).
    public let uplinkMTU: Int?
    public private(set) var routes: PrefixTable<Int>
    /// Each peer's outer header, by peer index.
    public private(set) var encapsulations: [Encapsulation]
    /// Each peer's inner MTU before any router's report: the tunnel MTU, less where its outer header is longer.
    private var peerMTUs: [Int]
    public private(set) var paths: [PeerPathState]
    /// The UDP ports outer packets go to: a UDP packet of ours to one of them, read back from the TUN
    /// device, is a loop.
    private var outerPorts: [UInt16]
    private let flowHash: FlowHash

    public init(config: GatewayConfig, tunnelMTU: Int, uplinkMTU: Int? = nil, paths: [PeerPathState]? = nil, flowHash: FlowHash = FlowHash()) {
        local = config.uplink.address
        rules = EncapsulationRules(config.tunnel)
        self.tunnelMTU = tunnelMTU
        self.uplinkMTU = uplinkMTU
        routes = config.routingTable
        encapsulations = config.encapsulations
        peerMTUs = []
        outerPorts = []
        self.paths = paths ?? config.peers.map { _ in PeerPathState() }
        self.flowHash = flowHash
        peerMTUs = encapsulations.map(peerMTU)
        outerPorts = Self.ports(encapsulations)
    }

    /// Takes the peers, routes and options of a reloaded config; each peer's IP ID sequence goes on.
    public mutating func reconfigure(_ config: GatewayConfig, paths: [PeerPathState]) {
        rules = EncapsulationRules(config.tunnel)
        routes = config.routingTable
        encapsulations = config.encapsulations
        peerMTUs = encapsulations.map(peerMTU)
        outerPorts = Self.ports(encapsulations)
        self.paths = paths
    }

    private func peerMTU(_ encapsulation: Encapsulation) -> Int {
        Self.innerMTU(encapsulation, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU)
    }

    private static func ports(_ encapsulations: [Encapsulation]) -> [UInt16] {
        Array(Set(encapsulations.flatMap { [$0.udp?.destinationPort, $0.udp?.destinationPort6].compactMap { $0 } })).sorted()
    }

    /// The largest inner packet whose outer packet fits the uplink (when its MTU is known), the longest
    /// packet of the underlay (65,535 bytes of IPv4, or of IPv6 payload) and the tunnel MTU.
    public static func innerMTU(_ encapsulation: Encapsulation, tunnelMTU: Int, uplinkMTU: Int?) -> Int {
        let largest = PacketSlot.maximumPacketLength + (encapsulation.underlayIsIPv6 ? IPv6PacketView.headerLength : 0)
        return min(tunnelMTU, (uplinkMTU ?? largest) - encapsulation.overhead, largest - encapsulation.overhead)
    }

    /// The largest inner packet that reaches `peer` without fragmentation.
    @inline(__always)
    public func mtu(toPeer peer: Int, now: Double) -> Int {
        let mtu = peerMTUs[peer]
        return min(mtu, paths[peer].currentMTU(now: now) ?? mtu)
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
        // IPv6 in IPv4 as Linux's sit sends it (RFC 4213 §3), in IPv6 as ip6tnl does (RFC 2473): the hop
        // limit and traffic class stand in for TTL and TOS.
        case 6:
            guard let packet = IPv6PacketView.checkedInner(inner) else { return .drop(.malformedInner, peer: nil) }
            return encapsulate(buffer, packet, inner: inner, now: now)
        default: return .drop(.notIP, peer: nil)
        }
    }

    /// The one flow for both inner families (`ip_tunnel_xmit`'s, `ip6_tnl_xmit`'s): the peer by
    /// longest-prefix match, the loop and MTU checks, the outer header by the RFC 2003 / RFC 2473 / RFC 6040
    /// rules, as the peer's encapsulation lays it out. Where the families differ, `Inner` says.
    @inline(__always)
    mutating func encapsulate<Inner: InnerPacket>(_ buffer: UnsafeMutableRawBufferPointer, _ packet: Inner,
                                                  inner: UnsafeRawBufferPointer, now: Double) -> Verdict {
        if packet.isLinkScoped { return .drop(.linkScope, peer: nil) }
        guard let peer = routes.lookup(inFamilyOf: packet.destination) else { return .drop(.noRoute, peer: nil) }
        let path = paths[peer]
        // One of our own outer packets came back through the TUN: the route to the endpoint leads into
        // the tunnel. Caught per packet here; the route watcher then stops the peer's traffic.
        if path.isLooping || packet.isOuterPacket(from: local, ports: outerPorts) { return .drop(.loop, peer: peer) }
        let encapsulation = encapsulations[peer]
        var pathMTU = mtu(toPeer: peer, now: now)
        var encapsulationLimit = encapsulation.encapsulationLimit
        if encapsulation.underlayIsIPv6, let (offset, limit) = packet.tunnelEncapsulationLimit {
            // RFC 2473 §4.1.1, as ip6tnl: the packet may enter `limit` more tunnels, this one included.
            guard limit > 0 else { return .encapsulationLimitReached(peer: peer, pointer: offset) }
            if encapsulationLimit == nil { pathMTU -= Encapsulation.encapsulationLimitLength }
            encapsulationLimit = limit - 1
        }
        switch packet.fit(length: inner.count, pathMTU: pathMTU) {
        case .fits: break
        case .tooBig(let mtu): return .tooBig(peer: peer, mtu: mtu)
        case .fragment(let mtu): return .fragment(peer: peer, mtu: mtu)
        }
        let headerLength = encapsulation.headerLength(withEncapsulationLimit: encapsulationLimit != nil)
        let range = (Self.headroom - headerLength)..<(Self.headroom + inner.count)
        let outerLength = range.count
        let ipv6Underlay = encapsulation.underlayIsIPv6
        let identification: UInt16
        if ipv6Underlay {
            path.noteSent(outerLength: outerLength, inner: inner)
            identification = 0
        } else {
            // A counter per peer, so the ID changes per packet even with DF (as Linux does), which lets a
            // fragmenting middlebox or a capture tell packets apart.
            identification = path.takeIdentification(now: now, outerLength: outerLength, inner: inner)
        }
        let hashed = ipv6Underlay || encapsulation.udp?.sourcePort == .auto
        encapsulation.write(.init(trafficClass: rules.outerTOS(innerTOS: packet.trafficClass),
                                  identification: identification,
                                  dontFragment: packet.outerDontFragment(rules, pathMTU: pathMTU),
                                  hopLimit: rules.outerTTL(innerTTL: packet.hopLimit),
                                  innerIsIPv6: Inner.isIPv6,
                                  flowHash: hashed ? flowHash.hash(inner) : 0,
                                  encapsulationLimit: encapsulationLimit),
                            into: UnsafeMutableRawBufferPointer(rebasing: buffer[range]))
        let notify = path.takeError(now: now)
        // An IPv6 packet within the least MTU that the path to the peer cannot carry whole (RFC 2473 §7.1).
        if ipv6Underlay && inner.count > pathMTU {
            return .sendInFragments(packet: range, peer: peer, notifyUnreachable: notify, outerMTU: pathMTU + headerLength)
        }
        return .send(packet: range, peer: peer, notifyUnreachable: notify)
    }

    /// RFC 8200 §5: the least MTU of a link that carries IPv6.
    public static let minimumIPv6MTU = 1280
}
