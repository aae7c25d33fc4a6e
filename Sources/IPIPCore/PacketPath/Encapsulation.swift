/// The outer header that carries inner packets between this gateway and one peer, written by the
/// encapsulation flow, so that the flow knows nothing of its layout. Three layers, each present or not,
/// as Linux stacks them in `ip_tunnel_xmit` / `ip6_tnl_xmit` and their `ip_tunnel_encap` ops:
///
///     IPv4 header (20)                    protocol 4 / 41 (ipip, sit), or 17
///   | IPv6 header (40) [+ Destination      next header 4 / 41 (ip6tnl: RFC 2473), or 17; the Tunnel
///     Options with the Tunnel                Encapsulation Limit option in front of what follows, when
///     Encapsulation Limit (8)]               one is sent (ip6tnl's default `encaplimit 4`)
///   [ UDP header (8) [+ GUE header (4)] ]  FOU or GUE (`encap fou|gue`), to the peer's port
///   inner packet (IPv4 or IPv6)
///
/// The receiving side's view of the same headers is `OuterHeaderParser`.
public struct Encapsulation: Sendable, Equatable {
    /// This gateway's address and the peer's, in the underlay's family.
    public enum Endpoints: Sendable, Equatable {
        case ipv4(local: IPv4Address, remote: IPv4Address)
        case ipv6(local: IPv6Address, remote: IPv6Address)
    }

    public let endpoints: Endpoints
    /// FOU or GUE; nil: the inner packet right behind the IP header.
    public let udp: UDPEncapsulation?
    /// An IPv6 underlay's Tunnel Encapsulation Limit (RFC 2473 §4.1.1); nil: none sent.
    public let encapsulationLimit: UInt8?
    /// Whether the UDP header carries a checksum.
    public let udpChecksum: Bool

    public static let ipv4HeaderLength = IPv4PacketView.minimumHeaderLength
    public static let ipv6HeaderLength = IPv6PacketView.headerLength
    /// A Destination Options header holding the Tunnel Encapsulation Limit option and a PadN to 8 bytes.
    public static let encapsulationLimitLength = 8
    public static let udpHeaderLength = 8
    public static let gueHeaderLength = 4
    /// The longest outer header of any kind: what the dataplane leaves in front of each inner packet.
    public static let maximumHeaderLength = ipv6HeaderLength + encapsulationLimitLength + udpHeaderLength + gueHeaderLength

    public init(endpoints: Endpoints, udp: UDPEncapsulation? = nil, encapsulationLimit: UInt8? = nil, udpChecksum: Bool? = nil) {
        self.endpoints = endpoints
        self.udp = udp
        let underlayIPv6 = if case .ipv6 = endpoints { true } else { false }
        self.encapsulationLimit = underlayIPv6 ? encapsulationLimit : nil
        self.udpChecksum = udp == nil ? false : udpChecksum ?? udp!.sendsChecksum(underlayIPv6: underlayIPv6)
    }

    /// Protocol 4 or 41 over IPv4 between two addresses: Linux's ipip and sit.
    public static func plainIPv4(local: IPv4Address, remote: IPv4Address) -> Encapsulation {
        Encapsulation(endpoints: .ipv4(local: local, remote: remote))
    }

    /// One peer's as its config says. An endpoint of the other family than the uplink's (never in a
    /// checked config) is taken in the uplink's family as the all-zero address.
    public init(peer: GatewayConfig.Peer, tunnel: GatewayConfig.Tunnel, local: IPAddress) {
        let endpoints: Endpoints = switch local {
        case .v4(let local): .ipv4(local: local, remote: IPv4Address(peer.remote) ?? .any)
        case .v6(let local): .ipv6(local: local, remote: IPv6Address(peer.remote) ?? .unspecified)
        }
        self.init(endpoints: endpoints, udp: peer.encapsulation, encapsulationLimit: tunnel.encapsulationLimit,
                  udpChecksum: peer.encapsulation?.checksum)
    }

    public var underlayIsIPv6: Bool {
        if case .ipv6 = endpoints { true } else { false }
    }

    /// The peer's endpoint.
    public var remote: IPAddress {
        switch endpoints {
        case .ipv4(_, let remote): .v4(remote)
        case .ipv6(_, let remote): .v6(remote)
        }
    }

