// The per-packet work of ipipd's core, without I/O: the production packet paths (what the dataplane's
// loops call for each TUN read and each captured frame), TSO segmentation and the route lookup.
// Each benchmark checks that it allocates nothing (mallocCountTotal), which is what the dataplane
// claims for its per-packet path.
import Benchmark
import IPIPCore

let machineA = GatewayConfig(
    uplink: .init(interface: "eth0", address: IPv4Address(198, 51, 100, 37)),
    peers: [.init(name: "b", remote: IPv4Address(203, 0, 113, 86),
                  routes: [.v4(IPv4Prefix(IPv4Address(203, 0, 113, 0), length: 24)), .v6(IPv6Prefix(IPv6Address("2001:db8:b::")!, length: 48))])]
)

/// An inner IPv6 UDP packet of `length` bytes from machine A's IPv6 ghost address to host C (`reversed`:
/// from C to the ghost).
func innerPacket6(length: Int, reversed: Bool = false) -> [UInt8] {
    var packet = [UInt8](repeating: 0x5A, count: length)
    let ghost = IPv6Address("2001:db8:b::87")!, hostC = IPv6Address("2001:db8:b::20")!
    packet.withUnsafeMutableBytes {
        IPv6HeaderFields(payloadLength: length - IPv6PacketView.headerLength, nextHeader: IPProtocolNumber.udp, hopLimit: 64,
                         source: reversed ? hostC : ghost, destination: reversed ? ghost : hostC).write(into: $0)
    }
    return packet
}

/// An inner UDP packet of `length` bytes from machine A's ghost address to host C (or as given).
func innerPacket(length: Int, source: IPv4Address = IPv4Address(203, 0, 113, 87), destination: IPv4Address = IPv4Address(203, 0, 113, 20)) -> [UInt8] {
    IPv4HeaderFields(ttl: 64, protocolNumber: IPProtocolNumber.udp, source: source, destination: destination)
        .bytes(payload: [UInt8](repeating: 0x5A, count: length - 20))
}

/// Machine B's outer packet carrying `inner`, as libpcap captures it on A's uplink.
func capturedFrame(inner: [UInt8]) -> [UInt8] {
    let outer = IPv4HeaderFields(protocolNumber: inner[0] >> 4 == 6 ? IPProtocolNumber.ipv6 : IPProtocolNumber.ipip, source: IPv4Address(203, 0, 113, 86),
                                 destination: IPv4Address(198, 51, 100, 37)).bytes(payload: inner)
    return EthernetBuilder.frame(destination: MACAddress(2, 0, 0, 0, 0, 0x37), source: MACAddress(2, 0, 0, 0, 0, 0x86),
                                 etherType: EtherType.ipv4, payload: outer)
}

func capturedFrame(innerLength: Int) -> [UInt8] {
    capturedFrame(inner: innerPacket(length: innerLength))
}

/// Machine A's and machine B's configs with another outer header (issue 25): FOU or GUE over IPv4, or an
/// IPv6 underlay (ip6tnl with the encapsulation limit, or FOU with its UDP checksum).
enum OuterHeader: String, CaseIterable {
    /// Protocol 4 as the others are built (B's own path writes what A takes): their yardstick.
    case ipip, fou, gue, ip6tnl, fou6 = "fou over IPv6"

