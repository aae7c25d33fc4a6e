import Testing
@testable import IPIPCore

@Suite struct CaptureFilterTests {
    @Test func tunnelFilterTakesProtocol4AndRoutersErrorsTaggedOrNot() {
        let match = "dst host 198.51.100.37 and (ip proto 4 or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        #expect(CaptureFilter.tunnel(local: IPAddress("198.51.100.37")!) == "(\(match)) or (vlan and \(match))")
    }

    /// FOU and GUE ports, and the later fragments of UDP datagrams, which carry no port to match.
    @Test func tunnelFilterTakesTheFOUPortsAndUDPFragments() {
        let match = "dst host 198.51.100.37 and (ip proto 4 or ip proto 41 or (ip proto 17 and (udp dst port 5555 or udp dst port 6080 "
            + "or ip[6:2] & 0x1fff != 0)) or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        #expect(CaptureFilter.tunnel(local: IPAddress("198.51.100.37")!, ipv6: true, ports: [5555, 6080]) == "(\(match)) or (vlan and \(match))")
    }

    /// Over IPv6 by the first next header, the extension headers the parser walks among them.
    @Test func ipv6UnderlayFilterTakesTheNextHeadersAndICMPv6Errors() {
        let filter = CaptureFilter.tunnel(local: IPAddress("2001:db8:a::37")!, ipv6: true, ports: [5555])
        #expect(filter.hasPrefix("(ip6 dst host 2001:db8:a::37 and (ip6[6] = 4 or ip6[6] = 41 or ip6[6] = 0 or ip6[6] = 43 or "
                                 + "ip6[6] = 44 or ip6[6] = 60 or (ip6[6] = 17 and (udp dst port 5555)) or (ip6[6] = 58 and "))
    }

    @Test func neighbourProxyFilterAsksOrClaimsAGhostAndMatchesNothingWithoutGhosts() {
        #expect(CaptureFilter.neighbourProxy(ghosts: [IPv4Address("203.0.113.88")!, IPv4Address("203.0.113.87")!])
                == "arp and (arp[24:4] = 0xcb007157 or arp[14:4] = 0xcb007157 or arp[24:4] = 0xcb007158 or arp[14:4] = 0xcb007158)")
        #expect(CaptureFilter.neighbourProxy(ghosts: []) == "arp and less 1")
    }
}

/// Issue 27, finding 10: above ~1,085 ghosts the ARP filter passed 4,096 BPF instructions and libpcap
/// filtered every LAN frame in user space, silently. Ghosts are listed as the fewest aligned blocks.
@Suite struct ARPFilterBlockTests {
    func addresses(_ values: some Sequence<UInt32>) -> [IPv4Address] { values.map { IPv4Address($0) } }

    @Test func contiguousGhostsBecomeTheFewestAlignedBlocks() {
        let base = IPv4Address("198.18.0.0")!.value
        #expect(CaptureFilter.addressBlocks(addresses(base..<(base + 4096))).map(\.description) == ["198.18.0.0/20"])
        #expect(CaptureFilter.addressBlocks(addresses((base + 1)...(base + 6))).map(\.description)
                == ["198.18.0.1/32", "198.18.0.2/31", "198.18.0.4/31", "198.18.0.6/32"])
        #expect(CaptureFilter.addressBlocks(addresses([base + 9, base + 9, base + 3])).map(\.description) == ["198.18.0.3/32", "198.18.0.9/32"])
        #expect(CaptureFilter.neighbourProxy(ghosts: addresses(base..<(base + 4)))
                == "arp and (arp[24:4] & 0xfffffffc = 0xc6120000 or arp[14:4] & 0xfffffffc = 0xc6120000)")
    }

    /// Every address of the blocks is a ghost, and every ghost is in a block (a property over random sets).
    @Test func theBlocksHoldExactlyTheGhosts() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let values = Set((0..<Int.random(in: 1...300, using: &generator)).map { _ in UInt32.random(in: 0..<1024, using: &generator) })
            let blocks = CaptureFilter.addressBlocks(addresses(values))
            var covered: [UInt32] = []
            for block in blocks { covered += (0..<(UInt32(1) << (32 - block.length))).map { block.address.value + $0 } }
            #expect(covered.sorted() == values.sorted())
            #expect(blocks.allSatisfy { !$0.hasHostBitsSet })
        }
    }

    @Test func tooManyScatteredGhostsTakeEveryARPFrameAndPlanSaysSo() {
        let scattered = addresses((0..<(UInt32(CaptureFilter.maximumARPBlocks) + 1)).map { IPv4Address("198.18.0.0")!.value + $0 * 2 })
        #expect(CaptureFilter.neighbourProxy(ghosts: scattered) == "arp")
        #expect(CaptureFilter.neighbourProxy(ghosts: Array(scattered.dropLast())).hasPrefix("arp and ("))
    }
}
