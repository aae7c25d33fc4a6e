/// What the packet flows need of an inner packet's header: its fields where IPv4 and IPv6 name them
/// differently (TOS / traffic class, TTL / hop limit), and the few rules in which the two families
/// differ. Encapsulation and decapsulation are each one flow, generic over this protocol, as Linux's
/// `ip_tunnel_xmit` is one transmit function that branches on the payload only where a field differs;
/// being generic, each family's path is compiled on its own, with no branch per field at run time.
protocol InnerPacket {
    associatedtype Address: FamilyAddress

    /// The packet checked as an inner packet: whole, and exactly as long as the bytes. Each flow's
    /// dispatcher calls it on the concrete type and hands the flow the packet: called from the generic
    /// flow, it stayed an indirect call through the witness table even in the specialized code.
    static func checkedInner(_ bytes: UnsafeRawBufferPointer) -> Self?

    var source: Address { get }
    var destination: Address { get }
    /// IPv4's TOS byte, or IPv6's traffic class: DSCP and ECN.
    var trafficClass: UInt8 { get }
    /// IPv4's TTL, or IPv6's hop limit.
    var hopLimit: UInt8 { get }
    var ecn: ECN { get }

    /// Whether this is the IPv6 family, carried as protocol (next header) 41; IPv4 as 4.
    static var isIPv6: Bool { get }

    // Encapsulation.

    /// Traffic a tunnel to many peers never carries (IPv6 link-scope and multicast: the kernel's MLD chatter).
    var isLinkScoped: Bool { get }
    /// One of this gateway's own outer packets, come back through the TUN device: the route to a peer's
    /// endpoint leads into the tunnel. `ports`: the UDP ports FOU and GUE packets go to.
    func isOuterPacket(from local: IPAddress, ports: [UInt16]) -> Bool
    /// The Tunnel Encapsulation Limit the packet carries (RFC 2473 §4.1.1: an IPv6 Destination Options
    /// option) and its offset in the packet, if it carries one.
    var tunnelEncapsulationLimit: (offset: Int, value: UInt8)? { get }
    /// Whether a packet of `length` bytes fits a path whose inner MTU is `pathMTU`, and if not, what then.
    func fit(length: Int, pathMTU: Int) -> InnerFit
    /// DF of the outer header.
    func outerDontFragment(_ rules: EncapsulationRules, pathMTU: Int) -> Bool

    // Decapsulation.

    /// Why the inner packet's source or destination is one no packet from a tunnel may carry, if it is.
    func martian(local: LocalNetworks, routes: LocalRoutes) -> DropReason?
    /// Why the header's options or extension headers are refused (a source route, an abusive chain), if they are.
    var refusedOptions: DropReason? { get }
    /// Whether the inner packet must be handed to the kernel's receive path on the TUN device even when
    /// ipipd routes (routed delivery): packets for this machine, and every IPv6 packet (as sit does).
    func mustTakeTUNDevice(local: LocalNetworks, routes: LocalRoutes) -> Bool
    /// Marks the header Congestion Experienced (RFC 6040: an outer CE over an ECN-capable inner packet).
    static func setCongestionExperienced(_ header: UnsafeMutableRawBufferPointer)
    /// Decrements the TTL or hop limit of a packet ipipd forwards as a router (and fixes the checksum).
    static func decrementHopLimit(_ header: UnsafeMutableRawBufferPointer)
}

/// Whether an inner packet fits the path to its peer.
enum InnerFit {
    case fits
    /// Too big, and may not be fragmented: its sender must learn `mtu`.
    case tooBig(mtu: Int)
    /// Too big, and may be fragmented to `mtu` before it enters the tunnel.
    case fragment(mtu: Int)
}

extension IPv4PacketView: InnerPacket {
    @inline(__always)
    static func checkedInner(_ bytes: UnsafeRawBufferPointer) -> IPv4PacketView? {
        do { return try IPv4PacketView(validating: bytes, exactLength: true) } catch { return nil }
    }

    @inline(__always) var trafficClass: UInt8 { tos }
    @inline(__always) var hopLimit: UInt8 { ttl }
    static var isIPv6: Bool { false }

    @inline(__always) var isLinkScoped: Bool { false }

    @inline(__always)
    func isOuterPacket(from local: IPAddress, ports: [UInt16]) -> Bool {
        guard case .v4(let local) = local, source == local else { return false }
        switch protocolNumber {
        case IPProtocolNumber.ipip, IPProtocolNumber.ipv6: return true
        case IPProtocolNumber.udp: return payload.count >= 4 && ports.contains(payload.uint16(at: 2))
        default: return false
        }
    }

    @inline(__always) var tunnelEncapsulationLimit: (offset: Int, value: UInt8)? { nil }

    @inline(__always)
    func fit(length: Int, pathMTU: Int) -> InnerFit {
        guard length > pathMTU else { return .fits }
        return dontFragment ? .tooBig(mtu: pathMTU) : .fragment(mtu: pathMTU)
    }

    @inline(__always)
    func outerDontFragment(_ rules: EncapsulationRules, pathMTU: Int) -> Bool {
        rules.outerDontFragment(innerDontFragment: dontFragment)
    }

    /// 0/8, 127/8, multicast and class E (255.255.255.255 included) never; nor, as source, a directed
    /// broadcast or one of this machine's addresses (its interfaces' and every local route's).
    @inline(__always)
    func martian(local: LocalNetworks, routes: LocalRoutes) -> DropReason? {
        let source = source, destination = destination
        if !source.isUnicastCandidate || source.isLoopback || local.addresses.contains(source) || local.broadcasts.contains(source) || routes.isKnownLocal(source) {
            return .martianSource
        }
        if !destination.isUnicastCandidate || destination.isLoopback || local.broadcasts.contains(destination) { return .martianDestination }
        return nil
    }