    func configs() -> (a: GatewayConfig, b: GatewayConfig) {
        var a = machineA
        let routesOfA = a.peers[0].routes
        var b = GatewayConfig(uplink: .init(interface: "eth0", address: IPv4Address(203, 0, 113, 86)),
                              peers: [.init(name: "a", remote: IPv4Address(198, 51, 100, 37),
                                            routes: [.v4(IPv4Prefix(IPv4Address(203, 0, 113, 87), length: 32)),
                                                     .v6(IPv6Prefix(IPv6Address("2001:db8:b::87")!, length: 128))])])
        b.peers[0].acceptSources = routesOfA   // B answers host C's traffic: any source of A's side is fine here
        if self == .ip6tnl || self == .fou6 {
            a.uplink.address = .v6(IPv6Address("2001:db8:a::37")!)
            a.peers[0].remote = .v6(IPv6Address("2001:db8:b::86")!)
            b.uplink.address = .v6(IPv6Address("2001:db8:b::86")!)
            b.peers[0].remote = .v6(IPv6Address("2001:db8:a::37")!)
        }
        let encapsulation: UDPEncapsulation?
        let ports: [FOUPort]
        switch self {
        case .fou, .fou6:
            encapsulation = UDPEncapsulation(kind: .fou, destinationPort: 5555, destinationPort6: 5556)
            ports = [FOUPort(port: 5555, payload: .fou(innerProtocol: 4)), FOUPort(port: 5556, payload: .fou(innerProtocol: 41))]
        case .gue:
            encapsulation = UDPEncapsulation(kind: .gue, destinationPort: 6080)
            ports = [FOUPort(port: 6080, payload: .gue)]
        case .ipip, .ip6tnl:
            encapsulation = nil
            ports = []
        }
        for index in [0] {
            a.peers[index].encapsulation = encapsulation
            b.peers[index].encapsulation = encapsulation
        }
        a.fouPorts = ports
        b.fouPorts = ports
        return (a, b)
    }
}

/// What `config`'s gateway sends for `inner` read from its TUN device, as the peer's capture takes it.
func framesSent(by config: GatewayConfig, inner: [UInt8]) -> [UInt8] {
    let path = EncapsulationPath(config: config, tunnelMTU: 1440, counters: TunnelCounters(peerNames: ["peer"]), paths: [PeerPathState()])
    let batch = PacketBatch()
    let read = [UInt8](repeating: 0, count: VirtioNetHeader.size) + inner
    read.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...]).copyMemory(from: $0) }
    path.process(readLength: read.count, in: batch, now: 0)
    precondition(batch.count == 1, "\(config.encapsulations[0].summary) sent nothing")
    let outer = Array(batch.packet(at: 0))
    return EthernetBuilder.frame(destination: MACAddress(2, 0, 0, 0, 0, 0x37), source: MACAddress(2, 0, 0, 0, 0, 0x86),
                                 etherType: outer[0] >> 4 == 6 ? EtherType.ipv6 : EtherType.ipv4, payload: outer)
}

