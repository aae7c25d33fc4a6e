/// Wraps inner packets for the tunnel. Pure and allocation-free: the dataplane reads each inner packet
/// into a reused buffer at offset `headroom`, and `encapsulate` writes the outer header in front of it.
public struct Encapsulator: Sendable {
    public static let headroom = 20

    public enum Verdict: Equatable, Sendable {
        /// Send `length` bytes from the start of the buffer (outer header + inner packet) to `peer`.
        case send(length: Int, peer: Int, destination: IPv4Address)
        case drop(DropReason, peer: Int?)
    }

    public let local: IPv4Address
    public let rules: EncapsulationRules
    public var routes: RoutingTable<Int>
    public var endpoints: [IPv4Address]
    /// Outer IP identification: a per-tunnel counter, so the ID changes per packet even with DF (as
    /// Linux does), which lets a fragmenting middlebox or a capture tell packets apart.
    private var nextIdentification: UInt16

    public init(config: GatewayConfig, initialIdentification: UInt16 = 1) {
        local = config.uplink.address
        rules = EncapsulationRules(config.tunnel)
        routes = config.routingTable
        endpoints = config.peers.map(\.remote)
        nextIdentification = initialIdentification
    }

    /// `buffer[headroom ..< headroom + innerLength]` holds what the TUN delivered.
    @inline(__always)
    public mutating func encapsulate(_ buffer: UnsafeMutableRawBufferPointer, innerLength: Int) -> Verdict {
        let inner = UnsafeRawBufferPointer(rebasing: buffer[Self.headroom..<(Self.headroom + innerLength)])
        guard innerLength >= 1, inner[0] >> 4 == 4 else { return .drop(.notIPv4, peer: nil) }
        let packet: IPv4PacketView
        do {
            packet = try IPv4PacketView(validating: inner, exactLength: true)
        } catch {
            return .drop(.malformedInner, peer: nil)
        }
        guard let peer = routes.lookup(packet.destination) else { return .drop(.noRoute, peer: nil) }
        let destination = endpoints[peer]
        let outerLength = Self.headroom + innerLength
        guard outerLength <= 0xFFFF else { return .drop(.tooBig, peer: peer) }
        IPv4HeaderFields(tos: rules.outerTOS(innerTOS: packet.tos),
                         totalLength: outerLength,
                         identification: nextIdentification,
                         dontFragment: rules.outerDontFragment(innerDontFragment: packet.dontFragment),
                         ttl: rules.outerTTL(innerTTL: packet.ttl),
                         protocolNumber: IPProtocolNumber.ipip,
                         source: local,
                         destination: destination)
            .write(into: buffer)
        nextIdentification &+= 1
        if nextIdentification == 0 { nextIdentification = 1 }   // 0 would let the kernel pick one
        return .send(length: outerLength, peer: peer, destination: destination)
    }
}
