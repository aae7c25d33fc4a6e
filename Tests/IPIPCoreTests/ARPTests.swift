import Testing
@testable import IPIPCore

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