/// Machine A's decapsulation path taking `frames` in turn, over and over, as one capture burst each
/// time round (the batch is emptied without sending after each round, or when full: the work up to
/// the send).
func decapsulate(_ frames: [[UInt8]], offload: VirtioNetHeader = .plain, delivery: GatewayConfig.Delivery, config base: GatewayConfig = machineA,
                 _ benchmark: Benchmark) {
    var config = base
    config.tunnel.delivery = delivery
    let path = DecapsulationPath(config: config, tunnelMTU: 1480, counters: TunnelCounters(peerNames: ["b"]), paths: [PeerPathState()],
                                 localNetworks: LocalNetworks(addresses: [IPv4Address(198, 51, 100, 37)]))
    let batch = PacketBatch()
    // Copied out of the arrays first, so that each iteration measures the path and not array access.
    let buffers = frames.map { frame in
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 16)
        frame.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(buffer)
    }
    defer { buffers.forEach { $0.deallocate() } }
    var index = 0
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        path.process(frame: buffers[index], wireLength: buffers[index].count, offload: offload, in: batch, now: 0)
        index += 1
        if index == buffers.count {
            index = 0
            if buffers.count > 1 { batch.removeAll() }   // the burst ends: sent
        }
    }
    blackHole(batch.count)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p100: 0])]
    )

    for (family, length, inner) in [("", 64, innerPacket(length: 64)), ("", 1400, innerPacket(length: 1400)),
                                    ("IPv6 ", 64, innerPacket6(length: 64))] {
        Benchmark("encapsulation path: TUN read of a \(length)-byte \(family)packet → queued to its peer") { benchmark in
            let counters = TunnelCounters(peerNames: ["b"])
            let path = EncapsulationPath(config: machineA, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()])
            let batch = PacketBatch()   // emptied without sending when full: the work up to the send
            let read = [UInt8](repeating: 0, count: VirtioNetHeader.size) + inner
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                read.withUnsafeBytes {
                    UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...]).copyMemory(from: $0)
                }
                path.process(readLength: read.count, in: batch, now: 0)
            }
            blackHole(batch.count)
        }

        Benchmark("decapsulation path: captured \(length)-byte \(family)frame → inner packet for the kernel's receive path (TUN)") { benchmark in
            decapsulate([capturedFrame(inner: inner)], delivery: .kernel, benchmark)
        }
    }

    // The other outer headers (issue 25), each way, at both sizes; B's outer packets built by B's own path.
    for outer in OuterHeader.allCases {
        let (configA, configB) = outer.configs()
        for (family, length, inner) in [("", 64, innerPacket(length: 64)), ("", 1400, innerPacket(length: 1400)), ("IPv6 ", 64, innerPacket6(length: 64))]
        where length == 64 || outer == .ipip || outer == .fou || outer == .ip6tnl {
            Benchmark("encapsulation path, \(outer.rawValue): TUN read of a \(length)-byte \(family)packet → queued to its peer") { benchmark in
                let path = EncapsulationPath(config: configA, tunnelMTU: 1440, counters: TunnelCounters(peerNames: ["b"]), paths: [PeerPathState()])
                let batch = PacketBatch()
                let read = [UInt8](repeating: 0, count: VirtioNetHeader.size) + inner
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    read.withUnsafeBytes {
                        UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...]).copyMemory(from: $0)
                    }
                    path.process(readLength: read.count, in: batch, now: 0)
                }
                blackHole(batch.count)
            }
            let reply = family.isEmpty ? innerPacket(length: length, source: IPv4Address(203, 0, 113, 20), destination: IPv4Address(203, 0, 113, 87))
                                       : innerPacket6(length: length, reversed: true)
            Benchmark("decapsulation path, \(outer.rawValue): captured \(length)-byte \(family)frame → inner packet for the TUN") { benchmark in
                decapsulate([framesSent(by: configB, inner: reply)], delivery: .kernel, config: configA, benchmark)
            }
        }
    }

    Benchmark("decapsulation path: captured 64-byte frame → inner packet routed by ipipd (routed delivery, TTL decremented)") { benchmark in
        decapsulate([capturedFrame(innerLength: 64)], delivery: .routed, benchmark)
    }

    Benchmark("decapsulation path: captured 1452-byte TCP segment → joined to the super-packet for the TUN (GRO; per segment)") { benchmark in
        // 44 segments of one flow (timestamps, DF), cut from one stream with their checksums, each in B's outer packet.
        var stream = IPv4HeaderFields(dontFragment: true, ttl: 64, protocolNumber: IPProtocolNumber.tcp,
                                      source: IPv4Address(203, 0, 113, 87), destination: IPv4Address(203, 0, 113, 20))
            .bytes(payload: [UInt8](repeating: 0x5A, count: 32 + 44 * 1400))
        stream[32] = 8 << 4   // TCP data offset: 32 bytes
        stream[33] = 0x10     // ACK
        let frames: [[UInt8]] = stream.withUnsafeBytes { bytes in
            let segmenter = GSOSegmenter(superPacket: bytes, segmentSize: 1400)!
            var segment = [UInt8](repeating: 0, count: 1452)
            return (0..<segmenter.segmentCount).map { index in
                _ = segment.withUnsafeMutableBytes { segmenter.write(segment: index, to: $0.baseAddress!) }
                return capturedFrame(inner: segment)
            }
        }
        decapsulate(frames, delivery: .kernel, benchmark)
    }

    // A frame the uplink's GRO merged: 45 TCP segments of 1,400 bytes behind one copy of their headers,
    // the TCP checksum left partial, as the capture hands it over with its virtio-net header.
    let merged: [UInt8] = {
        var inner = IPv4HeaderFields(dontFragment: true, ttl: 64, protocolNumber: IPProtocolNumber.tcp,
                                     source: IPv4Address(203, 0, 113, 87), destination: IPv4Address(203, 0, 113, 20))
            .bytes(payload: [UInt8](repeating: 0x5A, count: 32 + 45 * 1400))
        inner[32] = 8 << 4   // TCP data offset: 32 bytes
        inner[33] = 0x10     // ACK
        return capturedFrame(inner: inner)
    }()
    let mergedOffload = VirtioNetHeader(checksum: (14 + 20 + 20, 16), segmentation: .tcpIPv4(segmentSize: 1400))
    Benchmark("decapsulation path: a 63 KiB frame the uplink's GRO merged (45 segments) → one GSO packet for the TUN (per frame)") { benchmark in
        decapsulate([merged], offload: mergedOffload, delivery: .kernel, benchmark)
    }
    Benchmark("decapsulation path: a 63 KiB frame the uplink's GRO merged → cut into its 45 segments (routed delivery; per frame)") { benchmark in
        decapsulate([merged], offload: mergedOffload, delivery: .routed, benchmark)
    }

    Benchmark("cut a 64 KiB TSO packet into 1428-byte segments (per segment)") { benchmark in
        // A TCP/IPv4 packet as the kernel hands it to the TUN device with TSO: 20 + 32 header bytes.
        var superPacket = IPv4HeaderFields(ttl: 64, protocolNumber: IPProtocolNumber.tcp, source: IPv4Address(203, 0, 113, 87),
                                           destination: IPv4Address(203, 0, 113, 20)).bytes(payload: [UInt8](repeating: 0x5A, count: 65_000))
        superPacket[32] = 8 << 4   // TCP data offset: 32 bytes
        let segmentSize = 1428 - 52
        let destination = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)
        defer { destination.deallocate() }
        benchmark.startMeasurement()
        superPacket.withUnsafeBytes { bytes in
            let segmenter = GSOSegmenter(superPacket: bytes, segmentSize: segmentSize)!
            for iteration in benchmark.scaledIterations {
                blackHole(segmenter.write(segment: iteration % segmenter.segmentCount, to: destination))
            }
        }
    }

    // A hub's table as scripts/hub-config.py writes it (/32s, /31s, /30s of 198.18.0.0/16, 10 per
    // peer), at 10, 1,000 and 10,000 peers: the lookup may cost more per prefix length in use, not per prefix.
    for peers in [10, 1000, 10_000] {
        // Built once, outside the measurement: freeing a 100,000-prefix table costs more than 1,000 lookups.
        let table = hubTable(prefixes: peers * 10)
        // Addresses covered by the table, spread over it, visited in an order the cache cannot follow.
        let probes = (0..<4096).map { IPv4Address(UInt32(0xC612_0000) &+ UInt32(($0 &* 2_654_435_761) % UInt(min(peers * 10, 65536)))) }
        Benchmark("route lookup in a hub's table: \(peers) peers, \(peers * 10) prefixes of 3 lengths") { benchmark in
            for iteration in benchmark.scaledIterations {
                blackHole(table.lookup(probes[iteration & 4095]))
            }
        }
    }

    Benchmark("route lookup among 1000 prefixes of 17 lengths") { benchmark in
        let table = PrefixTable((0..<1000).map { index in
            (IPv4Prefix(IPv4Address(UInt32(0xC612_0000) &+ UInt32(index) &* 0x0101), length: 16 + index % 17).network, index)
        }, uniquingPrefixesWith: { _, later in later })
        let probes = (0..<256).map { IPv4Address(UInt32(0xC612_0000) &+ UInt32($0) &* 0x0305) }
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            blackHole(table.lookup(probes[iteration & 255]))
        }
    }
}

/// The prefixes of scripts/hub-config.py, in its order: every /32 of 198.18.0.0/16, then every /31,
/// then every /30; the first `prefixes` of them, ten to a peer.
func hubTable(prefixes: Int) -> PrefixTable<Int> {
    var entries: [(IPv4Prefix, Int)] = []
    for length in [32, 31, 30] {
        let step = 1 << (32 - length)
        for offset in stride(from: 0, to: 1 << 16, by: step) where entries.count < prefixes {
            entries.append((IPv4Prefix(IPv4Address(UInt32(0xC612_0000) + UInt32(offset)), length: length), entries.count / 10))
        }
    }
    return PrefixTable(entries, uniquingPrefixesWith: { _, later in later })
}
