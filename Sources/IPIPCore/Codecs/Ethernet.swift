public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let ipv6: UInt16 = 0x86DD
    public static let vlan: UInt16 = 0x8100      // IEEE 802.1Q
    public static let qinq: UInt16 = 0x88A8      // IEEE 802.1ad service tag
}

public enum EthernetParseError: Error, Hashable, Sendable {
    case truncated
    case tooManyTags
}

/// A view of an Ethernet II frame, skipping up to two 802.1Q/802.1ad tags.
public struct EthernetFrameView {
    public static let headerLength = 14
    public static let maximumTags = 2
    /// The header with `maximumTags` tags.
    public static let maximumHeaderLength = headerLength + 4 * maximumTags

    public let bytes: UnsafeRawBufferPointer
    /// Offset of the payload (14, 18 or 22).
    public let payloadOffset: Int
    public let etherType: UInt16
    /// The innermost VLAN ID, or nil when untagged.
    public let vlanID: UInt16?

    @inline(__always)
    public init(parsing frame: UnsafeRawBufferPointer) throws(EthernetParseError) {
        guard frame.count >= Self.headerLength else { throw .truncated }
        var offset = 12
        var type = frame.uint16(at: offset)
        var vlan: UInt16? = nil
        var tags = 0
        while type == EtherType.vlan || type == EtherType.qinq {
            tags += 1
            guard tags <= Self.maximumTags else { throw .tooManyTags }
            guard frame.count >= offset + 4 + 2 else { throw .truncated }
            vlan = frame.uint16(at: offset + 2) & 0x0FFF
            offset += 4
            type = frame.uint16(at: offset)
        }
        bytes = frame
        etherType = type
        vlanID = vlan
        payloadOffset = offset + 2
    }

    public var destination: MACAddress { bytes.macAddress(at: 0) }
    public var source: MACAddress { bytes.macAddress(at: 6) }
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...]) }
}

public enum EthernetBuilder {
    /// An Ethernet II header (with an 802.1Q tag when `vlanID` is given) followed by `payload`.
    public static func frame(destination: MACAddress, source: MACAddress, etherType: UInt16,
                             vlanID: UInt16? = nil, payload: [UInt8]) -> [UInt8] {
        var writer = PacketWriter(capacity: 18 + payload.count)
        writer.append(destination)
        writer.append(source)
        if let vlanID {
            writer.append(EtherType.vlan)
            writer.append(vlanID & 0x0FFF)
        }
        writer.append(etherType)
        writer.append(contentsOf: payload)
        return writer.bytes
    }
}