    /// How the peer's packets arrive: plainly, on a FOU port or on a GUE port.
    public var arrival: OuterHeaderParser.Arrival {
        switch udp?.kind {
        case nil: .plain
        case .fou: .fou
        case .gue: .gue
        }
    }

    /// The bytes in front of the inner packet, with a Tunnel Encapsulation Limit option or without.
    @inline(__always)
    public func headerLength(withEncapsulationLimit: Bool) -> Int {
        var length = underlayIsIPv6 ? Self.ipv6HeaderLength + (withEncapsulationLimit ? Self.encapsulationLimitLength : 0) : Self.ipv4HeaderLength
        if let udp { length += Self.udpHeaderLength + (udp.kind == .gue ? Self.gueHeaderLength : 0) }
        return length
    }

    /// What the outer header takes of each packet's room: the difference between the underlay's MTU and
    /// the tunnel's (28 for FOU over IPv4, 32 for GUE, 48 for IPv6 with the encapsulation limit, …).
    public var overhead: Int { headerLength(withEncapsulationLimit: encapsulationLimit != nil) }

    /// What the outer header looks like, in iproute2's words: `ipip/sit over IPv4 (protocol 4/41)`,
    /// `fou over IPv4 (encap-dport 5555 …)`, `ip6tnl over IPv6 (next header 4/41, encaplimit 4)`, and its length.
    public var summary: String {
        let underlay = underlayIsIPv6 ? "IPv6" : "IPv4"
        let limit = underlayIsIPv6 ? ", encaplimit " + (encapsulationLimit.map { "\($0)" } ?? "none") : ""
        guard let udp else {
            return (underlayIsIPv6 ? "ip6tnl over IPv6 (next header 4/41\(limit))" : "ipip/sit over IPv4 (protocol 4/41)") + ", \(overhead) bytes"
        }
        let ports = "encap-dport \(udp.destinationPort)" + (udp.destinationPort6.map { ", IPv6 inside: \($0)" } ?? "")
        return "\(udp.kind.rawValue) over \(underlay) (\(ports), encap-sport \(udp.sourcePort), " + (udpChecksum ? "encap-csum" : "noencap-csum")
            + "\(limit)), \(overhead) bytes"
    }

    /// The fields of one outer header that the encapsulation rules decide per packet.
    struct OuterFields {
        /// IPv4's TOS, IPv6's traffic class.
        var trafficClass: UInt8
        /// IPv4 underlay only.
        var identification: UInt16
        /// IPv4 underlay only.
        var dontFragment: Bool
        /// IPv4's TTL, IPv6's hop limit.
        var hopLimit: UInt8
        var innerIsIPv6: Bool
        /// The inner flow's hash: FOU/GUE source port (`encap-sport auto`), IPv6 flow label.
        var flowHash: UInt32
        /// The Tunnel Encapsulation Limit this packet carries (IPv6 underlay), or none.
        var encapsulationLimit: UInt8?
    }

