/// When ipipd may send an ICMPv6 error about an IPv6 packet it carries, and the packets it sends
/// (RFC 4443 §2.4): packet too big, and address unreachable for a peer a router reported.
public enum ICMPv6ErrorRules {
    /// RFC 4443 §2.4(c): an error quotes as much of the original as fits in the least IPv6 MTU.
    public static let maximumErrorLength = Encapsulator.minimumIPv6MTU
    /// The IPv6 header and ICMPv6 header of an error message.
    public static let headersLength = IPv6PacketView.headerLength + 8

    /// Never about an ICMPv6 error, nor to a source that is ::, ::1 or multicast (RFC 4443 §2.4(e));
    /// about a packet to a multicast group only "packet too big" (e.3).
    public static func mayReport(on original: UnsafeRawBufferPointer, type: UInt8) -> Bool {
        guard original.count >= IPv6PacketView.headerLength, original[0] >> 4 == 6 else { return false }
        let source = original.ipv6Address(at: 8), destination = original.ipv6Address(at: 24)
        if source.isUnspecified || source.isLoopback || source.isMulticast { return false }
        if destination.isMulticast && type != ICMPv6Type.packetTooBig { return false }
        if original[6] == IPv6NextHeader.icmpv6 {
            if original.count < IPv6PacketView.headerLength + 1 || ICMPv6Type.isError(original[IPv6PacketView.headerLength]) { return false }
        }
        return true
    }

    public static func quoteLength(of original: UnsafeRawBufferPointer) -> Int {
        min(original.count, maximumErrorLength - headersLength)
    }

    /// Writes an IPv6 packet carrying an ICMPv6 error that quotes `quote` into `buffer`, addressed to the
    /// original's source; returns its length. The source is left :: — the ICMPv6 socket it leaves by
    /// picks this machine's address towards that host and computes the checksum again, as the kernel
    /// does for its own errors; the checksum written here is the one for source ::. `parameter`: the
    /// MTU of a "packet too big". `quote` must not overlap `buffer`.
    @discardableResult
    public static func write(type: UInt8, code: UInt8, parameter: UInt32 = 0, quote original: UnsafeRawBufferPointer,
                             into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let quoted = quoteLength(of: original)
        let length = headersLength + quoted
        precondition(buffer.count >= length && original.count >= IPv6PacketView.headerLength)
        IPv6HeaderFields(payloadLength: length - IPv6PacketView.headerLength, nextHeader: IPv6NextHeader.icmpv6, hopLimit: 64,
                         source: .unspecified, destination: original.ipv6Address(at: 8))
            .write(into: buffer)
        let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[IPv6PacketView.headerLength..<length])
        icmp[0] = type
        icmp[1] = code
        icmp.setUInt16(0, at: 2)
        icmp.setUInt32(parameter, at: 4)
        UnsafeMutableRawBufferPointer(rebasing: icmp[8...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
        let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        icmp.setUInt16(InternetChecksum.computeIPv6Upper(packet, nextHeader: IPv6NextHeader.icmpv6), at: 2)
        return length
    }

    /// The same packet as bytes (tests).
    public static func packet(type: UInt8, code: UInt8, parameter: UInt32 = 0, about original: UnsafeRawBufferPointer) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: maximumErrorLength)
        let length = packet.withUnsafeMutableBytes { write(type: type, code: code, parameter: parameter, quote: original, into: $0) }
        return Array(packet[0..<length])
    }
}
