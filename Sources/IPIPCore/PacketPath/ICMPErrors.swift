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

/// The peers as the receiving side tells them apart: by endpoint, and by how their outer packets look.
public struct OuterPeers: Sendable {
    public let local: IPAddress
    private let byEndpoint4: [IPv4Address: Int]
    private let byEndpoint6: [IPv6Address: Int]
    /// Each peer's outer header, by peer index.
    public let encapsulations: [Encapsulation]

    /// The first of two peers with one endpoint wins (a checked config has none).
    public init(local: IPAddress, encapsulations: [Encapsulation]) {
        self.local = local
        self.encapsulations = encapsulations
        var byEndpoint4: [IPv4Address: Int] = [:], byEndpoint6: [IPv6Address: Int] = [:]
        for (index, encapsulation) in encapsulations.enumerated().reversed() {
            switch encapsulation.endpoints {
            case .ipv4(_, let remote): byEndpoint4[remote] = index
            case .ipv6(_, let remote): byEndpoint6[remote] = index
            }
        }
        self.byEndpoint4 = byEndpoint4
        self.byEndpoint6 = byEndpoint6
    }

    public init(config: GatewayConfig) {
        self.init(local: config.uplink.address, encapsulations: config.encapsulations)
    }

    /// The peer whose endpoint `address` is.
    @inline(__always)
    public func peer(_ address: IPAddress) -> Int? {
        switch address {
        case .v4(let address): byEndpoint4[address]
        case .v6(let address): byEndpoint6[address]
        }
    }

    /// Where the inner packet starts in an outer packet of ours that an ICMP error quotes, and to which peer
    /// it went: the quoted header must be one this gateway sent — from the local address to a peer's
    /// endpoint, carrying what that peer's encapsulation carries (protocol 4 or 41, or UDP to its port).
    func sender(of quoted: UnsafeRawBufferPointer) -> (peer: Int, inner: Int, identification: UInt16?, outerLength: Int)? {
        guard let first = quoted.first else { return nil }
        var offset: Int, transport: UInt8, peer: Int, identification: UInt16?, outerLength: Int
        switch local {
        case .v4(let local):
            guard first >> 4 == 4, quoted.count >= 20 else { return nil }
            offset = Int(first & 0x0F) * 4
            guard offset >= 20, quoted.ipv4Address(at: 12) == local, let found = byEndpoint4[quoted.ipv4Address(at: 16)] else { return nil }
            (transport, peer, identification, outerLength) = (quoted[9], found, quoted.uint16(at: 4), Int(quoted.uint16(at: 2)))
        case .v6(let local):
            guard first >> 4 == 6, quoted.count >= IPv6PacketView.headerLength, quoted.ipv6Address(at: 8) == local,
                  let found = byEndpoint6[quoted.ipv6Address(at: 24)] else { return nil }
            (transport, peer, identification) = (quoted[6], found, nil)
            outerLength = IPv6PacketView.headerLength + Int(quoted.uint16(at: 4))
            offset = IPv6PacketView.headerLength
            // Ours carry at most the encapsulation limit's Destination Options header.
            if transport == IPv6ExtensionHeaders.destinationOptions {
                guard quoted.count >= offset + Encapsulation.encapsulationLimitLength else { return nil }
                transport = quoted[offset]
                offset += (Int(quoted[offset + 1]) + 1) * 8
            }
        }
        let encapsulation = encapsulations[peer]
        if let udp = encapsulation.udp {
            guard transport == IPProtocolNumber.udp, quoted.count >= offset + Encapsulation.udpHeaderLength else { return nil }
            let port = quoted.uint16(at: offset + 2)
            guard port == udp.destinationPort || port == udp.destinationPort6 else { return nil }
            offset += Encapsulation.udpHeaderLength + (udp.kind == .gue ? Encapsulation.gueHeaderLength : 0)
        } else {
            guard transport == IPProtocolNumber.ipip || transport == IPProtocolNumber.ipv6 else { return nil }
        }
        return (peer, offset, identification, outerLength)
    }
}

