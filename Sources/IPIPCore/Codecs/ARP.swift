public enum ARPParseError: Error, Hashable, Sendable {
    case truncated
    case notEthernetIPv4   // hardware type, protocol type or address lengths are not Ethernet/IPv4
    case badOperation
}

/// What an ARP packet means on the wire (RFC 826, RFC 5227).
public enum ARPKind: Sendable, Equatable {
    case request            // who-has target, tell sender
    case reply
    case gratuitous         // sender IP == target IP: an announcement (request or reply form)
    case probe              // RFC 5227 probe: sender IP 0.0.0.0, asking whether target is in use
}

/// A view of an Ethernet/IPv4 ARP packet (the 28 bytes after the Ethernet header).
public struct ARPPacketView {
    public static let length = 28
    public static let operationRequest: UInt16 = 1
    public static let operationReply: UInt16 = 2

    public let bytes: UnsafeRawBufferPointer

    public init(validating payload: UnsafeRawBufferPointer) throws(ARPParseError) {
        guard payload.count >= Self.length else { throw .truncated }
        guard payload.uint16(at: 0) == 1, payload.uint16(at: 2) == EtherType.ipv4,
              payload[4] == 6, payload[5] == 4 else { throw .notEthernetIPv4 }
        let operation = payload.uint16(at: 6)
        guard operation == Self.operationRequest || operation == Self.operationReply else { throw .badOperation }
        bytes = UnsafeRawBufferPointer(rebasing: payload[0..<Self.length])
    }

    public var operation: UInt16 { bytes.uint16(at: 6) }
    public var senderHardware: MACAddress { bytes.macAddress(at: 8) }
    public var senderProtocol: IPv4Address { bytes.ipv4Address(at: 14) }
    public var targetHardware: MACAddress { bytes.macAddress(at: 18) }
    public var targetProtocol: IPv4Address { bytes.ipv4Address(at: 24) }

    public var kind: ARPKind {
        if senderProtocol.isUnspecified { return .probe }
        if senderProtocol == targetProtocol { return .gratuitous }
        return operation == Self.operationRequest ? .request : .reply
    }
}

public enum ARPBuilder {
    /// The 28-byte ARP payload.
    public static func packet(operation: UInt16, senderHardware: MACAddress, senderProtocol: IPv4Address,
                              targetHardware: MACAddress, targetProtocol: IPv4Address) -> [UInt8] {
        var writer = PacketWriter(capacity: ARPPacketView.length)
        writer.append(UInt16(1))
        writer.append(EtherType.ipv4)
        writer.append(UInt8(6))
        writer.append(UInt8(4))
        writer.append(operation)
        writer.append(senderHardware)
        writer.append(senderProtocol)
        writer.append(targetHardware)
        writer.append(targetProtocol)
        return writer.bytes
    }

    /// "who-has target tell sender", broadcast.
    public static func request(from mac: MACAddress, senderAddress: IPv4Address, asking target: IPv4Address,
                               vlanID: UInt16? = nil) -> [UInt8] {
        EthernetBuilder.frame(destination: .broadcast, source: mac, etherType: EtherType.arp, vlanID: vlanID,
                              payload: packet(operation: ARPPacketView.operationRequest, senderHardware: mac,
                                              senderProtocol: senderAddress, targetHardware: .zero,
                                              targetProtocol: target))
    }

    /// "address is-at mac", unicast to the requester.
    public static func reply(mac: MACAddress, address: IPv4Address, toMAC requesterMAC: MACAddress,
                             toAddress requesterAddress: IPv4Address, vlanID: UInt16? = nil) -> [UInt8] {
        EthernetBuilder.frame(destination: requesterMAC, source: mac, etherType: EtherType.arp, vlanID: vlanID,
                              payload: packet(operation: ARPPacketView.operationReply, senderHardware: mac,
                                              senderProtocol: address, targetHardware: requesterMAC,
                                              targetProtocol: requesterAddress))
    }

    /// RFC 5227 announcement: a broadcast request with sender and target both set to `address`.
    public static func announcement(mac: MACAddress, address: IPv4Address, vlanID: UInt16? = nil) -> [UInt8] {
        EthernetBuilder.frame(destination: .broadcast, source: mac, etherType: EtherType.arp, vlanID: vlanID,
                              payload: packet(operation: ARPPacketView.operationRequest, senderHardware: mac,
                                              senderProtocol: address, targetHardware: .zero,
                                              targetProtocol: address))
    }

    /// RFC 5227 probe: a broadcast request with sender address 0.0.0.0.
    public static func probe(mac: MACAddress, asking target: IPv4Address, vlanID: UInt16? = nil) -> [UInt8] {
        EthernetBuilder.frame(destination: .broadcast, source: mac, etherType: EtherType.arp, vlanID: vlanID,
                              payload: packet(operation: ARPPacketView.operationRequest, senderHardware: mac,
                                              senderProtocol: .any, targetHardware: .zero, targetProtocol: target))
    }
}
