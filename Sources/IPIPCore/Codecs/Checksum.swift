/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
public enum InternetChecksum {
    /// One's-complement sum of 16-bit big-endian words, folded to 16 bits (not yet complemented).
    @inline(__always)
    public static func partialSum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var sum = UInt64(initial)
        var index = 0
        let count = bytes.count
        // Sum 32-bit words into a 64-bit accumulator: the carries fold back correctly at the end.
        while index + 4 <= count {
            sum &+= UInt64(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)))
            index += 4
        }
        if index + 2 <= count {
            sum &+= UInt64(bytes.uint16(at: index))
            index += 2
        }
        if index < count {
            sum &+= UInt64(bytes[index]) << 8
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return UInt32(sum)
    }

    /// The checksum field value for `bytes` (computed with the checksum field itself set to zero).
    @inline(__always)
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        ~UInt16(partialSum(bytes))
    }

    /// True when `bytes`, including their checksum field, sum to 0xFFFF.
    @inline(__always)
    public static func verify(_ bytes: UnsafeRawBufferPointer) -> Bool {
        partialSum(bytes) == 0xFFFF
    }

    /// The sum of an IPv4 packet's pseudo-header (RFC 793 §3.1: source, destination, protocol and the
    /// transport length), folded to 16 bits: the start of a TCP or UDP checksum over that transport length.
    @inline(__always)
    public static func pseudoHeaderSum(ofIPv4 packet: UnsafeRawBufferPointer, protocol: UInt8, transportLength: Int) -> UInt32 {
        partialSum(UnsafeRawBufferPointer(rebasing: packet[12..<20]), initial: UInt32(`protocol`) + UInt32(transportLength))
    }

    public static func compute(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBytes { compute($0) }
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), where one 16-bit word changed from `old` to `new`.
    @inline(__always)
    public static func updated(_ checksum: UInt16, oldWord: UInt16, newWord: UInt16) -> UInt16 {
        var sum = UInt32(~checksum) + UInt32(~oldWord) + UInt32(newWord)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return ~UInt16(sum)
    }
}
