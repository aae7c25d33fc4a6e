import Testing
@testable import IPIPCore

@Suite struct DecapsulatorTests {
    let machineA = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "a").config!
    let ghost = IPv4Address("203.0.113.87")!

    /// scapy's encapsulated echo: B (203.0.113.86) → A (198.51.100.37), inner C → ghost, inner TTL 63.
    var scapyPacket: [UInt8] { Fixture.bytes("ipip-encapsulated-echo") }

    /// Machine A's decapsulator with this machine's `local` addresses and subnets, delivering as `delivery` says.
    func decapsulate(_ packet: inout [UInt8], local: Set<IPv4Address> = [], networks: [IPv4Prefix] = [],
                     localRoutes: LocalRoutes = LocalRoutes([]), delivery: GatewayConfig.Delivery = .routed) -> Decapsulator.Verdict {
        var config = machineA
        config.tunnel.delivery = delivery
        let decapsulator = Decapsulator(config: config, localNetworks: LocalNetworks(addresses: local, networks: networks),
                                        localRoutes: localRoutes)
        return packet.withUnsafeMutableBytes { decapsulator.decapsulate($0) }
    }

    func innerTTL(_ packet: [UInt8]) throws -> UInt8 {
        try packet.withUnsafeBytes { try IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: $0[20...]), exactLength: true).ttl }
    }

    /// A packet for this machine takes the TUN device in both modes (the kernel's receive path: INPUT
    /// with iif tunl, never lo), untouched.
    @Test(arguments: [GatewayConfig.Delivery.kernel, .routed])
    func aLocalInnerPacketGoesToTheTUNUntouched(delivery: GatewayConfig.Delivery) throws {
        var packet = scapyPacket
        let verdict = decapsulate(&packet, local: [ghost], delivery: delivery)
        #expect(verdict == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        #expect(Array(packet[20...]) == Fixture.bytes("ipv4-icmp-echo"))
    }

    /// An address the kernel routes as local without any interface holding it (AnyIP: `ip route add
    /// local 203.0.113.80/28 dev lo`) takes the TUN device too, untouched: routed by ipipd it would be
    /// received through lo, past a firewall's `iifname "tunl"` rules. So does every packet before the
    /// routes are read. And no inner packet may come from such an address.
    @Test func anAnyIPAddressTakesTheTUNDeviceAndIsNoSourceInTheRoutedDelivery() throws {
        var packet = scapyPacket
        let anyIP = LocalRoutes([IPv4Prefix("203.0.113.80/28")!])
        #expect(decapsulate(&packet, localRoutes: anyIP) == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        #expect(try innerTTL(packet) == 63)
        packet = scapyPacket
        #expect(decapsulate(&packet, localRoutes: .unread) == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        packet = scapyPacket
        #expect(decapsulate(&packet, localRoutes: LocalRoutes([IPv4Prefix("198.18.50.0/24")!])) == .deliver(peer: 0, inner: 20..<packet.count, route: .routed))
        packet = scapyPacket   // from host C, 203.0.113.20
        #expect(decapsulate(&packet, localRoutes: LocalRoutes([IPv4Prefix("203.0.113.16/28")!])) == .drop(.martianSource, peer: 0))
        packet = scapyPacket
        #expect(decapsulate(&packet, localRoutes: .unread) != .drop(.martianSource, peer: 0), "unread routes make no source a martian")
    }

    /// Kernel delivery: every inner packet goes to the TUN device as it came; the kernel's forwarding
    /// decrements the TTL.
    @Test func withKernelDeliveryEveryPacketGoesToTheTUNUntouched() throws {
        var packet = scapyPacket
        #expect(decapsulate(&packet, delivery: .kernel) == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
        #expect(try innerTTL(packet) == 63)
    }

    @Test func withRoutedDeliveryAForwardedInnerPacketLosesOneTTL() throws {
        var packet = scapyPacket
        #expect(decapsulate(&packet) == .deliver(peer: 0, inner: 20..<packet.count, route: .routed))
        #expect(try innerTTL(packet) == 62, "decremented with a valid checksum")
    }

    /// What the kernel's receive path would refuse, refused in both modes and counted by its reason;
    /// and what no peer may send: an inner source outside its accept-sources.
    @Test(arguments: [GatewayConfig.Delivery.kernel, .routed])
    func martiansSourceRoutesAndForeignSourcesAreDropped(delivery: GatewayConfig.Delivery) {
        let hostC = IPv4Address("203.0.113.20")!, uplink = IPv4Address("198.51.100.37")!
        let networks = [IPv4Prefix("198.51.100.37/24")!, IPv4Prefix("127.0.0.1/8")!]
        func verdict(from source: IPv4Address, to destination: IPv4Address, options: [UInt8] = []) -> Decapsulator.Verdict {
            var inner = IPv4HeaderFields(ttl: 9, protocolNumber: IPProtocolNumber.udp, source: source, destination: destination)
                .bytes(payload: [])
            inner += options + [UInt8](repeating: 0, count: 8)
            inner.withUnsafeMutableBytes { header in
                header[0] = 0x40 | UInt8((20 + options.count) / 4)
                header.setUInt16(UInt16(header.count), at: 2)
                IPv4HeaderEditor.recomputeChecksum(header)
            }
            var packet = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipip, source: IPv4Address("203.0.113.86")!, destination: uplink)
                .bytes(payload: inner)
            return decapsulate(&packet, networks: networks, delivery: delivery)
        }
        let ok: Decapsulator.Route = delivery == .kernel ? .tun : .routed
        if case .deliver(0, _, ok) = verdict(from: hostC, to: IPv4Address("192.0.2.7")!) {} else { Issue.record("a good packet was refused") }
        let drops: [(IPv4Address, IPv4Address, [UInt8], DropReason)] = [
            (IPv4Address("127.0.0.1")!, ghost, [], .martianSource),
            (.any, ghost, [], .martianSource),
            (uplink, ghost, [], .martianSource),                                   // the gateway's own address
            (IPv4Address("224.0.0.5")!, ghost, [], .martianSource),
            (IPv4Address("192.0.2.5")!, ghost, [], .sourceNotAllowed),             // not behind machine B
            (hostC, IPv4Address("127.0.0.1")!, [], .martianDestination),
            (hostC, IPv4Address("224.0.0.1")!, [], .martianDestination),
            (hostC, .broadcast, [], .martianDestination),
            (hostC, IPv4Address("198.51.100.255")!, [], .martianDestination),      // a directed broadcast
            (hostC, IPv4Address("240.0.0.1")!, [], .martianDestination),
            (hostC, ghost, [0x83, 7, 4, 192, 0, 2, 1, 0], .sourceRoute),           // loose source route
            (hostC, ghost, [0x89, 7, 4, 192, 0, 2, 1, 0], .sourceRoute),           // strict source route
            (hostC, ghost, [0x07, 9, 0, 0], .malformedInner),                       // an option longer than the header
        ]
        for (source, destination, options, reason) in drops {
            #expect(verdict(from: source, to: destination, options: options) == .drop(reason, peer: 0), "\(source) → \(destination) \(options)")
        }
        // The peer's own endpoint is accepted by default (its gateway's ICMP errors come from it).
        if case .deliver = verdict(from: IPv4Address("203.0.113.86")!, to: IPv4Address("192.0.2.7")!) {} else { Issue.record("the endpoint was refused") }
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
        var copy = packet, kernel = packet
        #expect(decapsulate(&packet) == .timeExceeded(peer: 0, inner: 20..<packet.count))
        #expect(decapsulate(&copy, local: [ghost]) == .deliver(peer: 0, inner: 20..<copy.count, route: .tun))
        #expect(decapsulate(&kernel, delivery: .kernel) == .deliver(peer: 0, inner: 20..<kernel.count, route: .tun), "the kernel's to decide")
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
            #expect(verdict == .deliver(peer: 0, inner: 20..<packet.count, route: .tun))
            let tos = try packet.withUnsafeBytes { try IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: $0[20...]), exactLength: true).tos }
            let expected = outerECN == .ce ? ECN.ce : innerECN
            #expect(tos & 0b11 == expected.rawValue, "outer \(outerECN), inner \(innerECN)")
        }
    }

    func fixOuterChecksum(_ packet: inout [UInt8]) {
        packet.withUnsafeMutableBytes { IPv4HeaderEditor.recomputeChecksum($0) }
    }
}