    /// Writes the outer header at the start of `packet`, which holds the header and then the inner
    /// packet (`headerLength(withEncapsulationLimit: fields.encapsulationLimit != nil)` bytes, then the rest).
    @inline(__always)
    func write(_ fields: OuterFields, into packet: UnsafeMutableRawBufferPointer) {
        let innerProtocol = fields.innerIsIPv6 ? IPProtocolNumber.ipv6 : IPProtocolNumber.ipip
        let carried = udp == nil ? innerProtocol : IPProtocolNumber.udp
        var offset: Int
        switch endpoints {
        case let .ipv4(local, remote):
            IPv4HeaderFields(tos: fields.trafficClass, totalLength: packet.count, identification: fields.identification,
                             dontFragment: fields.dontFragment, ttl: fields.hopLimit, protocolNumber: carried,
                             source: local, destination: remote)
                .write(into: packet)
            offset = Self.ipv4HeaderLength
        case let .ipv6(local, remote):
            packet.setUInt32(6 << 28 | UInt32(fields.trafficClass) << 20 | FlowHash.flowLabel(fields.flowHash), at: 0)
            packet.setUInt16(UInt16(truncatingIfNeeded: packet.count - Self.ipv6HeaderLength), at: 4)
            packet[7] = fields.hopLimit
            packet.setIPv6Address(local, at: 8)
            packet.setIPv6Address(remote, at: 24)
            offset = Self.ipv6HeaderLength
            if let limit = fields.encapsulationLimit {
                // As ip6tnl's init_tel_txopt: next header, length 0 (8 bytes), option 4 of length 1, PadN of 1.
                packet[6] = IPv6ExtensionHeaders.destinationOptions
                packet.setUInt32(UInt32(carried) << 24 | UInt32(IPv6Options.tunnelEncapsulationLimit) << 8 | 1, at: offset)
                packet.setUInt32(UInt32(limit) << 24 | UInt32(IPv6Options.padN) << 16 | 1 << 8, at: offset + 4)
                offset += Self.encapsulationLimitLength
            } else {
                packet[6] = carried
            }
        }
        guard let udp else { return }
        let sourcePort: UInt16 = switch udp.sourcePort {
        case .auto: FlowHash.sourcePort(fields.flowHash)
        case .fixed(let port): port
        }
        let udpLength = packet.count - offset
        packet.setUInt16(sourcePort, at: offset)
        packet.setUInt16(udp.destinationPort(innerIPv6: fields.innerIsIPv6), at: offset + 2)
        packet.setUInt16(UInt16(truncatingIfNeeded: udpLength), at: offset + 4)
        packet.setUInt16(0, at: offset + 6)
        if udp.kind == .gue {
            // Variant 0, no control message, no options, the inner protocol, no flags (gue_build_header).
            packet.setUInt32(UInt32(innerProtocol) << 16, at: offset + Self.udpHeaderLength)
        }
        if udpChecksum {
            let bytes = UnsafeRawBufferPointer(packet)
            let pseudo = underlayIsIPv6
                ? InternetChecksum.pseudoHeaderSum(ofIPv6: bytes, nextHeader: IPProtocolNumber.udp, transportLength: udpLength)
                : InternetChecksum.pseudoHeaderSum(ofIPv4: bytes, protocol: IPProtocolNumber.udp, transportLength: udpLength)
            let checksum = ~UInt16(InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: bytes[offset...]), initial: pseudo))
            // 0 means "no checksum" (RFC 768): a computed 0 is sent as its other form.
            packet.setUInt16(checksum == 0 ? 0xFFFF : checksum, at: offset + 6)
        }
    }

    /// Which family an outer header says its inner packet is.
    public enum InnerFamily: Sendable, Equatable { case ipv4, ipv6 }
}

/// The options of IPv6 Hop-by-Hop and Destination Options headers (RFC 8200 §4.2) that ipipd knows.
public enum IPv6Options {
    public static let pad1: UInt8 = 0
    public static let padN: UInt8 = 1
    /// RFC 2473 §5.1: a one-byte value, how many more nested encapsulations the packet may enter.
    public static let tunnelEncapsulationLimit: UInt8 = 4

    public enum Verdict: Equatable { case acceptable, refused, malformed }

    /// Walks the options of the header at `header` (its first two bytes are next header and length) and
    /// judges them as a receiver that processes none but padding and the encapsulation limit would:
    /// unknown options are skipped only where their type says so (the two high bits 00, RFC 8200 §4.2);
    /// padding is zeros, at most 7 bytes in a row (as Linux checks it); an encapsulation limit is one byte.
    /// `limitOffset` gets where the encapsulation limit's value lies, if there is one.
    @inline(__always)
    static func judge(_ header: UnsafeRawBufferPointer, limitOffset: inout Int?) -> Verdict {
        var index = 2, padding = 0
        while index < header.count {
            let type = header[index]
            if type == pad1 {
                padding += 1
                guard padding <= 7 else { return .refused }
                index += 1
                continue
            }
            guard index + 2 <= header.count else { return .malformed }
            let length = Int(header[index + 1])
            guard index + 2 + length <= header.count else { return .malformed }
            switch type {
            case padN:
                padding += length + 2
                guard padding <= 7 else { return .refused }
                for byte in header[(index + 2)..<(index + 2 + length)] where byte != 0 { return .refused }
            case tunnelEncapsulationLimit:
                guard length == 1 else { return .malformed }
                limitOffset = index + 2
                padding = 0
            default:
                guard type >> 6 == 0 else { return .refused }
                padding = 0
            }
            index += 2 + length
        }
        return .acceptable
    }
}

