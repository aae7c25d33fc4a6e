import PropertyBased
import Testing
@testable import IPIPCore

@Suite struct ChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2; the checksum is its complement.
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        #expect(bytes.withUnsafeBytes { InternetChecksum.partialSum($0) } == 0xDDF2)
        #expect(InternetChecksum.compute(bytes) == 0x220D)
    }

    /// The 64-bit sum agrees with RFC 1071's definition (16-bit big-endian words, end-around carry) for
    /// any bytes of any length, from any starting sum — all-0xFF runs, whose carries pile up, included.
    @Test func theWideSumIsTheSumOf16BitWords() async {
        func reference(_ bytes: [UInt8], _ initial: UInt32) -> UInt32 {
            var sum = UInt64(initial)
            for index in stride(from: 0, to: bytes.count, by: 2) {
                sum += UInt64(bytes[index]) << 8 | UInt64(index + 1 < bytes.count ? bytes[index + 1] : 0)
            }
            while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
            return UInt32(sum)
        }
        await propertyCheck(count: 2000, input: Gen.uint8().array(of: 0...200), Gen.uint16(), Gen.bool) { bytes, initial, saturate in
            let data = saturate ? bytes.map { $0 | 0xF0 } : bytes
            #expect(data.withUnsafeBytes { InternetChecksum.partialSum($0, initial: UInt32(initial)) } == reference(data, UInt32(initial)))
        }
        let ones = [UInt8](repeating: 0xFF, count: 65_535)
        #expect(ones.withUnsafeBytes { InternetChecksum.partialSum($0, initial: 0x1FFFE) } == reference(ones, 0x1FFFE))
    }

    @Test func oddLengthPadsWithZero() {
        #expect(InternetChecksum.compute([0x12, 0x34, 0x56]) == InternetChecksum.compute([0x12, 0x34, 0x56, 0x00]))
    }

    @Test func scapyHeadersVerify() {
        for name in ["ipv4-icmp-echo", "ipip-encapsulated-echo", "ipv4-with-options-udp", "ipv4-fragment"] {
            let packet = Fixture.bytes(name)
            let headerLength = Int(packet[0] & 0x0F) * 4
            #expect(packet.withUnsafeBytes { InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: $0[0..<headerLength])) }, "\(name)")
        }
    }

    /// RFC 1624's incremental update agrees with a full recomputation for any header and any change
    /// of the TTL/protocol word or the TOS word.
    @Test func incrementalUpdateMatchesRecompute() async {
        let header = Gen.uint8().array(of: 20)
        await propertyCheck(count: 500, input: header, Gen.uint16(), Gen.bool) { bytes, newWord, tosWord in
            var packet = bytes
            packet[0] = 0x45
            packet[10] = 0; packet[11] = 0
            let checksum = InternetChecksum.compute(packet)
            packet[10] = UInt8(checksum >> 8); packet[11] = UInt8(checksum & 0xFF)
            let offset = tosWord ? 0 : 8
            let oldWord = UInt16(packet[offset]) << 8 | UInt16(packet[offset + 1])
            let replacement = tosWord ? (0x4500 | newWord & 0xFF) : newWord
            let updated = InternetChecksum.updated(checksum, oldWord: oldWord, newWord: replacement)
            packet[offset] = UInt8(replacement >> 8); packet[offset + 1] = UInt8(replacement & 0xFF)
            packet[10] = UInt8(updated >> 8); packet[11] = UInt8(updated & 0xFF)
            #expect(packet.withUnsafeBytes { InternetChecksum.verify($0) })
        }
    }
}
