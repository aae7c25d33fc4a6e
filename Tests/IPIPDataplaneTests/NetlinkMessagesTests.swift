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
        let route = try #require(Netlink.route(from: messages[0]))
        #expect(route.prefix == IPv4Prefix("203.0.113.0/24"))
        #expect(route.gateway == IPv4Address("198.51.100.1"))
        #expect(route.outputInterface == 3 && route.protocolNumber == 4 && route.table == 254)
        #expect(Netlink.errorCode(of: messages[1]) == 17)
    }

    @Test func truncatedDatagramsStopTheWalk() {
        let message = Netlink.getRoute(to: IPv4Address("192.0.2.1")!, sequence: 1)
        #expect(Netlink.parse(Array(message.dropLast())).isEmpty)
        #expect(Netlink.parse(message).count == 1)
    }
}
