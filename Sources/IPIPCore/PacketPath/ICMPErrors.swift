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

    /// The IP header and ICMP header of an error message ipipd sends.
    public static let headersLength = 20 + 8

    /// An IPv4 packet carrying an ICMP error about `original`, addressed to its source (for tests and
    /// control use; the packet paths write it in place with `write`).
    public static func packet(type: UInt8, code: UInt8, nextHopMTU: Int = 0, about original: UnsafeRawBufferPointer) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: headersLength + ICMPBuilder.quoteLength(of: original))
        let length = packet.withUnsafeMutableBytes { write(type: type, code: code, nextHopMTU: nextHopMTU, quote: original, into: $0) }
        return Array(packet[0..<length])
    }

    /// Writes an IPv4 packet carrying an ICMP error that quotes `quote` (the original datagram's start,
    /// `ICMPBuilder.quoteLength` of it) into `buffer`, addressed to the original's source; returns its
    /// length. The source address is left 0: the raw socket (IP_HDRINCL) then fills in the address the
    /// kernel would use to reach that host, as the kernel does for the errors it sends itself.
    /// Allocation-free: `quote` must not overlap `buffer`.
    @discardableResult
    public static func write(type: UInt8, code: UInt8, nextHopMTU: Int = 0, quote original: UnsafeRawBufferPointer,
                             into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let quoted = ICMPBuilder.quoteLength(of: original)
        let length = headersLength + quoted
        precondition(buffer.count >= length)
        let icmp = UnsafeMutableRawBufferPointer(rebasing: buffer[20..<length])
        icmp[0] = type
        icmp[1] = code
        icmp.setUInt16(0, at: 2)
        icmp.setUInt32(type == ICMPType.destinationUnreachable ? UInt32(UInt16(clamping: nextHopMTU)) : 0, at: 4)
        if quoted > 0 {
            UnsafeMutableRawBufferPointer(rebasing: icmp[8...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
        }
        icmp.setUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(icmp)), at: 2)
        let destination = IPv4Address(original.count >= 16 ? original.uint32(at: 12) : 0)
        IPv4HeaderFields(totalLength: length, ttl: 64, protocolNumber: IPProtocolNumber.icmp, source: .any, destination: destination)
            .write(into: buffer)
        return length
    }
}

/// What an ICMP or ICMPv6 error is, for its rate limit.
public enum ICMPErrorKind: Sendable {
    /// "Fragmentation needed" or "packet too big": path-MTU discovery.
    case pathMTU
    case other
}

/// How often ipipd sends ICMP (or ICMPv6) errors: token buckets per destination (in a bounded table),
/// and a global cap for the errors that are not about the path MTU. Linux does not limit fragmentation
/// needed (path-MTU discovery must not be starved, icmp_ratemask), and it is never larger than the
/// packet that caused it, so no amplifier: it has its own per-destination buckets and no global cap,
/// and no flood of other errors can take its turn. One per family.
public struct ICMPRateLimiter<Address: Hashable & Sendable>: Sendable {
    private var pathMTU = TokenBucketTable<Address>(rate: 10, burst: 10, capacity: 4096)
    private var perDestination = TokenBucketTable<Address>(rate: 10, burst: 10, capacity: 4096)
    private var global = TokenBucket(rate: 1000, burst: 1000)

    public init() {}

    public mutating func allow(to destination: Address, kind: ICMPErrorKind = .other, now: Double) -> Bool {
        switch kind {
        case .pathMTU: pathMTU.take(destination, now: now)
        case .other: perDestination.take(destination, now: now) && global.take(now: now)
        }
    }
}

