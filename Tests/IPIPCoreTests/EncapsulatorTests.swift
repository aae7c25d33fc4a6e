import Testing
@testable import IPIPCore

/// The encapsulator and decapsulator against scapy-made packets and RFC 2003 / RFC 6040 rules.
@Suite struct EncapsulatorTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!

    /// Runs the encapsulator on `inner` as the TUN would deliver it; returns the verdict and the bytes.
    func encapsulate(_ inner: [UInt8], config: GatewayConfig? = nil, encapsulator: inout Encapsulator) -> (Encapsulator.Verdict, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: Encapsulator.headroom) + inner
        let verdict = buffer.withUnsafeMutableBytes { encapsulator.encapsulate($0, innerLength: inner.count, now: 0) }
        if case let .send(range, _, _) = verdict { return (verdict, Array(buffer[range])) }
        return (verdict, [])
    }

    func outer(_ bytes: [UInt8]) throws -> IPv4HeaderFields {
        try bytes.withUnsafeBytes { buffer in
            let view = try IPv4PacketView(validating: buffer, exactLength: true)
            return IPv4HeaderFields(tos: view.tos, totalLength: view.totalLength, identification: view.identification,
                                    dontFragment: view.dontFragment, ttl: view.ttl, protocolNumber: view.protocolNumber,
                                    source: view.source, destination: view.destination)
        }
    }

    /// An inner packet from machine A (203.0.113.87) to host C with the given TOS, TTL and DF.
    func inner(tos: UInt8 = 0, ttl: UInt8 = 64, dontFragment: Bool = false) -> [UInt8] {
        IPv4HeaderFields(tos: tos, dontFragment: dontFragment, ttl: ttl, protocolNumber: IPProtocolNumber.icmp,
                         source: IPv4Address("203.0.113.87")!, destination: IPv4Address("203.0.113.20")!)
            .bytes(payload: ICMPBuilder.echo(request: true, identifier: 1, sequence: 1, payload: [1, 2, 3, 4]))
    }

    @Test func outerHeaderIsTwentyBytesProtocol4WithValidChecksumAndChangingID() throws {
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480, paths: [PeerPathState(firstIdentification: 0xFFFF)])
        let packet = inner()
        let (first, bytes1) = encapsulate(packet, encapsulator: &encapsulator)
        let start = Encapsulator.headroom - 20
        #expect(first == .send(packet: start..<(start + 20 + packet.count), peer: 0, notifyUnreachable: false))
        let header = try outer(bytes1)
        #expect(bytes1[0] == 0x45)
        #expect(header.protocolNumber == IPProtocolNumber.ipip)
        #expect(header.source == IPv4Address("198.51.100.37") && header.destination == IPv4Address("203.0.113.86"))
        #expect(Array(bytes1[20...]) == packet, "the inner packet is carried untouched")
        let (_, bytes2) = encapsulate(packet, encapsulator: &encapsulator)
        let (_, bytes3) = encapsulate(packet, encapsulator: &encapsulator)
        #expect(header.identification == 0xFFFF)
        #expect(try outer(bytes2).identification == 1, "0 is skipped: the kernel would replace it")
        #expect(try outer(bytes3).identification == 2)
    }

    @Test func ttlInheritOrFixed() throws {
        var inherit = Encapsulator(config: machineA, tunnelMTU: 1480)
        #expect(try outer(encapsulate(inner(ttl: 17), encapsulator: &inherit).1).ttl == 17)
        var fixedConfig = machineA
        fixedConfig.tunnel.ttl = .fixed(200)
        var fixed = Encapsulator(config: fixedConfig, tunnelMTU: 1480)
        #expect(try outer(encapsulate(inner(ttl: 17), encapsulator: &fixed).1).ttl == 200)
    }

    /// (tos setting, inner TOS, expected outer TOS)
    static let tosCases: [(GatewayConfig.TOSSetting, UInt8, UInt8)] = [
        (.fixed(0), 0xB8, 0x00),            // DSCP EF dropped, Not-ECT copied
        (.fixed(0), 0xBA, 0x02),            // ECT(0) copied
        (.fixed(0), 0xB9, 0x01),            // ECT(1) copied
        (.fixed(0), 0xBB, 0x02),            // CE becomes ECT(0)
        (.inherit, 0xBB, 0xBA),             // DSCP copied, CE becomes ECT(0)
        (.inherit, 0x29, 0x29),
        (.fixed(0x20), 0xBA, 0x22),         // fixed DSCP, ECN copied
        (.fixed(0x23), 0x00, 0x20),         // ECN bits of the setting ignored
    ]

    @Test(arguments: tosCases)
    func tosAndECN(setting: GatewayConfig.TOSSetting, innerTOS: UInt8, expected: UInt8) throws {
        var config = machineA
        config.tunnel.tos = setting
        var encapsulator = Encapsulator(config: config, tunnelMTU: 1480)
        #expect(try outer(encapsulate(inner(tos: innerTOS), encapsulator: &encapsulator).1).tos == expected)
    }

    @Test func dontFragmentIsPMTUDiscoveryOrInnerDF() throws {
        var on = Encapsulator(config: machineA, tunnelMTU: 1480)
        #expect(try outer(encapsulate(inner(dontFragment: false), encapsulator: &on).1).dontFragment)
        var config = machineA
        config.tunnel.pmtudisc = false
        var off = Encapsulator(config: config, tunnelMTU: 1480)
        #expect(try !outer(encapsulate(inner(dontFragment: false), encapsulator: &off).1).dontFragment)
        #expect(try outer(encapsulate(inner(dontFragment: true), encapsulator: &off).1).dontFragment)
    }

    @Test func dropsWhatItCannotCarry() {
        var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480)
        // An IPv6 router solicitation, as a TUN with IPv6 enabled emits it (to ff02::2), and one to a
        // unicast address no IPv6 route covers.
        var solicitation = [UInt8(0x60), 0, 0, 0, 0, 8, 58, 255] + [UInt8](repeating: 0, count: 40)
        solicitation[24] = 0xFF
        solicitation[25] = 0x02
        solicitation[39] = 2
        #expect(encapsulate(solicitation, encapsulator: &encapsulator).0 == .drop(.linkScope, peer: nil))
        solicitation[24] = 0x20
        #expect(encapsulate(solicitation, encapsulator: &encapsulator).0 == .drop(.noRoute, peer: nil))
        #expect(encapsulate([0x50] + [UInt8](repeating: 0, count: 39), encapsulator: &encapsulator).0 == .drop(.notIP, peer: nil))
        let noRoute = IPv4HeaderFields(protocolNumber: 17, source: IPv4Address("203.0.113.87")!, destination: IPv4Address("192.0.2.1")!)
            .bytes(payload: [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(encapsulate(noRoute, encapsulator: &encapsulator).0 == .drop(.noRoute, peer: nil))
        var corrupt = inner()
        corrupt[10] ^= 0xFF
        #expect(encapsulate(corrupt, encapsulator: &encapsulator).0 == .drop(.malformedInner, peer: nil))
        #expect(encapsulate([], encapsulator: &encapsulator).0 == .drop(.notIP, peer: nil))
    }

    @Test func dropReasonOrdinalsMatchTheirPositions() {
        for (index, reason) in DropReason.allCases.enumerated() { #expect(reason.ordinal == index) }
    }
}
