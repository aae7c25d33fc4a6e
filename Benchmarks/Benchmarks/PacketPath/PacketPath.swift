// The per-packet work of ipipd's core, without I/O: encapsulation, decapsulation, TSO segmentation and
// the route lookup.
// Each benchmark checks that it allocates nothing (mallocCountTotal), which is what the dataplane
// claims for its per-packet path.
import Benchmark
import IPIPCore

let machineA = GatewayConfig(
    uplink: .init(interface: "eth0", address: IPv4Address(198, 51, 100, 37)),
    peers: [.init(name: "b", remote: IPv4Address(203, 0, 113, 86), routes: [IPv4Prefix(IPv4Address(203, 0, 113, 0), length: 24)])]
)

/// An inner UDP packet of `length` bytes from machine A's ghost address to host C.
func innerPacket(length: Int) -> [UInt8] {
    IPv4HeaderFields(ttl: 64, protocolNumber: IPProtocolNumber.udp, source: IPv4Address(203, 0, 113, 87),
                     destination: IPv4Address(203, 0, 113, 20))
        .bytes(payload: [UInt8](repeating: 0x5A, count: length - 20))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p100: 0])]
    )

    for length in [64, 1400] {
        Benchmark("encapsulate \(length)-byte packet") { benchmark in
            var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1480)
            let inner = innerPacket(length: length)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 20 + length, alignment: 16)
            defer { buffer.deallocate() }
            inner.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[20...]).copyMemory(from: $0) }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(encapsulator.encapsulate(buffer, innerLength: length, now: 0))
            }
        }

        Benchmark("decapsulate \(length)-byte packet, delivered locally") { benchmark in
            let decapsulator = Decapsulator(config: machineA, localAddresses: [IPv4Address(203, 0, 113, 20)])
            let outer = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipip, source: IPv4Address(203, 0, 113, 86),
                                         destination: IPv4Address(198, 51, 100, 37)).bytes(payload: innerPacket(length: length))
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: outer.count, alignment: 16)
            defer { buffer.deallocate() }
            outer.withUnsafeBytes { buffer.copyMemory(from: $0) }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(decapsulator.decapsulate(buffer))
            }
        }
    }

    Benchmark("decapsulate 64-byte packet, forwarded (TTL decremented; packet restored each time)") { benchmark in
        let decapsulator = Decapsulator(config: machineA, localAddresses: [])
        let outer = IPv4HeaderFields(protocolNumber: IPProtocolNumber.ipip, source: IPv4Address(203, 0, 113, 86),
                                     destination: IPv4Address(198, 51, 100, 37)).bytes(payload: innerPacket(length: 64))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: outer.count, alignment: 16)
        defer { buffer.deallocate() }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            outer.withUnsafeBytes { buffer.copyMemory(from: $0) }
            blackHole(decapsulator.decapsulate(buffer))
        }
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
            let segmenter = TCPSegmenter(superPacket: bytes, segmentSize: segmentSize)!
            for iteration in benchmark.scaledIterations {
                blackHole(segmenter.write(segment: iteration % segmenter.segmentCount, to: destination))
            }
        }
    }

    Benchmark("route lookup among 1000 prefixes") { benchmark in
        var table = RoutingTable<Int>()
        for index in 0..<1000 {
            let length = 16 + index % 17
            table.insert(IPv4Prefix(IPv4Address(UInt32(0xC612_0000) &+ UInt32(index) &* 0x0101), length: length).network, index)
        }
        let probes = (0..<256).map { IPv4Address(UInt32(0xC612_0000) &+ UInt32($0) &* 0x0305) }
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            blackHole(table.lookup(probes[iteration & 255]))
        }
    }
}
