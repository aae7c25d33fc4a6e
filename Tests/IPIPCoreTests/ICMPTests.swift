import Testing
@testable import IPIPCore

@Suite struct ICMPTests {
    @Test func readsFragmentationNeededAndTheQuotedOuterHeader() throws {
        try Fixture.bytes("icmp-frag-needed").withUnsafeBytes { buffer in
            let ip = try IPv4PacketView(validating: buffer, exactLength: true)
            let icmp = try ICMPMessageView(validating: ip.payload)
            #expect(icmp.type == ICMPType.destinationUnreachable)
            #expect(icmp.code == ICMPUnreachableCode.fragmentationNeeded)
            #expect(icmp.nextHopMTU == 1380)
            // The quoted header is what RFC 2003 §4 needs: which peer the error is about.
            #expect(icmp.body.uint32(at: 16) == IPv4Address("203.0.113.86")!.value)
            #expect(icmp.body[9] == IPProtocolNumber.ipip)
        }
    }

    @Test func readsTimeExceeded() throws {
        try Fixture.bytes("icmp-time-exceeded").withUnsafeBytes { buffer in
            let ip = try IPv4PacketView(validating: buffer, exactLength: true)
            let icmp = try ICMPMessageView(validating: ip.payload)
            #expect(icmp.type == ICMPType.timeExceeded && icmp.code == 0)
            #expect(ICMPType.isError(icmp.type))
        }
    }

    @Test func echoReplyBuilderMatchesScapy() {
        let scapy = Fixture.bytes("icmp-echo-reply")
        let ours = ICMPBuilder.echo(request: false, identifier: 0x77, sequence: 3, payload: Array("pong".utf8))
        #expect(ours == Array(scapy[20...]))
    }

    /// A short original is quoted whole (RFC 1812 §4.3.2.3: as much as fits in 576 bytes).
    @Test func aShortOriginalIsQuotedWhole() throws {
        let original = Fixture.bytes("ipv4-with-options-udp")
        let message = original.withUnsafeBytes {
            ICMPBuilder.destinationUnreachable(code: ICMPUnreachableCode.fragmentationNeeded, nextHopMTU: 1380, original: $0)
        }
        try message.withUnsafeBytes { buffer in
            let icmp = try ICMPMessageView(validating: buffer)
            #expect(icmp.nextHopMTU == 1380)
            #expect(Array(icmp.body) == original)
        }
        let exceeded = original.withUnsafeBytes { ICMPBuilder.timeExceeded(original: $0) }
        #expect(exceeded[0] == ICMPType.timeExceeded)
        #expect(exceeded.withUnsafeBytes { InternetChecksum.verify($0) })
    }

    @Test func rejectsCorruptICMP() {
        var message = ICMPBuilder.echo(request: true, identifier: 1, sequence: 1, payload: [1, 2, 3])
        message[5] ^= 1
        #expect(throws: ICMPParseError.badChecksum) { try message.withUnsafeBytes { _ = try ICMPMessageView(validating: $0) } }
        #expect(throws: ICMPParseError.truncated) { try [UInt8](repeating: 0, count: 7).withUnsafeBytes { _ = try ICMPMessageView(validating: $0) } }
    }
}
