import Testing
@testable import IPIPCore

@Suite struct CaptureFilterTests {
    @Test func tunnelFilterTakesProtocol4AndRoutersErrorsTaggedOrNot() {
        let match = "dst host 198.51.100.37 and (ip proto 4 or (icmp and (icmp[0] = 3 or icmp[0] = 11)))"
        #expect(CaptureFilter.tunnel(local: IPv4Address("198.51.100.37")!) == "(\(match)) or (vlan and \(match))")
    }

    @Test func proxyARPFilterAsksOrClaimsAGhostAndMatchesNothingWithoutGhosts() {
        #expect(CaptureFilter.proxyARP(ghosts: [IPv4Address("203.0.113.88")!, IPv4Address("203.0.113.87")!])
                == "arp and (arp[24:4] = 0xcb007157 or arp[14:4] = 0xcb007157 or arp[24:4] = 0xcb007158 or arp[14:4] = 0xcb007158)")
        #expect(CaptureFilter.proxyARP(ghosts: []) == "arp and less 1")
    }
}
