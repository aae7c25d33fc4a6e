/// The outer-header rules of an IP-in-IP encapsulator (RFC 2003 §3.1, RFC 6040 §4.1), as the Linux
/// kernel's ipip applies them (ip_tunnel_xmit, INET_ECN_encapsulate).
public struct EncapsulationRules: Sendable, Equatable {
    public var ttl: GatewayConfig.TTLSetting
    public var tos: GatewayConfig.TOSSetting
    public var pmtudisc: Bool

    public init(ttl: GatewayConfig.TTLSetting = .inherit, tos: GatewayConfig.TOSSetting = .fixed(0), pmtudisc: Bool = true) {
        self.ttl = ttl
        self.tos = tos
        self.pmtudisc = pmtudisc
    }

    public init(_ tunnel: GatewayConfig.Tunnel) {
        self.init(ttl: tunnel.ttl, tos: tunnel.tos, pmtudisc: tunnel.pmtudisc)
    }

    /// `inherit`: the inner TTL; otherwise the configured one.
    @inline(__always)
    public func outerTTL(innerTTL: UInt8) -> UInt8 {
        switch ttl {
        case .inherit: innerTTL
        case .fixed(let value): value
        }
    }

    /// DSCP from the config (or the inner packet with `inherit`); ECN copied from the inner packet,
    /// except that CE becomes ECT(0) so congestion marks are not duplicated (RFC 6040 §4.1,
    /// "compatibility mode" of RFC 3168 that Linux applies).
    @inline(__always)
    public func outerTOS(innerTOS: UInt8) -> UInt8 {
        let dscp: UInt8 = switch tos {
        case .inherit: innerTOS & 0xFC
        case .fixed(let value): value & 0xFC
        }
        var ecn = innerTOS & 0b11
        if ecn == ECN.ce.rawValue { ecn = ECN.ect0.rawValue }
        return dscp | ecn
    }

    /// DF is set with path-MTU discovery, and always when the inner packet has it (RFC 2003 §3.1).
    @inline(__always)
    public func outerDontFragment(innerDontFragment: Bool) -> Bool {
        pmtudisc || innerDontFragment
    }
}

/// RFC 6040 §4.2: what the decapsulator does with the inner ECN field given the outer one.
public enum ECNDecapsulation: Equatable, Sendable {
    case pass
    case setCE        // outer CE over an ECN-capable inner packet: propagate the congestion mark
    case drop         // outer CE over a Not-ECT inner packet: the mark cannot be carried, so drop

    public static func decide(outer: ECN, inner: ECN) -> ECNDecapsulation {
        guard outer == .ce else { return .pass }
        switch inner {
        case .notECT: return .drop
        case .ce: return .pass
        case .ect0, .ect1: return .setCE
        }
    }
}
