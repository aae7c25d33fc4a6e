import IPIPCore

/// A small rtnetlink codec (RFC 3549, linux/rtnetlink.h): just the messages ipipd sends to configure
/// routes, addresses and links, and the replies it reads, as bytes; `NetlinkSocket` sends and receives them.
/// Netlink uses host byte order (little-endian on every platform ipipd targets); IPv4 addresses in
/// attributes are in network order.
public enum Netlink {
    // Message types (linux/rtnetlink.h).
    public static let done: UInt16 = 3
    public static let error: UInt16 = 2
    public static let newLink: UInt16 = 16
    public static let getLink: UInt16 = 18
    public static let newAddress: UInt16 = 20
    public static let deleteAddress: UInt16 = 21
    public static let newRoute: UInt16 = 24
    public static let deleteRoute: UInt16 = 25
    public static let getRoute: UInt16 = 26
    public static let newNeighbour: UInt16 = 28
    public static let getNeighbour: UInt16 = 30
    /// ndm_flags NTF_PROXY: the proxy-neighbour table (`ip neigh … proxy`).
    public static let neighbourProxyFlag: UInt8 = 0x08
    public static let neighbourDestination: UInt16 = 1   // NDA_DST

    // Flags (linux/netlink.h).
    public static let request: UInt16 = 0x01
    public static let acknowledge: UInt16 = 0x04
    public static let dump: UInt16 = 0x300
    public static let replace: UInt16 = 0x100
    public static let exclusive: UInt16 = 0x200
    public static let create: UInt16 = 0x400

    // Attributes.
    public static let routeDestination: UInt16 = 1    // RTA_DST
    public static let routeOutputInterface: UInt16 = 4 // RTA_OIF
    public static let routeGateway: UInt16 = 5        // RTA_GATEWAY
    public static let routePriority: UInt16 = 6       // RTA_PRIORITY (the metric)
    public static let routePreferredSource: UInt16 = 7 // RTA_PREFSRC
    public static let routeTable: UInt16 = 15         // RTA_TABLE
    public static let addressAddress: UInt16 = 1      // IFA_ADDRESS
    public static let addressLocal: UInt16 = 2        // IFA_LOCAL
    public static let linkMTU: UInt16 = 4             // IFLA_MTU

    /// RTMGRP_IPV4_ROUTE: notifications of IPv4 route changes.
    public static let ipv4RouteGroup: UInt32 = 0x40
    /// RTMGRP_IPV6_ROUTE: notifications of IPv6 route changes.
    public static let ipv6RouteGroup: UInt32 = 0x400
    /// RTMGRP_IPV4_IFADDR: notifications of IPv4 addresses added and removed.
    public static let ipv4AddressGroup: UInt32 = 0x10

    public static let familyInet: UInt8 = 2
    public static let familyInet6: UInt8 = 10
    /// IFA_F_NODAD: no duplicate address detection for an address on a point-to-point TUN device.
    public static let addressNoDAD: UInt8 = 0x02
    public static let mainTable: UInt8 = 254
    public static let scopeUniverse: UInt8 = 0
    public static let scopeLink: UInt8 = 253
    public static let routeTypeUnicast: UInt8 = 1
    /// RTN_LOCAL: delivered to this machine (an interface's address, or an AnyIP range).
    public static let routeTypeLocal: UInt8 = 2
    /// rtm_protocol marking routes ipipd installed (`ip route show proto 73`), so that a restart after
    /// a crash finds its own leftovers. Unassigned in iproute2's rt_protos.
    public static let ipipdRouteProtocol: UInt8 = 73
    public static let interfaceUp: UInt32 = 0x1

