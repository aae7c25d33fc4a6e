/// A peer's UDP layer between the outer IP header and the inner packet, as iproute2 writes it on a tunnel
/// (`encap fou|gue encap-dport P encap-sport auto|N [no]encap-csum`) and systemd-networkd in `[Tunnel]`
/// (`FooOverUDP=`, `FOUDestinationPort=`, `FOUSourcePort=`): what gets tunnel traffic through NATs and
/// middleboxes that pass only TCP and UDP, and spreads it over ECMP paths and RSS queues.
public struct UDPEncapsulation: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// Foo-over-UDP: the inner packet right behind the UDP header; the receiver knows its family by
        /// the port it arrives on (`ip fou add port P ipproto 4`, a second port `ipproto 41` for IPv6).
        case fou
        /// Generic UDP Encapsulation, variant 0 (draft-ietf-intarea-gue): a 4-byte header that names the
        /// inner protocol, so one port (`ip fou add port P gue`) carries both families.
        case gue
    }

    public enum SourcePort: Sendable, Equatable, CustomStringConvertible {
        /// A hash of the inner flow, in the kernel's local port range (`encap-sport auto`): each flow keeps
        /// one port, different flows spread over ECMP paths and receive queues.
        case auto
        /// One port for everything (what a NAT mapping needs: replies come back to it).
        case fixed(UInt16)

        public var description: String {
            switch self {
            case .auto: "auto"
            case .fixed(let port): "\(port)"
            }
        }
    }

    public var kind: Kind
    /// Where the outer packets go: the peer's `ip fou add port` (IPv4 inner packets, with FOU).
    public var destinationPort: UInt16
    /// FOU only: the peer's port for IPv6 inner packets (FOU names no protocol; the receiver's port says
    /// it: a `sit` tunnel's `encap-dport`). Needed when the peer carries IPv6.
    public var destinationPort6: UInt16?
    public var sourcePort: SourcePort
    /// A UDP checksum on every outer packet (`encap-csum`). nil: the underlay's default, as iproute2's —
    /// none over IPv4 (`noencap-csum`), one over IPv6 (`encap-udp6-csum`).
    public var checksum: Bool?

    public init(kind: Kind, destinationPort: UInt16, destinationPort6: UInt16? = nil, sourcePort: SourcePort = .auto,
                checksum: Bool? = nil) {
        self.kind = kind
        self.destinationPort = destinationPort
        self.destinationPort6 = destinationPort6
        self.sourcePort = sourcePort
        self.checksum = checksum
    }

    /// Whether outer packets over this underlay carry a UDP checksum.
    public func sendsChecksum(underlayIPv6: Bool) -> Bool { checksum ?? underlayIPv6 }

    /// The port the outer packets of an inner packet of this family go to.
    @inline(__always)
    public func destinationPort(innerIPv6: Bool) -> UInt16 {
        innerIPv6 && kind == .fou ? destinationPort6 ?? destinationPort : destinationPort
    }

    /// What `ipipd status` and the logs call it, in iproute2's words.
    public var description: String {
        var text = "\(kind.rawValue) encap-dport \(destinationPort)"
        if let port = destinationPort6 { text += " (IPv6 inner: \(port))" }
        return text + " encap-sport \(sourcePort)" + (checksum.map { $0 ? " encap-csum" : " noencap-csum" } ?? "")
    }
}

/// A UDP port this gateway receives tunnel packets on: Linux's `ip fou add port P ipproto 4|41` or
/// `ip fou add port P gue`, and systemd-networkd's `[FooOverUDP]` netdev.
public struct FOUPort: Sendable, Equatable, CustomStringConvertible {
    public enum Payload: Sendable, Equatable {
        /// FOU: every packet on the port is of this family (4: IPv4, 41: IPv6).
        case fou(innerProtocol: UInt8)
        /// GUE: the header names the family of each packet.
        case gue
    }

    public var port: UInt16
    public var payload: Payload

    public init(port: UInt16, payload: Payload) {
        self.port = port
        self.payload = payload
    }

    public var kind: UDPEncapsulation.Kind {
        if case .gue = payload { .gue } else { .fou }
    }

    /// As iproute2 adds it: `port 5555 ipproto 4`, `port 6080 gue`.
    public var description: String {
        switch payload {
        case .fou(let innerProtocol): "port \(port) ipproto \(innerProtocol)"
        case .gue: "port \(port) gue"
        }
    }
}
