/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
public enum InternetChecksum {
    /// One's-complement sum of 16-bit big-endian words, folded to 16 bits (not yet complemented).
    ///
    /// Adds 64-bit words in the host's byte order with end-around carry and swaps the folded result once
    /// (RFC 1071 §2: the sum does not depend on byte order, nor on the word size it is added in), eight
    /// bytes per addition instead of two.
    @inline(__always)
    public static func partialSum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var sum: UInt64 = 0
        var carries: UInt64 = 0
        var index = 0
        let count = bytes.count
        @inline(__always) func add(_ word: UInt64) {
            let (result, overflow) = sum.addingReportingOverflow(word)
            sum = result
            carries &+= overflow ? 1 : 0
        }
        while index + 32 <= count {
            add(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            add(bytes.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self))
            add(bytes.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self))
            add(bytes.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self))
            index += 32
        }
        while index + 8 <= count {
            add(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            index += 8
        }
        // The last 0–7 bytes in a word padded with zeros behind them, as an odd byte is padded.
        if index < count {
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[index..<count])) }
            add(tail)
        }
        // The carries go back in, end-around (they are few: adding them overflows at most once).
        let (withCarries, overflow) = sum.addingReportingOverflow(carries)
        sum = withCarries &+ (overflow ? 1 : 0)
        // Fold to 16 bits, then into the byte order the checksum is written in.
        var folded = (sum & 0xFFFF_FFFF) + (sum >> 32)
        folded = (folded & 0xFFFF) + (folded >> 16)
        folded = (folded & 0xFFFF) + (folded >> 16)
        folded = (folded & 0xFFFF) + (folded >> 16)
        var result = UInt32(UInt16(truncatingIfNeeded: folded).bigEndian) + initial
        result = (result & 0xFFFF) + (result >> 16)
        result = (result & 0xFFFF) + (result >> 16)
        return result
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