    /// A route request or change: `ip [-6] route add|del PREFIX [via GW] dev IFINDEX proto 73`, the
    /// family the prefix's, the gateway's too (pinned endpoints); IPv6 routes have universe scope.
    public struct RouteMessage: Sendable, Equatable {
        public var prefix: IPPrefix
        public var outputInterface: Int32?
        /// In the prefix's family.
        public var gateway: IPAddress?
        public var scope: UInt8
        public var protocolNumber: UInt8
        public init(prefix: IPPrefix, outputInterface: Int32?, gateway: IPAddress? = nil,
                    scope: UInt8? = nil, protocolNumber: UInt8 = Netlink.ipipdRouteProtocol) {
            precondition(gateway == nil || gateway!.isIPv6 == prefix.isIPv6, "a route with a gateway of the other family")
            self.prefix = prefix
            self.outputInterface = outputInterface
            self.gateway = gateway
            self.scope = scope ?? (gateway == nil && !prefix.isIPv6 ? Netlink.scopeLink : Netlink.scopeUniverse)
            self.protocolNumber = protocolNumber
        }
        public init(prefix: IPv4Prefix, outputInterface: Int32?, gateway: IPv4Address? = nil,
                    scope: UInt8? = nil, protocolNumber: UInt8 = Netlink.ipipdRouteProtocol) {
            self.init(prefix: .v4(prefix), outputInterface: outputInterface, gateway: gateway.map(IPAddress.v4), scope: scope,
                      protocolNumber: protocolNumber)
        }
    }

    /// One parsed message from a reply.
    public struct Message: Sendable, Equatable {
        public var type: UInt16
        public var flags: UInt16
        public var sequence: UInt32
        /// The bytes after the 16-byte header.
        public var body: [UInt8]
    }

    // MARK: - Building requests

    static func header(length: Int, type: UInt16, flags: UInt16, sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(UInt32(length))
        bytes.appendLittleEndian(type)
        bytes.appendLittleEndian(flags)
        bytes.appendLittleEndian(sequence)
        bytes.appendLittleEndian(UInt32(0))   // port id: the kernel fills it in
        return bytes
    }

    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(UInt16(4 + payload.count))
        bytes.appendLittleEndian(type)
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    static func networkOrder(_ address: IPv4Address) -> [UInt8] {
        let o = address.octets
        return [o.0, o.1, o.2, o.3]
    }

    static func networkOrder(_ address: IPAddress) -> [UInt8] {
        switch address {
        case .v4(let address): networkOrder(address)
        case .v6(let address): address.bytes
        }
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(value)
        return bytes
    }

    static func message(type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        header(length: 16 + body.count, type: type, flags: flags, sequence: sequence) + body
    }

    static func routeBody(_ route: RouteMessage, type: UInt8) -> [UInt8] {
        var body: [UInt8] = [route.prefix.isIPv6 ? Netlink.familyInet6 : Netlink.familyInet, UInt8(route.prefix.length), 0, 0,
                             Netlink.mainTable, route.protocolNumber, route.scope, type]
        body.appendLittleEndian(UInt32(0))
        body += attribute(routeDestination, networkOrder(route.prefix.network.address))
        if let gateway = route.gateway { body += attribute(routeGateway, networkOrder(gateway)) }
        if let index = route.outputInterface { body += attribute(routeOutputInterface, littleEndian(UInt32(bitPattern: index))) }
        return body
    }

    /// RTM_NEWROUTE with create|exclusive (fails with EEXIST if present) or create|replace.
    public static func addRoute(_ route: RouteMessage, sequence: UInt32, replace: Bool = false) -> [UInt8] {
        message(type: newRoute, flags: request | acknowledge | create | (replace ? Netlink.replace : exclusive),
                sequence: sequence, body: routeBody(route, type: routeTypeUnicast))
    }

    public static func deleteRoute(_ route: RouteMessage, sequence: UInt32) -> [UInt8] {
        message(type: deleteRoute, flags: request | acknowledge, sequence: sequence,
                body: routeBody(route, type: routeTypeUnicast))
    }

    /// RTM_GETROUTE for one destination: the kernel answers with the route it would use (`ip route get`).
    public static func getRoute(to destination: IPv4Address, sequence: UInt32) -> [UInt8] {
        getRoute(to: .v4(destination), sequence: sequence)
    }