/// What a captured outer packet is, as this gateway receives them: IPv4 or IPv6 to `uplink.address`,
/// protocol 4 or 41 right behind the IP header (and its extension headers), or UDP to one of the ports
/// in `fou` — FOU (the port says the inner family) or GUE (its header says it). Every length and offset
/// is checked against what was captured; a UDP checksum other than 0 is verified unless the kernel did.
public struct OuterHeaderParser: Sendable {
    /// How a packet arrived; a peer's packets must arrive as its `encap` says.
    public enum Arrival: Sendable, Equatable {
        case plain
        case fou
        case gue
    }

    public enum Parsed {
        /// An inner packet of `family` at `inner`, sent by the endpoint `source`, the outer ECN `ecn`.
        case tunnelled(source: IPAddress, inner: Range<Int>, family: Encapsulation.InnerFamily, ecn: ECN, arrival: Arrival)
        /// A fragment of an outer packet from `source`: to be reassembled first.
        case fragment(source: IPAddress)
        /// An ICMP (IPv4 underlay) or ICMPv6 (IPv6 underlay) message to this gateway, starting at `message`:
        /// perhaps a router's error about one of its outer packets.
        case icmp(message: Int)
        /// Refused, for `reason`; `source` when the header was read far enough to know it.
        case invalid(DropReason, source: IPAddress?)
    }

    /// What the kernel says of the captured packet's UDP checksum.
    public enum ChecksumState: Sendable, Equatable {
        case unknown
        /// VIRTIO_NET_HDR_F_DATA_VALID: verified.
        case verified
        /// Left for the NIC to complete (a sender on this host): `start` and `offset` from the outer header.
        case partial(start: Int, offset: Int)
    }

    public let local: IPAddress
    private let local4: IPv4Address
    private let local6: IPv6Address
    private let ports: [FOUPort]

    public init(local: IPAddress, ports: [FOUPort]) {
        self.local = local
        local4 = IPv4Address(local) ?? .any
        local6 = IPv6Address(local) ?? .unspecified
        self.ports = ports
    }

    /// Parses the outer header at the start of `packet` (which ends where the capture ended). A partial
    /// UDP checksum is completed in place.
    @inline(__always)
    public func parse(_ packet: UnsafeMutableRawBufferPointer, checksum: ChecksumState = .unknown) -> Parsed {
        guard let first = packet.first else { return .invalid(.malformedOuter, source: nil) }
        switch local {
        case .v4: return first >> 4 == 4 ? parseIPv4(packet, checksum: checksum) : .invalid(.malformedOuter, source: nil)
        case .v6: return first >> 4 == 6 ? parseIPv6(packet, checksum: checksum) : .invalid(.malformedOuter, source: nil)
        }
    }

    @inline(__always)
    private func parseIPv4(_ packet: UnsafeMutableRawBufferPointer, checksum: ChecksumState) -> Parsed {
        let outer: IPv4PacketView
        do {
            outer = try IPv4PacketView(validating: UnsafeRawBufferPointer(packet))
        } catch {
            return .invalid(.malformedOuter, source: nil)
        }
        let source = IPAddress.v4(outer.source)
        // Sent to another address: no peer's traffic to us, whoever it claims to come from.
        guard outer.destination == local4 else { return .invalid(.notForUs, source: nil) }
        let transport = outer.protocolNumber
        switch transport {
        case IPProtocolNumber.ipip, IPProtocolNumber.ipv6, IPProtocolNumber.udp: break
        case IPProtocolNumber.icmp: return outer.isFragment ? .invalid(.icmpIgnored, source: nil) : .icmp(message: outer.headerLength)
        default: return .invalid(.malformedOuter, source: source)
        }
        guard !outer.isFragment else { return .fragment(source: source) }
        return carried(transport, in: packet, at: outer.headerLength, end: outer.totalLength, source: source, ecn: outer.ecn,
                       checksum: checksum)
    }

