/// Checks and unwraps captured tunnel packets. Pure: it decides and edits the inner header in place;
/// the dataplane reinjects the bytes it points at.
public struct Decapsulator: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Reinject `buffer[inner]` (already edited: TTL, ECN) as received from `peer`.
        case deliver(peer: Int, inner: Range<Int>, local: Bool)
        /// A fragment of an outer packet from `peer`: reassemble it first.
        case reassemble(peer: Int)
        /// The inner packet `buffer[inner]` would be forwarded with TTL <= 1: dropped, and its sender
        /// should get ICMP time exceeded.
        case timeExceeded(peer: Int, inner: Range<Int>)
        /// An ICMP error from a router, about one of our outer packets or not.
        case aboutOuter(OuterICMP)
        case drop(DropReason, peer: Int?)
    }

    public let local: IPv4Address
    /// With `ttl: inherit`, "time exceeded" about an outer packet is the inner sender's own business.
    public let ttlInherited: Bool
    public var peerByEndpoint: [IPv4Address: Int]
    /// Addresses of this machine: inner packets to them are delivered, not forwarded (no TTL change).
    public var localAddresses: Set<IPv4Address>

    public init(config: GatewayConfig, localAddresses: Set<IPv4Address>) {
        local = config.uplink.address
        ttlInherited = config.tunnel.ttl == .inherit
        peerByEndpoint = Dictionary(config.peers.enumerated().map { ($0.element.remote, $0.offset) },
                                    uniquingKeysWith: { first, _ in first })
        self.localAddresses = localAddresses
    }

    /// `packet` starts at the outer IPv4 header and ends where the capture ended.
    @inline(__always)
    public func decapsulate(_ packet: UnsafeMutableRawBufferPointer) -> Verdict {
        let outer: IPv4PacketView
        do {
            outer = try IPv4PacketView(validating: UnsafeRawBufferPointer(packet))
        } catch {
            return .drop(.malformedOuter, peer: nil)
        }
        guard outer.destination == local else { return .drop(.notForUs, peer: nil) }
        if outer.protocolNumber == IPProtocolNumber.icmp {
            return .aboutOuter(OuterICMP.classify(outer.bytes, local: local, peerByEndpoint: peerByEndpoint, ttlInherited: ttlInherited))
        }
        guard outer.protocolNumber == IPProtocolNumber.ipip else { return .drop(.malformedOuter, peer: nil) }
        guard let peer = peerByEndpoint[outer.source] else { return .drop(.unknownPeer, peer: nil) }
        guard !outer.isFragment else { return .reassemble(peer: peer) }

        let innerStart = outer.headerLength
        let innerEnd = outer.totalLength
        let innerBytes = UnsafeMutableRawBufferPointer(rebasing: packet[innerStart..<innerEnd])
        let inner: IPv4PacketView
        do {
            inner = try IPv4PacketView(validating: UnsafeRawBufferPointer(innerBytes), exactLength: true)
        } catch {
            return .drop(.malformedInner, peer: peer)
        }

        switch ECNDecapsulation.decide(outer: outer.ecn, inner: inner.ecn) {
        case .pass: break
        case .drop: return .drop(.ecnNotECT, peer: peer)
        case .setCE: IPv4HeaderEditor.setTOS(innerBytes, to: inner.tos | ECN.ce.rawValue)
        }

        let isLocal = localAddresses.contains(inner.destination)
        if !isLocal {
            // We are forwarding it: a router decrements the TTL and never forwards one that expires.
            guard inner.ttl > 1 else { return .timeExceeded(peer: peer, inner: innerStart..<innerEnd) }
            IPv4HeaderEditor.decrementTTL(innerBytes)
        }
        return .deliver(peer: peer, inner: innerStart..<innerEnd, local: isLocal)
    }
}
