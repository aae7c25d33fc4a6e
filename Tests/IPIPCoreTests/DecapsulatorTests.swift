import Testing
@testable import IPIPCore

@Suite struct DecapsulatorTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let ghost = IPv4Address("203.0.113.87")!

    /// scapy's encapsulated echo: B (203.0.113.86) → A (198.51.100.37), inner C → ghost, inner TTL 63.
    var scapyPacket: [UInt8] { Fixture.bytes("ipip-encapsulated-echo") }

    func decapsulate(_ packet: inout [UInt8], local: Set<IPv4Address> = []) -> Decapsulator.Verdict {
        let decapsulator = Decapsulator(config: machineA, localAddresses: local)
        return packet.withUnsafeMutableBytes { decapsulator.decapsulate($0) }
    }

    func innerTTL(_ packet: [UInt8]) throws -> UInt8 {
        try packet.withUnsafeBytes { try IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: $0[20...]), exactLength: true).ttl }
    }

    @Test func deliversLocalInnerPacketUntouched() throws {
        var packet = scapyPacket
        let verdict = decapsulate(&packet, local: [ghost])
        #expect(verdict == .deliver(peer: 0, inner: 20..<packet.count, local: true))
        #expect(Array(packet[20...]) == Fixture.bytes("ipv4-icmp-echo"))
    }

    @Test func forwardedInnerPacketLosesOneTTL() throws {
        var packet = scapyPacket
        #expect(decapsulate(&packet) == .deliver(peer: 0, inner: 20..<packet.count, local: false))
        #expect(try innerTTL(packet) == 62, "decremented with a valid checksum")
    }

    @Test func acceptsOnlyConfiguredPeersToTheLocalAddress() {
        var fromStranger = scapyPacket
        fromStranger.withUnsafeMutableBytes { $0.setUInt32(IPv4Address("192.0.2.66")!.value, at: 12) }
        fixOuterChecksum(&fromStranger)
        #expect(decapsulate(&fromStranger) == .drop(.unknownPeer, peer: nil))
        var notForUs = scapyPacket
        notForUs.withUnsafeMutableBytes { $0.setUInt32(IPv4Address("198.51.100.38")!.value, at: 16) }
        fixOuterChecksum(&notForUs)
        #expect(decapsulate(&notForUs) == .drop(.notForUs, peer: nil))
    }

    @Test func malformedHeadersAreDroppedByWhichHeader() {
        var badOuter = scapyPacket
        badOuter[11] ^= 1
        #expect(decapsulate(&badOuter) == .drop(.malformedOuter, peer: nil))
        var badInner = scapyPacket
        badInner[20 + 11] ^= 1
        #expect(decapsulate(&badInner) == .drop(.malformedInner, peer: 0))
        var truncated = Array(scapyPacket.dropLast(3))
        #expect(decapsulate(&truncated) == .drop(.malformedOuter, peer: nil))
        // Inner total length shorter than what the outer packet carries.
        var shortInner = scapyPacket
        shortInner[20 + 3] -= 1
        shortInner.withUnsafeMutableBytes { buffer in
            IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: buffer[20...]))
        }
        #expect(decapsulate(&shortInner) == .drop(.malformedInner, peer: 0))
    }

    @Test func expiringTTLIsDroppedWhenForwardingOnly() {
        var packet = scapyPacket
        packet.withUnsafeMutableBytes { buffer in
            buffer[20 + 8] = 1
            IPv4HeaderEditor.recomputeChecksum(UnsafeMutableRawBufferPointer(rebasing: buffer[20...]))
        }
        var copy = packet
        #expect(decapsulate(&packet) == .timeExceeded(peer: 0, inner: 20..<packet.count))
        #expect(decapsulate(&copy, local: [ghost]) == .deliver(peer: 0, inner: 20..<copy.count, local: true))
    }

    @Test func outerFragmentsAreNotUnwrapped() {
        var packet = scapyPacket
        packet[6] |= 0x20   // more fragments
        fixOuterChecksum(&packet)
        #expect(decapsulate(&packet) == .reassemble(peer: 0))
    }

    @Test(arguments: ECN.allCases)
    func ecnFollowsRFC6040(innerECN: ECN) throws {
        for outerECN in ECN.allCases {
            var packet = scapyPacket
            packet.withUnsafeMutableBytes { buffer in
                IPv4HeaderEditor.setTOS(UnsafeMutableRawBufferPointer(rebasing: buffer[20..<40]), to: innerECN.rawValue)
                IPv4HeaderEditor.setTOS(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<20]), to: outerECN.rawValue)
            }
            let verdict = decapsulate(&packet, local: [ghost])
            if outerECN == .ce && innerECN == .notECT {
                #expect(verdict == .drop(.ecnNotECT, peer: 0))
                continue
            }
            #expect(verdict == .deliver(peer: 0, inner: 20..<packet.count, local: true))
            let tos = try packet.withUnsafeBytes { try IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: $0[20...]), exactLength: true).tos }
            let expected = outerECN == .ce ? ECN.ce : innerECN
            #expect(tos & 0b11 == expected.rawValue, "outer \(outerECN), inner \(innerECN)")
        }
    }

    func fixOuterChecksum(_ packet: inout [UInt8]) {
        packet.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum($0) }
    }
}