    /// RTM_GETROUTE for one destination of either family (`ip [-6] route get`).
    public static func getRoute(to destination: IPAddress, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = [destination.isIPv6 ? familyInet6 : familyInet, destination.isIPv6 ? 128 : 32, 0, 0, 0, 0, 0, 0]
        body.appendLittleEndian(UInt32(0))
        body += attribute(routeDestination, networkOrder(destination))
        return message(type: getRoute, flags: request, sequence: sequence, body: body)
    }

    /// RTM_GETROUTE dump of the IPv4 (or IPv6) tables.
    public static func dumpRoutes(family: UInt8 = familyInet, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = [family, 0, 0, 0, 0, 0, 0, 0]
        body.appendLittleEndian(UInt32(0))
        return message(type: getRoute, flags: request | dump, sequence: sequence, body: body)
    }

    /// RTM_GETNEIGH dump of the IPv4 (or IPv6) proxy-neighbour entries (`ip neigh show proxy`).
    public static func dumpProxyNeighbours(family: UInt8 = familyInet, sequence: UInt32) -> [UInt8] {
        // struct ndmsg: family, 3 pad bytes, ifindex, state, flags, type. The kernel dumps the proxy
        // table when the flags are exactly NTF_PROXY.
        var body: [UInt8] = [family, 0, 0, 0]
        body.appendLittleEndian(Int32(0))
        body.appendLittleEndian(UInt16(0))
        body += [neighbourProxyFlag, 0]
        return message(type: getNeighbour, flags: request | dump, sequence: sequence, body: body)
    }

    /// A proxy-neighbour entry of one family from an RTM_NEWNEIGH message: (interface index, address).
    public static func proxyNeighbour<Address: NetlinkAddress>(_ family: Address.Type, from message: Message)
        -> (interface: Int32, address: Address)? {
        guard message.type == newNeighbour, message.body.count >= 12, message.body[0] == Address.netlinkFamily,
              message.body[10] & neighbourProxyFlag != 0,
              let address = attributes(of: message.body, headerSize: 12)[neighbourDestination].flatMap(Address.init(netlinkBytes:))
        else { return nil }
        return (Int32(bitPattern: message.body.littleEndian(UInt32.self, at: 4)), address)
    }

    /// RTM_NEWADDR: `ip address add ADDRESS/32 dev IFINDEX`, or `ip -6 address add ADDRESS/128 dev
    /// IFINDEX nodad` (a tunnel has no neighbours to detect a duplicate with).
    public static func addAddress(_ address: IPAddress, interface: Int32, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = address.isIPv6 ? [familyInet6, 128, addressNoDAD, scopeUniverse] : [familyInet, 32, 0, scopeUniverse]
        body.appendLittleEndian(UInt32(bitPattern: interface))
        body += attribute(addressLocal, networkOrder(address))
        body += attribute(addressAddress, networkOrder(address))
        return message(type: newAddress, flags: request | acknowledge | create | replace, sequence: sequence, body: body)
    }

    /// RTM_NEWLINK on an existing link: set its MTU and/or bring it up.
    public static func setLink(interface: Int32, mtu: Int?, up: Bool?, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = [0, 0]
        body.appendLittleEndian(UInt16(0))                       // ifi_type
        body.appendLittleEndian(UInt32(bitPattern: interface))   // ifi_index
        body.appendLittleEndian(up == true ? interfaceUp : 0)    // ifi_flags
        body.appendLittleEndian(up == nil ? 0 : interfaceUp)     // ifi_change
        if let mtu { body += attribute(linkMTU, littleEndian(UInt32(mtu))) }
        return message(type: newLink, flags: request | acknowledge, sequence: sequence, body: body)
    }

    // MARK: - Parsing replies