    /// The extension headers an IPv6 outer packet may carry before what it carries: as many as an
    /// inner IPv6 packet (`IPv6ExtensionHeaders`), within the same bounds.
    @inline(__always)
    private func parseIPv6(_ packet: UnsafeMutableRawBufferPointer, checksum: ChecksumState) -> Parsed {
        guard packet.count >= IPv6PacketView.headerLength else { return .invalid(.malformedOuter, source: nil) }
        let bytes = UnsafeRawBufferPointer(packet)
        let payloadLength = Int(bytes.uint16(at: 4))
        let end = IPv6PacketView.headerLength + payloadLength
        // A payload length of 0 is a jumbogram's, which no link ipipd serves carries.
        guard payloadLength > 0, end <= packet.count else { return .invalid(.malformedOuter, source: nil) }
        let source = IPAddress.v6(bytes.ipv6Address(at: 8))
        guard bytes.ipv6Address(at: 24) == local6 else { return .invalid(.notForUs, source: nil) }
        let ecn = ECN(rawValue: UInt8(truncatingIfNeeded: bytes.uint16(at: 0) >> 4) & 0b11)!
        var next = bytes[6], offset = IPv6PacketView.headerLength, count = 0
        while true {
            switch next {
            case IPProtocolNumber.ipip, IPProtocolNumber.ipv6, IPProtocolNumber.udp:
                return carried(next, in: packet, at: offset, end: end, source: source, ecn: ecn, checksum: checksum)
            case IPv6NextHeader.icmpv6:
                return .icmp(message: offset)
            case IPv6ExtensionHeaders.fragment:
                return .fragment(source: source)
            case IPv6ExtensionHeaders.hopByHop, IPv6ExtensionHeaders.destinationOptions, IPv6ExtensionHeaders.routing:
                guard next != IPv6ExtensionHeaders.hopByHop || count == 0 else { return .invalid(.malformedOuter, source: source) }
                guard offset + 8 <= end else { return .invalid(.malformedOuter, source: source) }
                let length = (Int(bytes[offset + 1]) + 1) * 8
                count += 1
                guard count <= IPv6ExtensionHeaders.maximumCount,
                      offset + length - IPv6PacketView.headerLength <= IPv6ExtensionHeaders.maximumChainBytes else {
                    return .invalid(.outerOptions, source: source)
                }
                guard offset + length <= end else { return .invalid(.malformedOuter, source: source) }
                let header = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
                if next == IPv6ExtensionHeaders.routing {
                    // A routing header with segments left asks this node to send the packet on: not ours to do.
                    guard header[3] == 0 else { return .invalid(.outerOptions, source: source) }
                } else {
                    var limit: Int?
                    switch IPv6Options.judge(header, limitOffset: &limit) {
                    case .acceptable: break
                    case .refused: return .invalid(.outerOptions, source: source)
                    case .malformed: return .invalid(.malformedOuter, source: source)
                    }
                }
                next = header[0]
                offset += length
            default:
                return .invalid(.malformedOuter, source: source)
            }
        }
    }

