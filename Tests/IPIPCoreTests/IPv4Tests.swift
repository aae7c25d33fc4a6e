import Testing
@testable import IPIPCore

@Suite struct IPv4Tests {
    func parse(_ bytes: [UInt8], exact: Bool = false) -> Result<IPv4HeaderFields, IPv4ParseError> {
        bytes.withUnsafeBytes { buffer in
            do throws(IPv4ParseError) {
                let view = try IPv4PacketView(validating: buffer, exactLength: exact)
                return .success(IPv4HeaderFields(tos: view.tos, totalLength: view.totalLength, identification: view.identification,
                                                 dontFragment: view.dontFragment, moreFragments: view.moreFragments,
                                                 fragmentOffset: view.fragmentOffset, ttl: view.ttl,
                                                 protocolNumber: view.protocolNumber, source: view.source,
                                                 destination: view.destination))
            } catch {
                return .failure(error)
            }
        }
    }

    @Test func readsScapyEchoRequest() throws {
        let fields = try parse(Fixture.bytes("ipv4-icmp-echo"), exact: true).get()
        #expect(fields.source == IPv4Address("203.0.113.20"))
        #expect(fields.destination == IPv4Address("203.0.113.87"))
        #expect(fields.ttl == 63)
        #expect(fields.identification == 0x1234)
        #expect(fields.dontFragment && !fields.moreFragments)
        #expect(fields.tos == 0x02)
        #expect(fields.protocolNumber == IPProtocolNumber.icmp)
    }

    @Test func readsEncapsulatedPacketAndItsInnerPacket() throws {
        let packet = Fixture.bytes("ipip-encapsulated-echo")
        try packet.withUnsafeBytes { buffer in
            let outer = try IPv4PacketView(validating: buffer, exactLength: true)
            #expect(outer.protocolNumber == IPProtocolNumber.ipip)
            #expect(outer.source == IPv4Address("203.0.113.86"))
            #expect(outer.ecn == .ect0)
            let inner = try IPv4PacketView(validating: outer.payload, exactLength: true)
            #expect(Array(inner.bytes) == Fixture.bytes("ipv4-icmp-echo"))
        }
    }

    @Test func readsOptionsAndFragments() throws {
        try Fixture.bytes("ipv4-with-options-udp").withUnsafeBytes { buffer in
            let view = try IPv4PacketView(validating: buffer, exactLength: true)
            #expect(view.headerLength == 24)
            #expect(view.payload.count == 8 + 12)
            #expect(view.ttl == 17)
        }
        let fragment = try parse(Fixture.bytes("ipv4-fragment")).get()
        #expect(fragment.moreFragments && fragment.fragmentOffset == 1480 && fragment.identification == 0xBEEF)
    }

    @Test func builderMatchesScapyOuterHeader() {
        let scapy = Fixture.bytes("ipip-encapsulated-echo")
        let inner = Array(scapy[20...])
        let ours = IPv4HeaderFields(tos: 0x02, identification: 0x0100, dontFragment: true, ttl: 64,
                                    protocolNumber: IPProtocolNumber.ipip,
                                    source: IPv4Address("203.0.113.86")!, destination: IPv4Address("198.51.100.37")!)
            .bytes(payload: inner)
        #expect(ours == scapy)
    }

    @Test func rejectsEachKindOfMalformedHeader() {
        let good = Fixture.bytes("ipv4-icmp-echo")
        #expect(parse(Array(good[0..<19])) == .failure(.truncated))
        var version = good; version[0] = 0x65
        #expect(parse(version) == .failure(.badVersion))
        var shortIHL = good; shortIHL[0] = 0x44
        #expect(parse(shortIHL) == .failure(.badHeaderLength))
        var longIHL = good; longIHL[0] = 0x4F
        #expect(parse(Array(longIHL[0..<40])) == .failure(.truncated))
        #expect(parse(Array(good[0..<(good.count - 1)])) == .failure(.totalLengthTooLarge))
        var tiny = good; tiny[2] = 0; tiny[3] = 12
        #expect(parse(tiny) == .failure(.totalLengthTooSmall))
        #expect(parse(good + [0, 0], exact: true) == .failure(.totalLengthTooSmall))
        var checksum = good; checksum[11] ^= 0xFF
        #expect(parse(checksum) == .failure(.badChecksum))
        // Ethernet padding after the packet is allowed and cut off when not exact.
        #expect((try? parse(good + [0, 0, 0]).get().totalLength) == good.count)
    }

    @Test func editsKeepTheChecksumValid() throws {
        var packet = Fixture.bytes("ipv4-icmp-echo")
        packet.withUnsafeMutableBytes { IPv4HeaderEditor.decrementTTL($0) }
        let afterTTL = try parse(packet).get()
        #expect(afterTTL.ttl == 62)
        packet.withUnsafeMutableBytes { IPv4HeaderEditor.setTOS($0, to: 0x03) }
        #expect(try parse(packet).get().tos == 0x03)
    }
}
