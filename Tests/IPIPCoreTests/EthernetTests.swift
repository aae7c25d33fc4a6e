import Testing
@testable import IPIPCore

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