    @inline(__always)
    var refusedOptions: DropReason? {
        guard headerLength > IPv4PacketView.minimumHeaderLength else { return nil }
        switch IPv4Options.sourceRoute(in: self) {
        case .none: return nil
        case .sourceRoute: return .sourceRoute
        case .malformed: return .malformedInner
        }
    }

    @inline(__always)
    func mustTakeTUNDevice(local: LocalNetworks, routes: LocalRoutes) -> Bool {
        local.addresses.contains(destination) || routes.mustTakeTheTUNDevice(destination)
    }

    @inline(__always)
    static func setCongestionExperienced(_ header: UnsafeMutableRawBufferPointer) {
        IPv4HeaderEditor.setTOS(header, to: header[1] | ECN.ce.rawValue)
    }

    @inline(__always)
    static func decrementHopLimit(_ header: UnsafeMutableRawBufferPointer) { IPv4HeaderEditor.decrementTTL(header) }
}

extension IPv6PacketView: InnerPacket {
    @inline(__always)
    static func checkedInner(_ bytes: UnsafeRawBufferPointer) -> IPv6PacketView? {
        do { return try IPv6PacketView(validating: bytes, exactLength: true) } catch { return nil }
    }

    static var isIPv6: Bool { true }

    @inline(__always) var isLinkScoped: Bool { destination.isMulticast || destination.isLinkLocal }

    /// Over an IPv6 underlay: next header 4 or 41, perhaps behind the encapsulation limit's Destination
    /// Options header, or UDP to a FOU or GUE port.
    @inline(__always)
    func isOuterPacket(from local: IPAddress, ports: [UInt16]) -> Bool {
        guard case .v6(let local) = local, source == local else { return false }
        var next = nextHeader, offset = 0
        let payload = payload
        if next == IPv6ExtensionHeaders.destinationOptions {
            guard payload.count >= Encapsulation.encapsulationLimitLength else { return false }
            next = payload[0]
            offset = (Int(payload[1]) + 1) * 8
        }
        switch next {
        case IPProtocolNumber.ipip, IPProtocolNumber.ipv6: return true
        case IPProtocolNumber.udp: return payload.count >= offset + 4 && ports.contains(payload.uint16(at: offset + 2))
        default: return false
        }
    }

    /// Found as ip6_tnl_parse_tlv_enc_lim finds it: in a Destination Options header among the Hop-by-Hop,
    /// Routing and Destination Options headers right behind the fixed header.
    @inline(__always)
    var tunnelEncapsulationLimit: (offset: Int, value: UInt8)? {
        var next = nextHeader
        guard next == IPv6ExtensionHeaders.hopByHop || next == IPv6ExtensionHeaders.routing
                || next == IPv6ExtensionHeaders.destinationOptions else { return nil }
        return IPv6ExtensionHeaders.encapsulationLimit(in: self, first: &next)
    }

    /// IPv6 packets are never fragmented on the way (RFC 8200 §5), and the inner MTU never drops below 1280.
    @inline(__always)
    func fit(length: Int, pathMTU: Int) -> InnerFit {
        let mtu = max(pathMTU, Encapsulator.minimumIPv6MTU)
        return length > mtu ? .tooBig(mtu: mtu) : .fits
    }

    /// When the path to the peer is smaller than 1280 + the outer header, the outer packet goes without DF
    /// so that routers may fragment it (RFC 4213 §3.2, sit's ipip6_tunnel_xmit).
    @inline(__always)
    func outerDontFragment(_ rules: EncapsulationRules, pathMTU: Int) -> Bool {
        rules.pmtudisc && pathMTU >= Encapsulator.minimumIPv6MTU
    }

    /// ::, ::1, multicast and IPv4-mapped never; nor, as source, one of this machine's addresses
    /// (machine A's own ghost address lies inside the prefix B's side sends from). No multicast destination:
    /// ipipd carries none.
    @inline(__always)
    func martian(local: LocalNetworks, routes: LocalRoutes) -> DropReason? {
        let source = source
        if !source.isUnicastCandidate || local.addresses6.contains(source) { return .martianSource }
        if !destination.isUnicastCandidate { return .martianDestination }
        return nil
    }

    /// No Routing Header type 0 (the IPv6 source route, RFC 5095), and no longer chain than any sender needs.
    @inline(__always)
    var refusedOptions: DropReason? {
        switch IPv6ExtensionHeaders.judge(self) {
        case .acceptable: return nil
        case .routingType0: return .sourceRoute
        case .overLimit: return .extensionHeaders
        case .malformed: return .malformedInner
        }
    }

    /// Always, in both delivery modes, as sit hands its packets to the kernel: the kernel's forwarding
    /// decrements the hop limit and sends "time exceeded" and "packet too big" itself, and ip6tables sees
    /// `iif tunl`.
    @inline(__always) func mustTakeTUNDevice(local: LocalNetworks, routes: LocalRoutes) -> Bool { true }

    @inline(__always)
    static func setCongestionExperienced(_ header: UnsafeMutableRawBufferPointer) { IPv6HeaderEditor.setCE(header) }

    @inline(__always)
    static func decrementHopLimit(_ header: UnsafeMutableRawBufferPointer) { header[7] &-= 1 }
}
