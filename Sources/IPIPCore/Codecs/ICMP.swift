/// ICMP message types and codes ipipd reads or writes (RFC 792, RFC 1191).
public enum ICMPType {
    public static let echoReply: UInt8 = 0
    public static let destinationUnreachable: UInt8 = 3
    public static let echoRequest: UInt8 = 8
    public static let timeExceeded: UInt8 = 11
    public static let parameterProblem: UInt8 = 12

    /// Error messages (RFC 1122 §3.2.2): never answered with another error.
    public static func isError(_ type: UInt8) -> Bool {
        type == destinationUnreachable || type == timeExceeded || type == parameterProblem
            || type == 4 /* source quench */ || type == 5 /* redirect */
    }
}

public enum ICMPUnreachableCode {
    public static let network: UInt8 = 0
    public static let host: UInt8 = 1
    public static let protocolUnreachable: UInt8 = 2
    public static let port: UInt8 = 3
    public static let fragmentationNeeded: UInt8 = 4
    public static let sourceRouteFailed: UInt8 = 5
}

public enum ICMPParseError: Error, Hashable, Sendable {
    case truncated
    case badChecksum
}

/// A read-only view of an ICMP message (the IPv4 payload).
public struct ICMPMessageView {
    public let bytes: UnsafeRawBufferPointer

    public init(validating payload: UnsafeRawBufferPointer) throws(ICMPParseError) {
        guard payload.count >= 8 else { throw .truncated }
        guard InternetChecksum.verify(payload) else { throw .badChecksum }
        bytes = payload
    }

    public var type: UInt8 { bytes[0] }
    public var code: UInt8 { bytes[1] }
    public var checksum: UInt16 { bytes.uint16(at: 2) }
    /// Echo identifier and sequence (echo messages only).
    public var identifier: UInt16 { bytes.uint16(at: 4) }
    public var sequence: UInt16 { bytes.uint16(at: 6) }
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191); 0 from pre-RFC 1191 routers.
    public var nextHopMTU: Int { Int(bytes.uint16(at: 6)) }
    /// Data after the 8-byte ICMP header: the echo payload, or the quoted original datagram of an error.
    public var body: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[8...]) }
}

/// Builders for the ICMP messages ipipd sends. Each returns the ICMP message (not the IP packet).
public enum ICMPBuilder {
    public static func echo(request: Bool, identifier: UInt16, sequence: UInt16, payload: [UInt8]) -> [UInt8] {
        message(type: request ? ICMPType.echoRequest : ICMPType.echoReply, code: 0,
                restOfHeader: UInt32(identifier) << 16 | UInt32(sequence), body: payload)
    }

    /// Destination unreachable quoting `original` (its header plus the first 8 payload bytes, RFC 792).
    /// For code 4 (fragmentation needed) `nextHopMTU` goes in the low 16 bits (RFC 1191).
    public static func destinationUnreachable(code: UInt8, nextHopMTU: Int = 0, original: UnsafeRawBufferPointer) -> [UInt8] {
        message(type: ICMPType.destinationUnreachable, code: code,
                restOfHeader: UInt32(UInt16(clamping: nextHopMTU)), body: quote(original))
    }

    /// Time exceeded in transit (code 0) quoting `original`.
    public static func timeExceeded(original: UnsafeRawBufferPointer) -> [UInt8] {
        message(type: ICMPType.timeExceeded, code: 0, restOfHeader: 0, body: quote(original))
    }

    /// The original datagram's IP header and the first 8 bytes of its data.
    static func quote(_ original: UnsafeRawBufferPointer) -> [UInt8] {
        Array(original[0..<quoteLength(of: original)])
    }

    /// The most an ICMP error ipipd sends may be: RFC 1812 §4.3.2.3 (and Linux) quote as much of the
    /// original as fits in 576 bytes with the error's own IP and ICMP headers.
    public static let maximumErrorLength = 576

    /// How much of `original` an error message quotes: as much as fits in 576 bytes (RFC 1812
    /// §4.3.2.3), at least the IP header and 8 bytes of data (RFC 792), or all of it when shorter.
    public static func quoteLength(of original: UnsafeRawBufferPointer) -> Int {
        min(original.count, maximumErrorLength - 20 - 8)
    }

    static func message(type: UInt8, code: UInt8, restOfHeader: UInt32, body: [UInt8]) -> [UInt8] {
        var writer = PacketWriter(capacity: 8 + body.count)
        writer.append(type)
        writer.append(code)
        writer.append(UInt16(0))
        writer.append(restOfHeader)
        writer.append(contentsOf: body)
        var bytes = writer.bytes
        let checksum = InternetChecksum.compute(bytes)
        bytes[2] = UInt8(checksum >> 8)
        bytes[3] = UInt8(checksum & 0xFF)
        return bytes
    }
}