    /// What lies at `offset` (up to `end`), of protocol `transport`: an inner packet, or a UDP header before one.
    @inline(__always)
    private func carried(_ transport: UInt8, in packet: UnsafeMutableRawBufferPointer, at offset: Int, end: Int, source: IPAddress,
                         ecn: ECN, checksum: ChecksumState) -> Parsed {
        switch transport {
        case IPProtocolNumber.ipip: return .tunnelled(source: source, inner: offset..<end, family: .ipv4, ecn: ecn, arrival: .plain)
        case IPProtocolNumber.ipv6: return .tunnelled(source: source, inner: offset..<end, family: .ipv6, ecn: ecn, arrival: .plain)
        default: break
        }
        let bytes = UnsafeRawBufferPointer(packet)
        guard offset + Encapsulation.udpHeaderLength <= end else { return .invalid(.malformedOuter, source: source) }
        let udpLength = Int(bytes.uint16(at: offset + 4))
        // The datagram ends where the UDP header says, within the IP packet (trailing bytes are the link's padding).
        guard udpLength >= Encapsulation.udpHeaderLength, offset + udpLength <= end else { return .invalid(.malformedOuter, source: source) }
        let udpEnd = offset + udpLength
        let destinationPort = bytes.uint16(at: offset + 2)
        guard let port = ports.first(where: { $0.port == destinationPort }) else { return .invalid(.notForUs, source: nil) }
        if bytes.uint16(at: offset + 6) != 0 {
            switch checksum {
            case .verified:
                break
            case let .partial(start, checksumOffset):
                // The sender's stack left the sum to its NIC: the field holds the pseudo-header's sum.
                guard start == offset, checksumOffset == 6,
                      ChecksumOffload.complete(UnsafeMutableRawBufferPointer(rebasing: packet[0..<udpEnd]), start: start,
                                               offset: checksumOffset) else {
                    return .invalid(.unsupportedOffload, source: source)
                }
            case .unknown:
                let datagram = UnsafeRawBufferPointer(rebasing: bytes[0..<udpEnd])
                let pseudo = local.isIPv6
                    ? InternetChecksum.pseudoHeaderSum(ofIPv6: datagram, nextHeader: IPProtocolNumber.udp, transportLength: udpLength)
                    : InternetChecksum.pseudoHeaderSum(ofIPv4: datagram, protocol: IPProtocolNumber.udp, transportLength: udpLength)
                guard InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: datagram[offset...]), initial: pseudo) == 0xFFFF else {
                    return .invalid(.malformedOuter, source: source)
                }
            }
        }
        let payload = offset + Encapsulation.udpHeaderLength
        switch port.payload {
        case .fou(let innerProtocol):
            return .tunnelled(source: source, inner: payload..<udpEnd, family: innerProtocol == IPProtocolNumber.ipv6 ? .ipv6 : .ipv4,
                              ecn: ecn, arrival: .fou)
        case .gue:
            guard payload + Encapsulation.gueHeaderLength <= udpEnd else { return .invalid(.malformedOuter, source: source) }
            let first = bytes[payload]
            switch first >> 6 {
            case 0:
                // Variant 0: version, C, Hlen; the inner protocol; flags; then Hlen words of optional fields.
                let fields = Int(first & 0x1F) * 4
                let innerStart = payload + Encapsulation.gueHeaderLength + fields
                guard innerStart <= udpEnd else { return .invalid(.malformedOuter, source: source) }
                guard first & 0x20 == 0, GUEFlags.acceptable(flags: bytes.uint16(at: payload + 2),
                                                             fields: UnsafeRawBufferPointer(rebasing: bytes[(payload + 4)..<innerStart])) else {
                    return .invalid(.unsupportedGUE, source: source)
                }
                switch bytes[payload + 1] {
                case IPProtocolNumber.ipip: return .tunnelled(source: source, inner: innerStart..<udpEnd, family: .ipv4, ecn: ecn, arrival: .gue)
                case IPProtocolNumber.ipv6: return .tunnelled(source: source, inner: innerStart..<udpEnd, family: .ipv6, ecn: ecn, arrival: .gue)
                default: return .invalid(.unsupportedGUE, source: source)
                }
            case 1:
                // Variant 1: the inner IP header right behind the UDP header, its version nibble (4: 0100, 6: 0110) saying which.
                switch first >> 4 {
                case 4: return .tunnelled(source: source, inner: payload..<udpEnd, family: .ipv4, ecn: ecn, arrival: .gue)
                case 6: return .tunnelled(source: source, inner: payload..<udpEnd, family: .ipv6, ecn: ecn, arrival: .gue)
                default: return .invalid(.unsupportedGUE, source: source)
                }
            default:
                return .invalid(.unsupportedGUE, source: source)
            }
        }
    }
}

/// The flags of a GUE variant 0 header that a receiver may meet, as Linux's validate_gue_flags takes them:
/// none, or the private-data flag whose 4-byte field holds no flags ipipd would have to act on. Remote
/// checksum offload (a private flag) is refused: ipipd does not complete checksums at a sender's word.
enum GUEFlags {
    static let privateData: UInt16 = 0x0001

    static func acceptable(flags: UInt16, fields: UnsafeRawBufferPointer) -> Bool {
        guard flags & ~privateData == 0 else { return false }
        guard flags & privateData != 0 else { return true }
        return fields.count >= 4 && fields.uint32(at: 0) == 0
    }
}
