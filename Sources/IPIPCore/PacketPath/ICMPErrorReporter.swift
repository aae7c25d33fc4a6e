/// Sends the ICMP errors a packet path answers with as a router (fragmentation needed, time exceeded,
/// host unreachable): only where RFC 1122 allows one, within the rate limit, built in the batch's next
/// slot. One per path, used by its thread only.
final class ICMPErrorReporter {
    private var ipv4Limiter = ICMPRateLimiter<IPv4Address>()
    private var ipv6Limiter = ICMPRateLimiter<IPv6Address>()
    /// The quoted part of the original, copied out first: the original may lie in the slot the error
    /// is built in.
    private let quote = UnsafeMutableRawBufferPointer.allocate(byteCount: ICMPv6ErrorRules.maximumErrorLength, alignment: 8)

    deinit { quote.deallocate() }

    /// Answers `original`, an IPv4 or IPv6 packet, with `error` in its family: an ICMP error to its source
    /// through the raw socket, or an ICMPv6 error through the ICMPv6 socket. Out of line: errors are rare,
    /// and the packet paths that call it stay small.
    @inline(never)
    func report(_ error: TunnelICMPError, about original: UnsafeRawBufferPointer, peer: Int,
                counters: TunnelCounters, into batch: PacketBatch, now: Double) {
        guard let first = original.first else { return }
        let kind: ICMPErrorKind = if case .tooBig = error { .pathMTU } else { .other }
        if first >> 4 == 6 {
            let (type, code, parameter) = error.icmpv6
            guard ICMPv6ErrorRules.mayReport(on: original, type: type) else { return }
            guard ipv6Limiter.allow(to: original.ipv6Address(at: 8), kind: kind, now: now) else {
                counters.icmpRateLimited.add()
                return
            }
            let quoted = ICMPv6ErrorRules.quoteLength(of: original)
            quote.copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
            let length = ICMPv6ErrorRules.write(type: type, code: code, parameter: parameter,
                                                quote: UnsafeRawBufferPointer(rebasing: quote[0..<quoted]), into: batch.nextSlot)
            batch.append(0..<length, destination: .any, kind: .icmpv6Error(peer: peer))
        } else {
            guard ICMPErrorRules.mayReport(on: original) else { return }
            let destination = original.ipv4Source
            guard ipv4Limiter.allow(to: destination, kind: kind, now: now) else {
                counters.icmpRateLimited.add()
                return
            }
            let (type, code, nextHopMTU) = error.icmp
            let quoted = min(ICMPBuilder.quoteLength(of: original), quote.count)
            quote.copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
            let length = ICMPErrorRules.write(type: type, code: code, nextHopMTU: nextHopMTU,
                                              quote: UnsafeRawBufferPointer(rebasing: quote[0..<quoted]), into: batch.nextSlot)
            batch.append(0..<length, destination: destination, kind: .icmpError(peer: peer))
        }
    }
}

/// An ICMP error a packet path answers with, named for what it tells the sender; the reporter writes it
/// in the family of the packet it is about.
enum TunnelICMPError: Equatable {
    /// The packet does not fit the path, whose MTU is `mtu`: "fragmentation needed" (ICMP 3/4) or
    /// "packet too big" (ICMPv6 2).
    case tooBig(mtu: Int)
    /// A router reported the peer unreachable (RFC 2003 §4): "host unreachable" (ICMP 3/1), or "address
    /// unreachable" (ICMPv6 1/3) as sit's dst_link_failure sends it.
    case unreachable
    /// "Time exceeded in transit" (ICMP 11/0, ICMPv6 3/0).
    case timeExceeded
    /// "Parameter problem, erroneous header field" at `pointer` (ICMP 12/0, ICMPv6 4/0): an IPv6 packet's
    /// Tunnel Encapsulation Limit of 0, as ip6tnl answers it.
    case parameterProblem(pointer: Int)

    /// Type, code and next-hop MTU of the ICMP message.
    var icmp: (type: UInt8, code: UInt8, nextHopMTU: Int) {
        switch self {
        case .tooBig(let mtu): (ICMPType.destinationUnreachable, ICMPUnreachableCode.fragmentationNeeded, mtu)
        case .unreachable: (ICMPType.destinationUnreachable, ICMPUnreachableCode.host, 0)
        case .timeExceeded: (ICMPType.timeExceeded, 0, 0)
        case .parameterProblem: (ICMPType.parameterProblem, 0, 0)
        }
    }

    /// Type, code and parameter (the MTU of "packet too big") of the ICMPv6 message.
    var icmpv6: (type: UInt8, code: UInt8, parameter: UInt32) {
        switch self {
        case .tooBig(let mtu): (ICMPv6Type.packetTooBig, 0, UInt32(mtu))
        case .unreachable: (ICMPv6Type.destinationUnreachable, ICMPv6UnreachableCode.addressUnreachable, 0)
        case .timeExceeded: (ICMPv6Type.timeExceeded, 0, 0)
        case .parameterProblem(let pointer): (ICMPv6Type.parameterProblem, 0, UInt32(pointer))
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The source address of the IPv4 header at the start (0.0.0.0 when too short).
    @inline(__always)
    public var ipv4Source: IPv4Address { count >= 16 ? ipv4Address(at: 12) : .any }

    /// The destination address of the IPv4 header at the start (0.0.0.0 when too short).
    @inline(__always)
    public var ipv4Destination: IPv4Address { count >= 20 ? ipv4Address(at: 16) : .any }
}
