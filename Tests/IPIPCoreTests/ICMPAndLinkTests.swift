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

    @Test func destinationUnreachableQuotesHeaderAndEightBytes() throws {
        let original = Fixture.bytes("ipv4-with-options-udp")
        let message = original.withUnsafeBytes {
            ICMPBuilder.destinationUnreachable(code: ICMPUnreachableCode.fragmentationNeeded, nextHopMTU: 1380, original: $0)
        }
        try message.withUnsafeBytes { buffer in
            let icmp = try ICMPMessageView(validating: buffer)
            #expect(icmp.nextHopMTU == 1380)
            #expect(Array(icmp.body) == Array(original[0..<(24 + 8)]))
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

@Suite struct EthernetTests {
    @Test func untaggedFrame() throws {
        try Fixture.bytes("ether-ipip").withUnsafeBytes { buffer in
            let frame = try EthernetFrameView(parsing: buffer)
            #expect(frame.etherType == EtherType.ipv4)
            #expect(frame.vlanID == nil)
            #expect(frame.payloadOffset == 14)
            #expect(frame.source == MACAddress("02:00:00:00:00:86"))
            #expect(frame.payload[9] == IPProtocolNumber.ipip)
        }
    }

    @Test func taggedFrame() throws {
        try Fixture.bytes("ether-vlan-ipip").withUnsafeBytes { buffer in
            let frame = try EthernetFrameView(parsing: buffer)
            #expect(frame.etherType == EtherType.ipv4)
            #expect(frame.vlanID == 42)
            #expect(frame.payloadOffset == 18)
            #expect(try IPv4PacketView(validating: frame.payload).protocolNumber == IPProtocolNumber.ipip)
        }
    }

    @Test func truncatedTag() {
        let frame = Array(Fixture.bytes("ether-vlan-ipip")[0..<17])
        #expect(throws: EthernetParseError.truncated) { try frame.withUnsafeBytes { _ = try EthernetFrameView(parsing: $0) } }
    }
}

@Suite struct ARPTests {
    let ghost = IPv4Address("203.0.113.87")!
    let hostC = IPv4Address("203.0.113.20")!
    let macB = MACAddress("02:00:00:00:00:86")!
    let macC = MACAddress("02:00:00:00:00:20")!

    func kind(_ name: String) throws -> ARPKind {
        try Fixture.bytes(name).withUnsafeBytes { buffer in
            let frame = try EthernetFrameView(parsing: buffer)
            #expect(frame.etherType == EtherType.arp)
            return try ARPPacketView(validating: frame.payload).kind
        }
    }

    @Test func classifiesScapyPackets() throws {
        #expect(try kind("arp-request") == .request)
        #expect(try kind("arp-reply") == .reply)
        #expect(try kind("arp-gratuitous") == .gratuitous)
        #expect(try kind("arp-probe") == .probe)
        #expect(throws: ARPParseError.notEthernetIPv4) { try kind("arp-bad-hwtype") }
    }

    @Test func buildersMatchScapy() {
        #expect(ARPBuilder.request(from: macC, senderAddress: hostC, asking: ghost) == Fixture.bytes("arp-request"))
        #expect(ARPBuilder.reply(mac: macB, address: ghost, toMAC: macC, toAddress: hostC) == Fixture.bytes("arp-reply"))
        #expect(ARPBuilder.announcement(mac: macB, address: ghost) == Fixture.bytes("arp-gratuitous"))
        #expect(ARPBuilder.probe(mac: macC, asking: ghost) == Fixture.bytes("arp-probe"))
    }

    @Test func readsFields() throws {
        try Fixture.bytes("arp-request").withUnsafeBytes { buffer in
            let arp = try ARPPacketView(validating: UnsafeRawBufferPointer(rebasing: buffer[14...]))
            #expect(arp.senderHardware == macC && arp.senderProtocol == hostC)
            #expect(arp.targetProtocol == ghost && arp.operation == ARPPacketView.operationRequest)
        }
    }
}