    /// Splits a datagram from the kernel into messages. Malformed lengths end the walk.
    public static func parse(_ datagram: [UInt8]) -> [Message] {
        var messages: [Message] = []
        var offset = 0
        while offset + 16 <= datagram.count {
            let length = Int(datagram.littleEndian(UInt32.self, at: offset))
            guard length >= 16, offset + length <= datagram.count else { break }
            messages.append(Message(type: datagram.littleEndian(UInt16.self, at: offset + 4),
                                    flags: datagram.littleEndian(UInt16.self, at: offset + 6),
                                    sequence: datagram.littleEndian(UInt32.self, at: offset + 8),
                                    body: Array(datagram[(offset + 16)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return messages
    }

    /// The errno of an NLMSG_ERROR body (0 = acknowledgement).
    public static func errorCode(of message: Message) -> Int32? {
        guard message.type == error, message.body.count >= 4 else { return nil }
        return -Int32(bitPattern: message.body.littleEndian(UInt32.self, at: 0))
    }

    /// Attributes after a fixed-size family header (`headerSize` bytes) as type → payload.
    public static func attributes(of body: [UInt8], headerSize: Int) -> [UInt16: [UInt8]] {
        var result: [UInt16: [UInt8]] = [:]
        var offset = headerSize
        while offset + 4 <= body.count {
            let length = Int(body.littleEndian(UInt16.self, at: offset))
            guard length >= 4, offset + length <= body.count else { break }
            let type = body.littleEndian(UInt16.self, at: offset + 2) & 0x3FFF   // strip NLA_F_* bits
            result[type] = Array(body[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        return result
    }

    /// A route from an RTM_NEWROUTE message (a `getRoute` answer or a dump entry).
    /// A route of one family as a dump or `ip route get` gives it.
    public struct RouteInfo<Address: NetlinkAddress>: Sendable, Equatable {
        public var prefix: NetworkPrefix<Address>
        public var table: UInt8
        public var protocolNumber: UInt8
        public var type: UInt8
        public var outputInterface: Int32?
        public var gateway: Address?
        /// The metric (`ip route … metric N`): of two routes to one prefix, the lower wins.
        public var priority: UInt32 = 0
    }

    public static let routeHeaderSize = 12

    /// A route of `family` from an RTM_NEWROUTE message (nil for another family's, or a malformed one).
    public static func route<Address: NetlinkAddress>(_ family: Address.Type, from message: Message) -> RouteInfo<Address>? {
        guard message.type == newRoute, message.body.count >= routeHeaderSize, message.body[0] == Address.netlinkFamily else { return nil }
        let attributes = attributes(of: message.body, headerSize: routeHeaderSize)
        let length = Int(message.body[1])
        guard length <= Address.bitWidth else { return nil }
        let destination = attributes[routeDestination].flatMap(Address.init(netlinkBytes:)) ?? .zero
        var table = message.body[4]
        if let wide = attributes[routeTable], wide.count == 4 { table = UInt8(truncatingIfNeeded: wide.littleEndian(UInt32.self, at: 0)) }
        return RouteInfo(prefix: NetworkPrefix(destination, length: length), table: table,
                         protocolNumber: message.body[5], type: message.body[7],
                         outputInterface: attributes[routeOutputInterface].flatMap { $0.count == 4 ? Int32(bitPattern: $0.littleEndian(UInt32.self, at: 0)) : nil },
                         gateway: attributes[routeGateway].flatMap(Address.init(netlinkBytes:)),
                         priority: attributes[routePriority].flatMap { $0.count == 4 ? $0.littleEndian(UInt32.self, at: 0) : nil } ?? 0)
    }

}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        for shift in stride(from: 0, to: T.bitWidth, by: 8) {
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    func littleEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<(T.bitWidth / 8) {
            value |= T(self[offset + index]) << (8 * index)
        }
        return value
    }
}

/// An address family as rtnetlink carries it: its AF_ number and its bytes in network order.
public protocol NetlinkAddress: FamilyAddress {
    static var netlinkFamily: UInt8 { get }
    init?(netlinkBytes bytes: [UInt8])
}

extension IPv4Address: NetlinkAddress {
    public static var netlinkFamily: UInt8 { Netlink.familyInet }
    public init?(netlinkBytes bytes: [UInt8]) {
        guard bytes.count == 4 else { return nil }
        self.init(bytes[0], bytes[1], bytes[2], bytes[3])
    }
}

extension IPv6Address: NetlinkAddress {
    public static var netlinkFamily: UInt8 { Netlink.familyInet6 }
    public init?(netlinkBytes bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self = bytes.withUnsafeBytes { $0.loadIPv6Address(at: 0) }
    }
}
