/// Neighbor Discovery messages (RFC 4861 §4.3, §4.4) as a proxy reads and writes them.
public enum NDPOption {
    public static let sourceLinkLayerAddress: UInt8 = 1
    public static let targetLinkLayerAddress: UInt8 = 2
}

/// Why a Neighbor Solicitation or Advertisement was refused (RFC 4861 §7.1.1, §7.1.2).
public enum NDPParseError: Error, Hashable, Sendable {
    case notNDP              // not ICMPv6 type 135/136 right after the IPv6 header
    case hopLimit            // not 255: the message did not come from this link
    case badChecksum
    case badCode
    case truncated           // ICMPv6 length below 24
    case multicastTarget
    case badOption           // an option of length 0, or one that runs past the end
    /// From :: but not to a solicited-node address, or with a source link-layer address option.
    case badUnspecifiedSource
    /// An advertisement to a multicast address with the Solicited flag set.
    case solicitedToMulticast
    /// From a multicast address, which is never a packet's source (RFC 4291 §2.7).
    case multicastSource
    /// From ::1 or an IPv4-mapped address, which never appear on a link (RFC 4291 §2.5.3, §2.5.5.2).
    case martianSource
}

/// A validated Neighbor Solicitation or Advertisement (the IPv6 packet, checked as RFC 4861 requires).
public struct NDPMessageView {
    public let packet: IPv6PacketView
    public let type: UInt8
    public let target: IPv6Address
    /// The link-layer address option (source for a solicitation, target for an advertisement), if any.
    public let linkLayerAddress: MACAddress?
    public let flags: UInt8

    public static let routerFlag: UInt8 = 0x80
    public static let solicitedFlag: UInt8 = 0x40
    public static let overrideFlag: UInt8 = 0x20

    public var isSolicitation: Bool { type == ICMPv6Type.neighborSolicitation }
    public var source: IPv6Address { packet.source }
    public var destination: IPv6Address { packet.destination }

    /// `bytes` starts at the IPv6 header (Ethernet payload; link padding is cut off).
    public init(validating bytes: UnsafeRawBufferPointer) throws(NDPParseError) {
        guard let packet = try? IPv6PacketView(validating: bytes), packet.nextHeader == IPv6NextHeader.icmpv6,
              packet.payloadLength >= 1 else { throw .notNDP }
        let icmp = packet.payload
        type = icmp[0]
        guard type == ICMPv6Type.neighborSolicitation || type == ICMPv6Type.neighborAdvertisement else { throw .notNDP }
        guard packet.hopLimit == 255 else { throw .hopLimit }
        guard !packet.source.isMulticast else { throw .multicastSource }
        guard !packet.source.isLoopback, !packet.source.isIPv4Mapped else { throw .martianSource }
        guard icmp.count >= 24 else { throw .truncated }
        guard InternetChecksum.verifyIPv6Upper(packet.bytes, nextHeader: IPv6NextHeader.icmpv6) else { throw .badChecksum }
        guard icmp[1] == 0 else { throw .badCode }
        target = icmp.ipv6Address(at: 8)
        guard !target.isMulticast else { throw .multicastTarget }
        flags = icmp[4]
        let wanted = type == ICMPv6Type.neighborSolicitation ? NDPOption.sourceLinkLayerAddress : NDPOption.targetLinkLayerAddress
        var found: MACAddress?
        var offset = 24
        while offset < icmp.count {
            guard offset + 2 <= icmp.count else { throw .badOption }
            let length = Int(icmp[offset + 1]) * 8
            guard length > 0, offset + length <= icmp.count else { throw .badOption }
            if icmp[offset] == wanted && length == 8 && found == nil { found = icmp.macAddress(at: offset + 2) }
            offset += length
        }
        linkLayerAddress = found
        if type == ICMPv6Type.neighborSolicitation && packet.source.isUnspecified {
            guard packet.destination.isMulticast, packet.destination == target.solicitedNode, found == nil else {
                throw .badUnspecifiedSource
            }
        }
        if type == ICMPv6Type.neighborAdvertisement && packet.destination.isMulticast && flags & Self.solicitedFlag != 0 {
            throw .solicitedToMulticast
        }
        self.packet = packet
    }
}

public enum NDPBuilder {
    /// A Neighbor Advertisement for `target` with its link-layer address, as an Ethernet frame: from
    /// the target address itself (as ndppd sends a proxy's answer), hop limit 255, Router flag off.
    public static func advertisement(target: IPv6Address, mac: MACAddress, to destination: IPv6Address, destinationMAC: MACAddress,
                                     solicited: Bool, override: Bool, vlanID: UInt16? = nil) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: IPv6PacketView.headerLength + 32)
        packet.withUnsafeMutableBytes { buffer in
            IPv6HeaderFields(payloadLength: 32, nextHeader: IPv6NextHeader.icmpv6, hopLimit: 255, source: target, destination: destination)
                .write(into: buffer)
            let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv6PacketView.headerLength...])
            icmp[0] = ICMPv6Type.neighborAdvertisement
            icmp[4] = (solicited ? NDPMessageView.solicitedFlag : 0) | (override ? NDPMessageView.overrideFlag : 0)
            icmp.setIPv6Address(target, at: 8)
            icmp[24] = NDPOption.targetLinkLayerAddress
            icmp[25] = 1
            icmp.setMACAddress(mac, at: 26)
            icmp.setUInt16(InternetChecksum.computeIPv6Upper(UnsafeRawBufferPointer(buffer), nextHeader: IPv6NextHeader.icmpv6), at: 2)
        }
        return EthernetBuilder.frame(destination: destinationMAC, source: mac, etherType: EtherType.ipv6, vlanID: vlanID, payload: packet)
    }

    /// An unsolicited advertisement to all nodes with Override set (RFC 4861 §7.2.6): what moves the
    /// LAN's neighbour caches to this box, as gratuitous ARP does for IPv4.
    public static func announcement(target: IPv6Address, mac: MACAddress, vlanID: UInt16? = nil) -> [UInt8] {
        advertisement(target: target, mac: mac, to: .allNodes, destinationMAC: IPv6Address.allNodes.multicastMAC,
                      solicited: false, override: true, vlanID: vlanID)
    }
}
