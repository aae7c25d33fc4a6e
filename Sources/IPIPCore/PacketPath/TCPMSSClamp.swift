/// MSS clamping (`tunnel.clamp-mss`), what admins do with `iptables -t mangle … -j TCPMSS
/// --clamp-mss-to-pmtu` on both directions of a tunnel: the MSS option of every TCP SYN and SYN-ACK that
/// crosses the tunnel, in either direction, is lowered to what fits the path to the peer, so that the
/// two ends never send segments the tunnel must refuse — a path-MTU black hole behind firewalls that drop
/// "fragmentation needed" and "packet too big" is closed before it opens. Only lowered, never raised,
/// and never added where a SYN carries none; the TCP checksum is updated incrementally (RFC 1624), so a
/// segment whose checksum was wrong stays wrong. Pure.
public enum TCPMSSClamp {
    /// `tunnel.clamp-mss`.
    public enum Setting: Sendable, Equatable, CustomStringConvertible {
        case off
        /// What fits each peer's current path MTU (the tunnel MTU, or less once a router reported less).
        case auto
        /// At most this MSS, whatever the path.
        case fixed(Int)

        public var description: String {
            switch self {
            case .off: "off"
            case .auto: "auto"
            case .fixed(let value): "\(value)"
            }
        }
    }

    /// The smallest MSS `fixed` may set: IPv4's default MSS (RFC 879, RFC 9293 §3.7.1).
    public static let smallestFixed = 536

    /// The largest MSS a SYN in an inner packet of `family` may announce when the largest inner packet
    /// that reaches the peer is `innerMTU` bytes; nil when nothing is clamped.
    @inline(__always)
    public static func maximum(_ setting: Setting, innerMTU: Int, ipv6: Bool) -> Int? {
        switch setting {
        case .off: nil
        case .auto: innerMTU - (ipv6 ? IPv6PacketView.headerLength : IPv4PacketView.minimumHeaderLength) - 20
        case .fixed(let value): value
        }
    }

    /// What both packet paths do with each inner packet they pass on: nothing unless clamping is on
    /// and the packet is a SYN whose MSS exceeds what fits `innerMTU`. True when it lowered the MSS.
    @inline(__always)
    public static func clampIfSYN(_ packet: UnsafeMutableRawBufferPointer, _ setting: Setting, innerMTU: () -> Int) -> Bool {
        if case .off = setting { return false }
        guard let tcp = tcpHeaderOfSYN(UnsafeRawBufferPointer(packet)),
              let maximum = maximum(setting, innerMTU: innerMTU(), ipv6: packet[0] >> 4 == 6) else { return false }
        return clamp(packet, tcp: tcp, to: maximum)
    }

    private static let syn: UInt8 = 0x02
    private static let mssKind: UInt8 = 2

    /// Where the TCP header of `packet` (a whole inner packet the path checked) starts, when it is a SYN
    /// or SYN-ACK: IPv4 and not a later fragment, or IPv6 with TCP right behind its header, its header and
    /// options within the packet (`TransportLayout`, as for the offloads).
    @inline(__always)
    public static func tcpHeaderOfSYN(_ packet: UnsafeRawBufferPointer) -> Int? {
        guard let layout = TransportLayout(packet), layout.isTCP,
              layout.isIPv6 || packet.uint16(at: 6) & 0x1FFF == 0,
              packet[layout.transportOffset + 13] & syn != 0 else { return nil }
        return layout.transportOffset
    }

    /// Lowers the MSS option of the TCP SYN (or SYN-ACK) whose header starts at `tcp` in `packet` to
    /// `maximum`. True when it lowered it. Options are walked within the header's data offset only; a
    /// malformed option list is left as it is.
    public static func clamp(_ packet: UnsafeMutableRawBufferPointer, tcp: Int, to maximum: Int) -> Bool {
        guard maximum > 0, tcp >= 0, packet.count >= tcp + 20 else { return false }
        let end = tcp + Int(packet[tcp + 12] >> 4) * 4
        guard end >= tcp + 20, end <= packet.count else { return false }
        var index = tcp + 20
        while index < end {
            let kind = packet[index]
            if kind == 0 { return false }                   // end of the option list
            if kind == 1 { index += 1; continue }          // no-operation
            guard index + 1 < end else { return false }
            let length = Int(packet[index + 1])
            guard length >= 2, index + length <= end else { return false }
            if kind == mssKind {
                guard length == 4 else { return false }
                let old = UnsafeRawBufferPointer(packet).uint16(at: index + 2)
                guard Int(old) > maximum else { return false }
                let new = UInt16(maximum)
                packet.setUInt16(new, at: index + 2)
                // The checksum sums 16-bit words from the TCP header's start: a value at an odd offset
                // straddles two of them and counts byte-swapped.
                let odd = (index + 2 - tcp) & 1 == 1
                let checksum = UnsafeRawBufferPointer(packet).uint16(at: tcp + 16)
                packet.setUInt16(InternetChecksum.updated(checksum, oldWord: odd ? old.byteSwapped : old,
                                                          newWord: odd ? new.byteSwapped : new), at: tcp + 16)
                return true
            }
            index += length
        }
        return false
    }
}
