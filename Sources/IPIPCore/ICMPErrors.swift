/// When ipipd may send an ICMP error, and the packets it sends (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7).
public enum ICMPErrorRules {
    /// Never an error about an ICMP error, a non-first fragment, or a packet that was not sent to one
    /// unicast host by one unicast host.
    public static func mayReport(on original: UnsafeRawBufferPointer) -> Bool {
        guard let packet = try? IPv4PacketView(validating: original) else { return false }
        if packet.fragmentOffset != 0 { return false }
        let source = packet.source, destination = packet.destination
        if !source.isUnicastCandidate || source.isLoopback || destination == .broadcast || destination.isMulticast {
            return false
        }
        if packet.protocolNumber == IPProtocolNumber.icmp {
            let payload = packet.payload
            if payload.count >= 1 && ICMPType.isError(payload[0]) { return false }
        }
        return true
    }

    /// An IPv4 packet carrying an ICMP error about `original`, addressed to its source. The source
    /// address is left 0: the raw socket (IP_HDRINCL) then fills in the address the kernel would use
    /// to reach that host, as the kernel does for the errors it sends itself.
    public static func packet(type: UInt8, code: UInt8, nextHopMTU: Int = 0, about original: UnsafeRawBufferPointer) -> [UInt8] {
        let message = type == ICMPType.timeExceeded
            ? ICMPBuilder.timeExceeded(original: original)
            : ICMPBuilder.destinationUnreachable(code: code, nextHopMTU: nextHopMTU, original: original)
        let destination = IPv4Address(original.count >= 16 ? original.uint32(at: 12) : 0)
        return IPv4HeaderFields(ttl: 64, protocolNumber: IPProtocolNumber.icmp, source: .any, destination: destination)
            .bytes(payload: message)
    }
}

/// Token buckets per destination plus a global cap: ipipd must not become an ICMP amplifier.
public struct ICMPRateLimiter: Sendable {
    public var perDestinationPerSecond = 10.0
    public var perDestinationBurst = 10.0
    public var globalPerSecond = 1000.0
    private var buckets: [IPv4Address: (tokens: Double, updated: Double)] = [:]
    private var global: (tokens: Double, updated: Double) = (1000, 0)
    static let maximumTracked = 4096

    public init() {}

    public mutating func allow(to destination: IPv4Address, now: Double) -> Bool {
        global.tokens = min(globalPerSecond, global.tokens + (now - global.updated) * globalPerSecond)
        global.updated = now
        var bucket = buckets[destination] ?? (perDestinationBurst, now)
        bucket.tokens = min(perDestinationBurst, bucket.tokens + (now - bucket.updated) * perDestinationPerSecond)
        bucket.updated = now
        let allowed = bucket.tokens >= 1 && global.tokens >= 1
        if allowed {
            bucket.tokens -= 1
            global.tokens -= 1
        }
        if buckets[destination] == nil && buckets.count >= Self.maximumTracked { buckets.removeAll(keepingCapacity: true) }
        buckets[destination] = bucket
        return allowed
    }
}

/// ICMP errors from routers about outer packets we sent (RFC 2003 §4, Linux's ipip_err).
public enum OuterICMP: Equatable, Sendable {
    /// "Fragmentation needed" for packets to `peer`: the outer path MTU.
    case fragmentationNeeded(peer: Int, outerMTU: Int)
    /// Another error that senders to `peer` should hear about, as host unreachable, for 30 s.
    case peerError(peer: Int)
    case ignore

    /// `packet` is the whole IPv4 packet carrying the ICMP message, addressed to us.
    public static func classify(_ packet: UnsafeRawBufferPointer, local: IPv4Address, peerByEndpoint: [IPv4Address: Int],
                                ttlInherited: Bool) -> OuterICMP {
        guard let ip = try? IPv4PacketView(validating: packet), ip.protocolNumber == IPProtocolNumber.icmp,
              !ip.isFragment, let icmp = try? ICMPMessageView(validating: ip.payload) else { return .ignore }
        let quoted = icmp.body
        // The quoted header must be one of ours: from the local address, protocol 4, to a peer.
        guard quoted.count >= 20, quoted[0] >> 4 == 4, quoted[9] == IPProtocolNumber.ipip,
              quoted.ipv4Address(at: 12) == local, let peer = peerByEndpoint[quoted.ipv4Address(at: 16)] else { return .ignore }
        switch (icmp.type, icmp.code) {
        case (ICMPType.destinationUnreachable, ICMPUnreachableCode.fragmentationNeeded):
            let mtu = icmp.nextHopMTU
            return mtu >= 68 ? .fragmentationNeeded(peer: peer, outerMTU: mtu) : .ignore
        case (ICMPType.destinationUnreachable, ICMPUnreachableCode.sourceRouteFailed):
            return .ignore   // "impossible" for us, as ipip_err says
        case (ICMPType.destinationUnreachable, _):
            return .peerError(peer: peer)
        case (ICMPType.timeExceeded, 0):
            // With an inherited TTL the inner packet's own TTL ran out: its sender hears that itself.
            return ttlInherited ? .ignore : .peerError(peer: peer)
        default:
            return .ignore
        }
    }
}
