/// IP protocol numbers ipipd deals with.
public enum IPProtocolNumber {
    public static let icmp: UInt8 = 1
    public static let ipip: UInt8 = 4
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
}

/// Why an IPv4 header was rejected (the packet paths count such a packet as malformed).
public enum IPv4ParseError: Error, Hashable, Sendable, CaseIterable {
    case truncated            // fewer than 20 bytes, or fewer than the header length claims
    case badVersion           // version field is not 4
    case badHeaderLength      // IHL < 5
    case totalLengthTooLarge  // total length exceeds the bytes that arrived
    case totalLengthTooSmall  // total length below the header length, or (exact mode) below the bytes that arrived
    case badChecksum          // header checksum does not verify
}

/// ECN codepoints (RFC 3168), the low two bits of the TOS byte.
public enum ECN: UInt8, Sendable, CaseIterable {
    case notECT = 0b00
    case ect1 = 0b01
    case ect0 = 0b10
    case ce = 0b11
}

/// A validated, read-only view of an IPv4 packet over raw bytes. Allocation-free: it holds the
/// caller's buffer (trimmed to the packet's total length), so it must not outlive it.
public struct IPv4PacketView {
    public static let minimumHeaderLength = 20
    public static let flagDontFragment: UInt16 = 0x4000
    public static let flagMoreFragments: UInt16 = 0x2000

    /// Exactly the packet: header, options and payload (any trailing link padding is cut off).
    public let bytes: UnsafeRawBufferPointer

    /// Validates version, IHL, total length and header checksum. With `exactLength` the total length
    /// must equal the buffer size (an inner packet); otherwise trailing bytes (Ethernet padding) are
    /// allowed and cut off.
    @inline(__always)
    public init(validating buffer: UnsafeRawBufferPointer, exactLength: Bool = false) throws(IPv4ParseError) {
        guard buffer.count >= Self.minimumHeaderLength else { throw .truncated }
        let versionAndIHL = buffer[0]
        guard versionAndIHL >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(versionAndIHL & 0x0F) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badHeaderLength }
        guard headerLength <= buffer.count else { throw .truncated }
        let totalLength = Int(buffer.uint16(at: 2))
        guard totalLength >= headerLength else { throw .totalLengthTooSmall }
        guard totalLength <= buffer.count else { throw .totalLengthTooLarge }
        if exactLength && totalLength != buffer.count { throw .totalLengthTooSmall }
        guard InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: buffer[0..<headerLength])) else {
            throw .badChecksum
        }
        bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<totalLength])
    }

    public var headerLength: Int { Int(bytes[0] & 0x0F) * 4 }
    public var tos: UInt8 { bytes[1] }
    public var dscp: UInt8 { bytes[1] >> 2 }
    public var ecn: ECN { ECN(rawValue: bytes[1] & 0b11)! }
    public var totalLength: Int { bytes.count }
    public var identification: UInt16 { bytes.uint16(at: 4) }
    public var flagsAndFragmentOffset: UInt16 { bytes.uint16(at: 6) }
    public var dontFragment: Bool { flagsAndFragmentOffset & Self.flagDontFragment != 0 }
    public var moreFragments: Bool { flagsAndFragmentOffset & Self.flagMoreFragments != 0 }
    /// Fragment offset in bytes.
    public var fragmentOffset: Int { Int(flagsAndFragmentOffset & 0x1FFF) * 8 }
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
    public var ttl: UInt8 { bytes[8] }
    public var protocolNumber: UInt8 { bytes[9] }
    public var headerChecksum: UInt16 { bytes.uint16(at: 10) }
    public var source: IPv4Address { bytes.ipv4Address(at: 12) }
    public var destination: IPv4Address { bytes.ipv4Address(at: 16) }
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[headerLength...]) }
}

/// In-place edits of an IPv4 header that keep its checksum right (RFC 1624 incremental update).
public enum IPv4HeaderEditor {
    /// Decrements the TTL by one and fixes the checksum. The caller has checked TTL > 1.
    @inline(__always)
    public static func decrementTTL(_ header: UnsafeMutableRawBufferPointer) {
        let oldWord = UnsafeRawBufferPointer(header).uint16(at: 8)   // TTL and protocol share a word
        let newWord = oldWord &- 0x0100
        header.setUInt16(newWord, at: 8)
        updateChecksum(header, oldWord: oldWord, newWord: newWord)
    }