/// ICMP errors from routers about outer packets we sent (RFC 2003 §4, Linux's ipip_err).
public enum OuterICMP: Equatable, Sendable {
    /// "Fragmentation needed" for packets to `peer`: the outer path MTU. `quote` is what it quotes of
    /// the outer packet, which must be one we sent lately for the report to be believed.
    case fragmentationNeeded(peer: Int, outerMTU: Int, quote: OuterPacketQuote)
    /// Another error that senders to `peer` should hear about, as host unreachable, for 30 s.
    case peerError(peer: Int, quote: OuterPacketQuote)
    /// An error about one of our protocol-41 packets that quotes its inner IPv6 header: relayed at once
    /// to the IPv6 source as ICMPv6 (RFC 4213 §3.4, sit's ip6_err_gen_icmpv6_unreach) — time exceeded
    /// as "hop limit exceeded", the rest as "address unreachable".
    case relayToIPv6Source(peer: Int, quote: OuterPacketQuote, timeExceeded: Bool)
    /// About one of our packets to `peer`, but quoting too little of it (less than RFC 792's 8 bytes after
    /// the header) to tell whether we sent it.
    case unverifiable(peer: Int)
    case ignore

    /// `packet` is the whole IPv4 packet carrying the ICMP message, addressed to us.
    public static func classify(_ packet: UnsafeRawBufferPointer, local: IPv4Address, peerByEndpoint: [IPv4Address: Int],
                                ttlInherited: Bool) -> OuterICMP {
        guard let ip = try? IPv4PacketView(validating: packet), ip.protocolNumber == IPProtocolNumber.icmp,
              !ip.isFragment, let icmp = try? ICMPMessageView(validating: ip.payload) else { return .ignore }
        let quoted = icmp.body
        // The quoted header must be one of ours: from the local address, protocol 4 or 41, to a peer.
        guard quoted.count >= 20, quoted[0] >> 4 == 4, quoted[9] == IPProtocolNumber.ipip || quoted[9] == IPProtocolNumber.ipv6,
              quoted.ipv4Address(at: 12) == local, let peer = peerByEndpoint[quoted.ipv4Address(at: 16)] else { return .ignore }
        let quotesIPv6Header = quotedInner6(of: quoted) != nil
        // What the report asks of us, when its quote can show it is about a packet we sent.
        let quote = OuterPacketQuote(quoted: quoted)
        func about(_ report: (OuterPacketQuote) -> OuterICMP) -> OuterICMP { quote.map(report) ?? .unverifiable(peer: peer) }
        switch (icmp.type, icmp.code) {
        case (ICMPType.destinationUnreachable, ICMPUnreachableCode.fragmentationNeeded):
            let mtu = icmp.nextHopMTU
            return mtu >= 68 ? about { .fragmentationNeeded(peer: peer, outerMTU: mtu, quote: $0) } : .ignore
        case (ICMPType.destinationUnreachable, ICMPUnreachableCode.sourceRouteFailed):
            return .ignore   // "impossible" for us, as ipip_err says
        case (ICMPType.destinationUnreachable, _) where quotesIPv6Header:
            return about { .relayToIPv6Source(peer: peer, quote: $0, timeExceeded: false) }
        case (ICMPType.timeExceeded, 0) where quotesIPv6Header:
            return about { .relayToIPv6Source(peer: peer, quote: $0, timeExceeded: true) }
        case (ICMPType.destinationUnreachable, _):
            return about { .peerError(peer: peer, quote: $0) }
        case (ICMPType.timeExceeded, 0):
            // With an inherited TTL the inner packet's own TTL ran out: its sender hears that itself.
            return ttlInherited ? .ignore : about { .peerError(peer: peer, quote: $0) }
        default:
            return .ignore
        }
    }

    /// The inner IPv6 packet an ICMP error quotes after our protocol-41 outer header, when the quote
    /// holds its whole header and 8 bytes more (what ip6_err_gen_icmpv6_unreach requires).
    static func quotedInner6(of quoted: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard quoted.count >= 20, quoted[9] == IPProtocolNumber.ipv6 else { return nil }
        let start = Int(quoted[0] & 0x0F) * 4
        guard start >= 20, quoted.count >= start + IPv6PacketView.headerLength + 8, quoted[start] >> 4 == 6 else { return nil }
        return UnsafeRawBufferPointer(rebasing: quoted[start...])
    }

    /// The same, from the whole IPv4 packet that carries the ICMP error.
    public static func quotedInner6(inPacket packet: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let ip = try? IPv4PacketView(validating: packet), let icmp = try? ICMPMessageView(validating: ip.payload) else { return nil }
        return quotedInner6(of: icmp.body)
    }
}
