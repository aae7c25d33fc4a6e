import Testing
@testable import IPIPCore

/// Issue 26: kernel delivery joins a flow's consecutive UDP datagrams into one UDP_L4 super-packet for
/// the TUN device, by the rules of Linux's UDP GRO; what the kernel cuts it into (its IDs included)
/// must be exactly what arrived.
@Suite struct UDPCoalescingTests {
    let coalescing = FlowCoalescerTests()

    /// `count` datagrams of one flow from the ghost address to host C (IPv6: host C to A's tunnel address),
    /// `size` payload bytes each (the last `lastSize`), IDs counting up from `identification`, cut by
    /// `GSOSegmenter` so that their lengths and checksums are right.
    static func datagrams(count: Int, size: Int = 36, lastSize: Int? = nil, identification: UInt16 = 0xFFF0,
                          sourcePort: UInt16 = 40000, ipv6: Bool = false) -> [[UInt8]] {
        let payloadLength = size * (count - 1) + (lastSize ?? size)
        let udp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0x13, 0x89, 0, 0, 0, 0]
        let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        var whole = ipv6 ? FlowCoalescerTests.ipv6Packet(udp + payload)
            : IPv4HeaderFields(identification: identification, dontFragment: true, protocolNumber: IPProtocolNumber.udp,
                               source: MachineA.ghost, destination: MachineA.hostC).bytes(payload: udp + payload)
        if ipv6 { whole[6] = IPProtocolNumber.udp }
        return FlowCoalescerTests.cut(whole, segmentSize: size)
    }

    func written(_ packets: [[UInt8]]) -> [SentPackets.Packet] {
        let sent = SentPackets(), path = coalescing.path()
        for packet in packets { coalescing.capture(path, packet, sent) }
        return sent.flush()
    }

    @Test(arguments: [false, true])
    func aBurstOfOneFlowBecomesOneUDPSuperPacketThatCutsBackIntoIt(ipv6: Bool) throws {
        let datagrams = Self.datagrams(count: 20, lastSize: 29, ipv6: ipv6)
        let written = written(datagrams)
        try #require(written.count == 1)
        #expect(written[0].kind == .superPacket(peer: 0, innerLength: datagrams.map(\.count).reduce(0, +), segments: 20, frames: 20))
        #expect(written[0].bytes.withUnsafeBytes { VirtioNetHeader($0) }.segmentation == .udp(segmentSize: 36))
        // The IDs wrap from 0xFFF0 through 0: the kernel counts them the same way.
        #expect(try FlowCoalescerTests.segmentsTheKernelSees(written[0].bytes) == datagrams)
    }

    @Test func aSuperPacketHoldsAtMost64Datagrams() throws {
        let datagrams = Self.datagrams(count: 100)
        let written = written(datagrams)
        #expect(written.map(\.kind) == [.superPacket(peer: 0, innerLength: 64 * datagrams[0].count, segments: 64, frames: 64),
                                        .superPacket(peer: 0, innerLength: 36 * datagrams[0].count, segments: 36, frames: 36)])
        #expect(try written.map(\.bytes).flatMap(FlowCoalescerTests.segmentsTheKernelSees) == datagrams)
    }

    /// What UDP GRO would not join, and what the kernel could not cut back into what arrived.
    @Test func datagramsThatGROWouldNotJoinGoOnTheirOwn() throws {
        let datagrams = Self.datagrams(count: 2)
        func changed(_ change: (inout [UInt8]) -> Void) -> [UInt8] { FlowCoalescerTests.changed(datagrams[1], change) }
        var corrupt = datagrams[1]
        corrupt[40] ^= 0x01
        var noChecksum = datagrams[1]
        noChecksum[26] = 0
        noChecksum[27] = 0
        // A datagram shorter than its IP packet (trailing bytes): the UDP length is not the packet's.
        var trailing = FlowCoalescerTests.withChecksumsRight(Array(datagrams[1][0..<40]) + [0, 0, 0, 0])
        trailing.withUnsafeMutableBytes { $0.setUInt16(UInt16(40 - 20 - 4), at: 24) }
        let refused: [(String, [UInt8])] = [
            ("identification out of order", changed { $0[5] &+= 1 }), ("TOS", changed { $0[1] = 0x04 }), ("TTL", changed { $0[8] = 1 }),
            ("DF", changed { $0[6] = 0 }), ("source", changed { $0[15] ^= 1 }), ("destination", changed { $0[19] ^= 1 }),
            ("source port", changed { $0[21] ^= 1 }), ("destination port", changed { $0[23] ^= 1 }),
            ("checksum", corrupt), ("no checksum", noChecksum), ("UDP length", trailing),
            ("longer datagram", Self.datagrams(count: 1, size: 37, identification: 0xFFF1)[0]),
            ("TCP", FlowCoalescerTests.segments(count: 1)[0]), ("family", Self.datagrams(count: 2, ipv6: true)[1]),
        ]
        for (what, second) in refused {
            let written = written([datagrams[0], second])
            #expect(written.count == 2, "another \(what) joined")
            #expect(written.allSatisfy { $0.kind == .decapsulated(peer: 0, innerLength: $0.bytes.count - 10, viaTUN: true) }, "\(what)")
        }
        #expect(written(datagrams).count == 1)
    }

    @Test func theFirstDatagramsChecksumIsCheckedBeforeItIsReplaced() throws {
        var datagrams = Self.datagrams(count: 2)
        datagrams[0][40] ^= 0x80
        let written = written(datagrams)
        #expect(written.count == 2 && written.map { Array($0.bytes[10...]) } == datagrams)
    }

    @Test func aShorterDatagramEndsTheSuperPacket() throws {
        let short = Self.datagrams(count: 3, lastSize: 10)
        let next = Self.datagrams(count: 1, identification: 0xFFF3)[0]   // consecutive, but the burst ended
        let written = written(short + [next])
        #expect(written.map(\.kind) == [.superPacket(peer: 0, innerLength: short.map(\.count).reduce(0, +), segments: 3, frames: 3),
                                        .decapsulated(peer: 0, innerLength: next.count, viaTUN: true)])
    }
}
