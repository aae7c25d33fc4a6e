/// Splits an inner packet without DF that does not fit the path to its peer, as Linux fragments the
/// inner packet before it enters an ipip tunnel (RFC 4459 §3.4). Options marked "copied" (RFC 791)
/// are repeated in every fragment; the others stay in the first.
public enum IPv4Fragmenter {
    public static func fragments(of packet: IPv4PacketView, mtu: Int) -> [[UInt8]] {
        let header = Array(packet.bytes[0..<packet.headerLength])
        let laterHeader = headerForLaterFragments(header)
        let payload = packet.payload
        let originalOffset = packet.fragmentOffset
        var result: [[UInt8]] = []
        var position = 0
        while position < payload.count {
            let headerBytes = position == 0 ? header : laterHeader
            let room = (mtu - headerBytes.count) & ~7
            guard room >= 8 else { return [] }
            let chunk = min(room, payload.count - position)
            let last = position + chunk == payload.count
            var fragment = headerBytes + payload[position..<(position + chunk)]
            fragment.withUnsafeMutableBytes { bytes in
                bytes.setUInt16(UInt16(bytes.count), at: 2)
                var flags = UInt16((originalOffset + position) / 8) & 0x1FFF
                if !last || packet.moreFragments { flags |= IPv4PacketView.flagMoreFragments }
                bytes.setUInt16(flags, at: 6)
                IPv4HeaderEditor.recomputeChecksum(bytes)
            }
            result.append(fragment)
            position += chunk
        }
        return result
    }

    /// The header with only the options whose "copied" flag is set, padded to a multiple of 4.
    static func headerForLaterFragments(_ header: [UInt8]) -> [UInt8] {
        guard header.count > 20 else { return header }
        var options: [UInt8] = []
        var index = 20
        while index < header.count {
            let type = header[index]
            if type == 0 { break }                       // end of options
            if type == 1 { index += 1; continue }        // no-operation: not copied
            guard index + 1 < header.count else { break }
            let length = Int(header[index + 1])
            guard length >= 2, index + length <= header.count else { break }
            if type & 0x80 != 0 { options += header[index..<(index + length)] }
            index += length
        }
        while options.count % 4 != 0 { options.append(0) }
        var result = Array(header[0..<20]) + options
        result[0] = 0x40 | UInt8(result.count / 4)
        return result
    }
}