/// ICMP (and, over an IPv6 underlay, ICMPv6) errors from routers about outer packets we sent (RFC 2003
/// §4 and Linux's ipip_err; RFC 2473 §8 and ip6_tnl_err).
public enum OuterICMP: Equatable, Sendable {
    /// "Fragmentation needed" or "packet too big" for packets to `peer`: the outer path MTU. `quote` is
    /// what it quotes of the outer packet, which must be one we sent lately for the report to be believed.
    case fragmentationNeeded(peer: Int, outerMTU: Int, quote: OuterPacketQuote)
    /// Another error that senders to `peer` should hear about, as host unreachable, for 30 s.
    case peerError(peer: Int, quote: OuterPacketQuote)
    /// An error about an outer packet of ours that quotes its inner IPv6 header (at `inner` in the carrying
    /// packet): relayed at once to the IPv6 source as ICMPv6 (RFC 4213 §3.4, sit's ip6_err_gen_icmpv6_unreach;
    /// RFC 2473 §8.1, ip6ip6_err) — time exceeded as "hop limit exceeded", the rest as "address unreachable".
    case relayToIPv6Source(peer: Int, quote: OuterPacketQuote, timeExceeded: Bool, inner: Range<Int>)
    /// About one of our packets to `peer`, but quoting too little of it to tell whether we sent it.
    case unverifiable(peer: Int)
    case ignore

    /// The error message at `offset` in `packet`, an IPv4 packet carrying ICMP or an IPv6 packet carrying
    /// ICMPv6, addressed to us; a checksum that does not verify makes it ignored.
    public static func classify(_ packet: UnsafeRawBufferPointer, messageAt offset: Int, peers: OuterPeers,
                                ttlInherited: Bool) -> OuterICMP {
        guard offset + 8 <= packet.count else { return .ignore }
        let message = UnsafeRawBufferPointer(rebasing: packet[offset...])
        let type = message[0], code = message[1]
        // What the error says, in the terms of RFC 2003 §4 (ipip) whatever the family.
        enum Report { case tooBig(Int), unreachable, timeExceeded }
        let report: Report
        if peers.local.isIPv6 {
            guard InternetChecksum.partialSum(message, initial: InternetChecksum.pseudoHeaderSum(
                    ofIPv6: packet, nextHeader: IPv6NextHeader.icmpv6, transportLength: message.count)) == 0xFFFF else { return .ignore }
            switch (type, code) {
            // RFC 8201 §4: no path is smaller than 1280.
            case (ICMPv6Type.packetTooBig, 0): report = .tooBig(max(Int(min(message.uint32(at: 4), 65_575)), Encapsulator.minimumIPv6MTU))
            case (ICMPv6Type.destinationUnreachable, _): report = .unreachable
            case (ICMPv6Type.timeExceeded, 0): report = .timeExceeded
            default: return .ignore
            }
        } else {
            guard InternetChecksum.verify(message) else { return .ignore }
            switch (type, code) {
            case (ICMPType.destinationUnreachable, ICMPUnreachableCode.fragmentationNeeded):
                let mtu = Int(message.uint16(at: 6))
                guard mtu >= 68 else { return .ignore }
                report = .tooBig(mtu)
            case (ICMPType.destinationUnreachable, ICMPUnreachableCode.sourceRouteFailed): return .ignore   // "impossible" for us, as ipip_err says
            case (ICMPType.destinationUnreachable, _): report = .unreachable
            case (ICMPType.timeExceeded, 0): report = .timeExceeded
            default: return .ignore
            }
        }
        let quotedStart = offset + 8
        let quoted = UnsafeRawBufferPointer(rebasing: packet[quotedStart...])
        guard let sender = peers.sender(of: quoted) else { return .ignore }
        let peer = sender.peer
        // What the report asks of us, when its quote can show it is about a packet we sent.
        let quotedInner = UnsafeRawBufferPointer(rebasing: quoted[min(sender.inner, quoted.count)...])
        guard let quote = OuterPacketQuote(identification: sender.identification, outerLength: sender.outerLength,
                                           quotedInner: quotedInner, innerLength: sender.outerLength - sender.inner) else {
            return .unverifiable(peer: peer)
        }
        // The inner IPv6 packet's header and 8 bytes more (what ip6_err_gen_icmpv6_unreach requires).
        let innerIPv6 = quotedInner.count >= IPv6PacketView.headerLength + 8 && quotedInner[0] >> 4 == 6
        let inner = (quotedStart + sender.inner)..<packet.count
        switch report {
        case .tooBig(let mtu):
            return .fragmentationNeeded(peer: peer, outerMTU: mtu, quote: quote)
        case .unreachable where innerIPv6:
            return .relayToIPv6Source(peer: peer, quote: quote, timeExceeded: false, inner: inner)
        case .timeExceeded where innerIPv6:
            return .relayToIPv6Source(peer: peer, quote: quote, timeExceeded: true, inner: inner)
        case .unreachable:
            return .peerError(peer: peer, quote: quote)
        case .timeExceeded:
            // With an inherited TTL the inner packet's own TTL ran out: its sender hears that itself.
            return ttlInherited ? .ignore : .peerError(peer: peer, quote: quote)
        }
    }
}
