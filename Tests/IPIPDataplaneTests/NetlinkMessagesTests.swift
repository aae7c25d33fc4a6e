import Testing
import IPIPCore
@testable import IPIPDataplane

@Suite struct NetlinkMessagesTests {
    @Test func routeRequestLayout() {
        let route = Netlink.RouteMessage(prefix: IPv4Prefix("203.0.113.86/32")!, outputInterface: 2,
                                         gateway: IPv4Address("198.51.100.1"))
        let bytes = Netlink.addRoute(route, sequence: 7)
        // nlmsghdr (16) + rtmsg (12) + RTA_DST (8) + RTA_GATEWAY (8) + RTA_OIF (8)
        #expect(bytes.count == 52)
        #expect(bytes.littleEndian(UInt32.self, at: 0) == 52)
        #expect(bytes.littleEndian(UInt16.self, at: 4) == Netlink.newRoute)
        #expect(bytes.littleEndian(UInt16.self, at: 6) == 0x0605)   // REQUEST|ACK|CREATE|EXCL
        #expect(bytes.littleEndian(UInt32.self, at: 8) == 7)
        #expect(Array(bytes[16..<24]) == [2, 32, 0, 0, 254, 73, 0, 1])   // AF_INET, /32, main, proto 73, universe, unicast
        #expect(Array(bytes[28..<36]) == [8, 0, 1, 0, 203, 0, 113, 86])   // RTA_DST
        #expect(Array(bytes[36..<44]) == [8, 0, 5, 0, 198, 51, 100, 1])   // RTA_GATEWAY
        #expect(Array(bytes[44..<52]) == [8, 0, 4, 0, 2, 0, 0, 0])        // RTA_OIF
    }

    @Test func parsesARouteReplyAndAnError() throws {
        // A reply as the kernel would send it: RTM_NEWROUTE for 203.0.113.0/24 via 198.51.100.1 dev 3,
        // followed by an NLMSG_ERROR carrying -EEXIST (17).
        var reply = Netlink.message(type: Netlink.newRoute, flags: 0, sequence: 9,
                                    body: [2, 24, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]
                                        + Netlink.attribute(Netlink.routeDestination, [203, 0, 113, 0])
                                        + Netlink.attribute(Netlink.routeGateway, [198, 51, 100, 1])
                                        + Netlink.attribute(Netlink.routeOutputInterface, [3, 0, 0, 0]))
        var errorBody: [UInt8] = []
        errorBody.appendLittleEndian(Int32(-17))
        reply += Netlink.message(type: Netlink.error, flags: 0, sequence: 9, body: errorBody + [UInt8](repeating: 0, count: 16))
        let messages = Netlink.parse(reply)
        #expect(messages.count == 2)
        let route = try #require(Netlink.route(IPv4Address.self, from: messages[0]))
        #expect(route.prefix == IPv4Prefix("203.0.113.0/24"))
        #expect(route.gateway == IPv4Address("198.51.100.1"))
        #expect(route.outputInterface == 3 && route.protocolNumber == 4 && route.table == 254)
        #expect(Netlink.errorCode(of: messages[1]) == 17)
    }

    @Test func ipv6RouteAddressAndProxyEntryLayouts() throws {
        let ipv6Route = Netlink.RouteMessage(prefix: IPPrefix("2001:db8:b::/64")!, outputInterface: 5)
        let route = Netlink.addRoute(ipv6Route, sequence: 3)
        // nlmsghdr (16) + rtmsg (12) + RTA_DST (4 + 16) + RTA_OIF (8)
        #expect(route.count == 56 && route.littleEndian(UInt16.self, at: 4) == Netlink.newRoute)
        #expect(route.littleEndian(UInt16.self, at: 6) == 0x0605)                            // REQUEST|ACK|CREATE|EXCL
        #expect(Array(route[16..<24]) == [10, 64, 0, 0, 254, 73, 0, 1])                      // AF_INET6, /64, main, proto 73
        #expect(Array(route[28..<32]) == [20, 0, 1, 0] && Array(route[32..<36]) == [0x20, 0x01, 0x0d, 0xb8])
        #expect(Array(route[48..<56]) == [8, 0, 4, 0, 5, 0, 0, 0])                           // RTA_OIF
        let delete = Netlink.deleteRoute(ipv6Route, sequence: 4)
        #expect(delete.littleEndian(UInt16.self, at: 4) == Netlink.deleteRoute && delete.littleEndian(UInt16.self, at: 6) == 0x0005)

        let address = Netlink.addAddress(IPAddress("2001:db8:b::87")!, interface: 5, sequence: 5)
        #expect(Array(address[16..<20]) == [10, 128, Netlink.addressNoDAD, 0])               // AF_INET6, /128, nodad
        #expect(Array(address[24..<28]) == [20, 0, 2, 0] && address[24 + 4 + 15] == 0x87)    // IFA_LOCAL

        // `ip -6 neigh add proxy 2001:db8:b::87 dev eth0` as a dump lists it (ndmsg, flags NTF_PROXY).
        var body: [UInt8] = [10, 0, 0, 0, 3, 0, 0, 0, 0, 0, Netlink.neighbourProxyFlag, 0]
        body += Netlink.attribute(Netlink.neighbourDestination, IPv6Address("2001:db8:b::87")!.bytes)
        let entry = try #require(Netlink.proxyNeighbour(IPv6Address.self, from: Netlink.Message(type: Netlink.newNeighbour, flags: 0, sequence: 1, body: body)))
        #expect(entry.interface == 3 && entry.address == IPv6Address("2001:db8:b::87"))
        #expect(Netlink.proxyNeighbour(IPv4Address.self, from: Netlink.Message(type: Netlink.newNeighbour, flags: 0, sequence: 1, body: body)) == nil)

        // A dump's IPv6 route is read by the same decoder as an IPv4 one, and only as IPv6.
        let reply = Netlink.parse(Netlink.message(type: Netlink.newRoute, flags: 0, sequence: 6,
                                                  body: [10, 64, 0, 0, 254, 73, 0, 1, 0, 0, 0, 0]
                                                      + Netlink.attribute(Netlink.routeDestination, IPv6Address("2001:db8:b::")!.bytes)
                                                      + Netlink.attribute(Netlink.routeOutputInterface, [5, 0, 0, 0])
                                                      + Netlink.attribute(Netlink.routePriority, [0, 4, 0, 0])))
        let parsed = try #require(Netlink.route(IPv6Address.self, from: reply[0]))
        #expect(parsed.prefix == IPv6Prefix("2001:db8:b::/64") && parsed.outputInterface == 5 && parsed.priority == 1024 && parsed.protocolNumber == 73)
        #expect(Netlink.route(IPv4Address.self, from: reply[0]) == nil)
        #expect(Netlink.dumpProxyNeighbours(family: Netlink.familyInet6, sequence: 2)[16] == 10)
    }

    @Test func truncatedDatagramsStopTheWalk() {
        let message = Netlink.getRoute(to: IPv4Address("192.0.2.1")!, sequence: 1)
        #expect(Netlink.parse(Array(message.dropLast())).isEmpty)
        #expect(Netlink.parse(message).count == 1)
    }
}
