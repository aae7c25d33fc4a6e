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

    func report(type: UInt8, code: UInt8, nextHopMTU: Int = 0, about original: UnsafeRawBufferPointer, peer: Int,
                counters: TunnelCounters, into batch: PacketBatch, now: Double) {
        guard ICMPErrorRules.mayReport(on: original) else { return }
        let destination = original.ipv4Source
        let kind: ICMPErrorKind = type == ICMPType.destinationUnreachable && code == ICMPUnreachableCode.fragmentationNeeded
            ? .pathMTU : .other
        guard ipv4Limiter.allow(to: destination, kind: kind, now: now) else {
            counters.icmpRateLimited.add()
            return
        }
        let quoted = min(ICMPBuilder.quoteLength(of: original), quote.count)
        quote.copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
        let length = ICMPErrorRules.write(type: type, code: code, nextHopMTU: nextHopMTU,
                                          quote: UnsafeRawBufferPointer(rebasing: quote[0..<quoted]), into: batch.nextSlot)
        batch.append(0..<length, destination: destination, kind: .icmpError(peer: peer))
    }

    /// The same for an IPv6 packet: an ICMPv6 error to its source, sent through the ICMPv6 socket.
    func report6(type: UInt8, code: UInt8, parameter: UInt32 = 0, about original: UnsafeRawBufferPointer, peer: Int,
                 counters: TunnelCounters, into batch: PacketBatch, now: Double) {
        guard ICMPv6ErrorRules.mayReport(on: original, type: type) else { return }
        guard ipv6Limiter.allow(to: original.ipv6Address(at: 8), kind: type == ICMPv6Type.packetTooBig ? .pathMTU : .other, now: now) else {
            counters.icmpRateLimited.add()
            return
        }
        let quoted = ICMPv6ErrorRules.quoteLength(of: original)
        quote.copyMemory(from: UnsafeRawBufferPointer(rebasing: original[0..<quoted]))
        let length = ICMPv6ErrorRules.write(type: type, code: code, parameter: parameter,
                                            quote: UnsafeRawBufferPointer(rebasing: quote[0..<quoted]), into: batch.nextSlot)
        batch.append(0..<length, destination: .any, kind: .icmpv6Error(peer: peer))
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
