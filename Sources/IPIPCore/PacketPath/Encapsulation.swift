/// The outer header that carries inner packets between this gateway and its peers: written by the
/// encapsulation flow, parsed by the decapsulation flow, so that the flows know nothing of its layout.
/// One kind today — an IPv4 header without options, protocol 4 over an IPv4 inner packet (RFC 2003)
/// and 41 over IPv6 (RFC 4213), as Linux's ipip and sit send it. A new outer header (UDP, an IPv6
/// underlay) is a new case here, with its tests; the flows stay one.
public enum Encapsulation: Sendable, Equatable {
    case ipInIPv4

    /// The longest outer header of any case: what the dataplane leaves in front of each inner packet.
    public static let maximumHeaderLength = IPv4PacketView.minimumHeaderLength

    @inline(__always)
    public var headerLength: Int {
        switch self {
        case .ipInIPv4: IPv4PacketView.minimumHeaderLength
        }
    }

    /// The fields of one outer header that the encapsulation rules decide.
    struct OuterFields {
        var tos: UInt8
        var identification: UInt16
        var dontFragment: Bool
        var ttl: UInt8
        /// 4 or 41: the inner packet's family.
        var innerProtocol: UInt8
        var source: IPv4Address
        var destination: IPv4Address
    }

    /// Writes the outer header at the start of `buffer`, in front of `innerLength` bytes of inner packet
    /// (which start at `headerLength`).
    @inline(__always)
    func write(_ fields: OuterFields, innerLength: Int, into buffer: UnsafeMutableRawBufferPointer) {
        switch self {
        case .ipInIPv4:
            IPv4HeaderFields(tos: fields.tos, totalLength: headerLength + innerLength, identification: fields.identification,
                             dontFragment: fields.dontFragment, ttl: fields.ttl, protocolNumber: fields.innerProtocol,
                             source: fields.source, destination: fields.destination)
                .write(into: buffer)
        }
    }

    /// Which family an outer header says its inner packet is.
    enum InnerFamily { case ipv4, ipv6 }

    /// What a captured packet's outer header says.
    enum Parsed {
        /// An inner packet of `family` at `inner`, sent by the endpoint `source`, the outer ECN `ecn`.
        case tunnelled(source: IPv4Address, inner: Range<Int>, family: InnerFamily, ecn: ECN)
        /// A fragment of an outer packet from `source`: to be reassembled first.
        case fragment(source: IPv4Address)
        /// An ICMP message to this gateway: perhaps a router's error about one of its outer packets.
        case icmp(IPv4PacketView)
        case invalid(DropReason)
    }

    /// Parses the outer header at the start of `packet` (which ends where the capture ended), sent to `local`.
    @inline(__always)
    func parse(_ packet: UnsafeRawBufferPointer, local: IPv4Address) -> Parsed {
        switch self {
        case .ipInIPv4:
            let outer: IPv4PacketView
            do {
                outer = try IPv4PacketView(validating: packet)
            } catch {
                return .invalid(.malformedOuter)
            }
            guard outer.destination == local else { return .invalid(.notForUs) }
            let family: InnerFamily
            switch outer.protocolNumber {
            case IPProtocolNumber.ipip: family = .ipv4
            case IPProtocolNumber.ipv6: family = .ipv6
            case IPProtocolNumber.icmp: return .icmp(outer)
            default: return .invalid(.malformedOuter)
            }
            guard !outer.isFragment else { return .fragment(source: outer.source) }
            return .tunnelled(source: outer.source, inner: outer.headerLength..<outer.totalLength, family: family, ecn: outer.ecn)
        }
    }
}
