/// A keyed hash of an inner packet's flow — addresses, protocol and, unless it is a fragment, ports — for
/// what the outer header may vary per flow but must keep for each: the UDP source port of FOU and GUE
/// (`encap-sport auto`) and the IPv6 underlay's flow label (RFC 6437, Linux's auto flow labels). Routers'
/// ECMP and NICs' RSS then spread different flows over paths and queues, and keep each flow on one (its
/// packets stay in order). Fragments are hashed without ports, as the kernel's flow dissector does, so
/// all pieces of a datagram go the same way. The key is drawn per process: a sender cannot aim its flows
/// at one path.
public struct FlowHash: Sendable {
    private let key0: UInt64
    private let key1: UInt64

    public init(key0: UInt64 = .random(in: .min ... .max), key1: UInt64 = .random(in: .min ... .max)) {
        self.key0 = key0
        self.key1 = key1
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        x = (x ^ (x >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return x ^ (x >> 33)
    }

    /// The flow hash of the inner packet `packet` (checked whole by the caller).
    @inline(__always)
    public func hash(_ packet: UnsafeRawBufferPointer) -> UInt32 {
        var x = key0
        var ports: UInt64 = 0
        if packet[0] >> 4 == 4 {
            let transport = packet[9]
            x ^= UInt64(packet.uint32(at: 12)) << 32 | UInt64(packet.uint32(at: 16))
            let headerLength = Int(packet[0] & 0x0F) * 4
            let fragment = packet.uint16(at: 6) & 0x3FFF != 0
            if !fragment && Self.hasPorts(transport) && packet.count >= headerLength + 4 {
                ports = UInt64(packet.uint32(at: headerLength))
            }
            x = Self.mix(x) ^ (UInt64(transport) << 32 | ports) ^ key1
        } else {
            let transport = packet[6]
            x ^= packet.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            x = Self.mix(x) ^ packet.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            x = Self.mix(x) ^ packet.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            x = Self.mix(x) ^ packet.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
            if Self.hasPorts(transport) && packet.count >= IPv6PacketView.headerLength + 4 {
                ports = UInt64(packet.uint32(at: IPv6PacketView.headerLength))
            }
            x = Self.mix(x) ^ (UInt64(transport) << 32 | ports) ^ key1
        }
        return UInt32(truncatingIfNeeded: Self.mix(x))
    }

    @inline(__always)
    private static func hasPorts(_ transport: UInt8) -> Bool {
        transport == IPProtocolNumber.tcp || transport == IPProtocolNumber.udp || transport == 132 || transport == 136   // SCTP, UDP-Lite
    }

    /// The kernel's default local port range (net.ipv4.ip_local_port_range, 32768–60999), where
    /// `udp_flow_src_port` puts the source ports of `encap-sport auto`.
    public static let sourcePorts: ClosedRange<UInt16> = 32768...60999

    /// A source port for the flow: spread over `sourcePorts` by multiplying, as udp_flow_src_port does.
    @inline(__always)
    public static func sourcePort(_ hash: UInt32) -> UInt16 {
        let span = UInt64(sourcePorts.upperBound - sourcePorts.lowerBound) + 1
        return sourcePorts.lowerBound + UInt16(truncatingIfNeeded: (UInt64(hash) &* span) >> 32)
    }

    /// A flow label for the flow: its 20 low bits, rotated as ip6_make_flowlabel does.
    @inline(__always)
    public static func flowLabel(_ hash: UInt32) -> UInt32 {
        (hash << 16 | hash >> 16) & 0xF_FFFF
    }
}