    /// Replaces the TOS byte and fixes the checksum.
    @inline(__always)
    public static func setTOS(_ header: UnsafeMutableRawBufferPointer, to tos: UInt8) {
        let oldWord = UnsafeRawBufferPointer(header).uint16(at: 0)   // version/IHL and TOS share a word
        let newWord = oldWord & 0xFF00 | UInt16(tos)
        guard oldWord != newWord else { return }
        header.setUInt16(newWord, at: 0)
        updateChecksum(header, oldWord: oldWord, newWord: newWord)
    }

    /// Recomputes the checksum of the header at the start of `packet` (length from its IHL), after
    /// edits to fields the incremental updates above do not cover.
    public static func recomputeChecksum(_ packet: UnsafeMutableRawBufferPointer) {
        let headerLength = min(Int(packet[0] & 0x0F) * 4, packet.count)
        packet.setUInt16(0, at: 10)
        packet.setUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: packet[0..<headerLength])), at: 10)
    }

    @inline(__always)
    static func updateChecksum(_ header: UnsafeMutableRawBufferPointer, oldWord: UInt16, newWord: UInt16) {
        let checksum = UnsafeRawBufferPointer(header).uint16(at: 10)
        header.setUInt16(InternetChecksum.updated(checksum, oldWord: oldWord, newWord: newWord), at: 10)
    }
}

/// The fields of an IPv4 header to write. `write(into:)` is allocation-free and is what the
/// encapsulator uses on its reused buffer; `bytes(payload:)` is for control packets and tests.
public struct IPv4HeaderFields: Sendable, Equatable {
    public var tos: UInt8 = 0
    public var totalLength: Int = 20
    public var identification: UInt16 = 0
    public var dontFragment = false
    public var moreFragments = false
    public var fragmentOffset = 0   // in bytes, a multiple of 8
    public var ttl: UInt8 = 64
    public var protocolNumber: UInt8
    public var source: IPv4Address
    public var destination: IPv4Address

    public init(tos: UInt8 = 0, totalLength: Int = 20, identification: UInt16 = 0, dontFragment: Bool = false,
                moreFragments: Bool = false, fragmentOffset: Int = 0, ttl: UInt8 = 64,
                protocolNumber: UInt8, source: IPv4Address, destination: IPv4Address) {
        self.tos = tos
        self.totalLength = totalLength
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.ttl = ttl
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
    }

    /// Writes a 20-byte header (no options) with a valid checksum into the first 20 bytes of `buffer`.
    @inline(__always)
    public func write(into buffer: UnsafeMutableRawBufferPointer) {
        buffer[0] = 0x45
        buffer[1] = tos
        buffer.setUInt16(UInt16(truncatingIfNeeded: totalLength), at: 2)
        buffer.setUInt16(identification, at: 4)
        var flags = UInt16(truncatingIfNeeded: fragmentOffset / 8) & 0x1FFF
        if dontFragment { flags |= IPv4PacketView.flagDontFragment }
        if moreFragments { flags |= IPv4PacketView.flagMoreFragments }
        buffer.setUInt16(flags, at: 6)
        buffer[8] = ttl
        buffer[9] = protocolNumber
        buffer.setUInt16(0, at: 10)
        buffer.setUInt32(source.value, at: 12)
        buffer.setUInt32(destination.value, at: 16)
        let checksum = InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: buffer[0..<20]))
        buffer.setUInt16(checksum, at: 10)
    }

    /// A whole packet: this header (total length set from the payload) followed by `payload`.
    public func bytes(payload: [UInt8]) -> [UInt8] {
        var fields = self
        fields.totalLength = 20 + payload.count
        var packet = [UInt8](repeating: 0, count: 20)
        packet.withUnsafeMutableBytes { fields.write(into: $0) }
        packet.append(contentsOf: payload)
        return packet
    }
}
