/// Everything ipipd does with a packet the kernel routed into the tunnel, from the TUN read to the
/// outer packets to send (wireguard-go's send.go, for IP-in-IP): checksum offload and TSO segmentation (IPv4 and IPv6),
/// the peer by longest-prefix match, the outer header (RFC 2003, RFC 6040), fragmentation when the path
/// to the peer is too small, and the ICMP errors a router sends (fragmentation needed, host
/// unreachable). Pure: bytes in, packets queued in a `PacketBatch`, drops counted; the dataplane's loop
/// only reads the TUN device and sends the batch. Used by one thread.
public final class EncapsulationPath {
    public private(set) var encapsulator: Encapsulator
    private var counters: TunnelCounters
    private let icmp = ICMPErrorReporter()
    /// A TSO super-packet moved out of the slot its segments are built in.
    private let superPacket = UnsafeMutableRawBufferPointer.allocate(byteCount: PacketSlot.maximumPacketLength, alignment: 16)
    /// The standby of an HA pair sends nothing, not even ICMP errors: every read is dropped as `standby`
    /// (the loop sets it from the role before each burst).
    public var standby = false
    /// `tunnel.clamp-mss`: the MSS of SYNs sent into the tunnel.
    private var clampMSS: TCPMSSClamp.Setting

    public init(config: GatewayConfig, tunnelMTU: Int, uplinkMTU: Int? = nil, counters: TunnelCounters, paths: [PeerPathState]) {
        encapsulator = Encapsulator(config: config, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU, paths: paths)
        self.counters = counters
        clampMSS = config.tunnel.clampMSS
    }

    deinit {
        superPacket.deallocate()
        outerPacket.deallocate()
    }

    /// An outer IPv6 packet moved out of the slot its fragments are built in.
    private let outerPacket = UnsafeMutableRawBufferPointer.allocate(byteCount: PacketSlot.size, alignment: 16)

    /// Takes a reloaded config; the IP ID sequences and the ICMP rate limits go on.
    public func reconfigure(_ config: GatewayConfig, counters: TunnelCounters, paths: [PeerPathState]) {
        encapsulator.reconfigure(config, paths: paths)
        self.counters = counters
        clampMSS = config.tunnel.clampMSS
    }

    /// One read from the TUN device, `readLength` bytes at `batch.nextSlot[PacketSlot.virtioHeaderOffset...]`:
    /// a virtio-net header and an inner packet (or a TCP super-packet to cut into segments).
    public func process(readLength: Int, in batch: PacketBatch, now: Double) {
        guard !standby else {
            counters.drop(.standby)
            return
        }
        guard readLength > VirtioNetHeader.size else {
            counters.drop(.malformedInner)
            return
        }
        let slot = batch.nextSlot
        let header = VirtioNetHeader(UnsafeRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset..<PacketSlot.innerOffset]))
        let length = readLength - VirtioNetHeader.size
        let packet = UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset..<(PacketSlot.innerOffset + length)])
        switch header.segmentation {
        case .none:
            if let (start, offset) = header.checksum, !ChecksumOffload.complete(packet, start: start, offset: offset) {
                counters.drop(.malformedInner)
                return
            }
            encapsulateNextSlot(innerLength: length, in: batch, now: now)
        case .tcpIPv4(let segmentSize), .tcpIPv6(let segmentSize):
            // The segments are built in the batch's slots, starting with this one: move the original aside.
            superPacket.copyMemory(from: UnsafeRawBufferPointer(packet))
            let version: UInt8 = if case .tcpIPv6 = header.segmentation { 6 } else { 4 }
            guard packet[0] >> 4 == version, packet[version == 6 ? 6 : 9] == IPProtocolNumber.tcp,
                  let segmenter = GSOSegmenter(superPacket: UnsafeRawBufferPointer(rebasing: superPacket[0..<length]),
                                               segmentSize: segmentSize) else {
                counters.drop(.malformedInner)
                return
            }
            counters.tcpPacketsSegmented.add()
            for index in 0..<segmenter.segmentCount {
                let segmentLength = segmenter.write(segment: index, to: batch.nextSlot.baseAddress!.advanced(by: PacketSlot.innerOffset))
                encapsulateNextSlot(innerLength: segmentLength, in: batch, now: now)
            }
        case .udp, .unsupported:
            // Offloads the TUN device was not given (TUNSETOFFLOAD asks for TCP over IPv4 and IPv6): never expected.
            counters.drop(.malformedInner)
        }
    }

    /// Encapsulates the inner packet at `batch.nextSlot[innerOffset ..< innerOffset + innerLength]`:
    /// queued to its peer, answered with an ICMP error, fragmented, or dropped.
    @inline(__always)
    func encapsulateNextSlot(innerLength length: Int, in batch: PacketBatch, now: Double) {
        let slot = batch.nextSlot
        let inner = UnsafeRawBufferPointer(rebasing: slot[PacketSlot.innerOffset..<(PacketSlot.innerOffset + length)])
        switch encapsulator.encapsulate(slot, innerLength: length, now: now) {
        case let .send(range, peer, notifyUnreachable):
            clampMSS(slot, length: length, peer: peer, now: now)
            batch.append(range, destination: encapsulator.encapsulations[peer].remote, kind: .encapsulated(peer: peer, innerLength: length))
            if notifyUnreachable {
                // The packet still goes; its sender is told as ip_tunnel_xmit tells it (RFC 2003 §4). The
                // error quotes the slot just queued, which stays intact until the batch reuses it.
                icmp.report(.unreachable, about: inner, peer: peer, counters: counters, into: batch, now: now)
            }
        case let .sendInFragments(range, peer, notifyUnreachable, outerMTU):
            clampMSS(slot, length: length, peer: peer, now: now)
            fragmentOuter(UnsafeRawBufferPointer(rebasing: slot[range]), mtu: outerMTU, peer: peer, innerLength: length, in: batch)
            if notifyUnreachable {
                // The first fragment's slot holds the packet no more: the error quotes the copy.
                let copied = UnsafeRawBufferPointer(rebasing: outerPacket[(range.count - length)..<range.count])
                icmp.report(.unreachable, about: copied, peer: peer, counters: counters, into: batch, now: now)
            }
        case let .tooBig(peer, mtu):
            counters.drop(.tooBig, peer: peer)
            icmp.report(.tooBig(mtu: mtu), about: inner, peer: peer, counters: counters, into: batch, now: now)
        case let .fragment(peer, mtu):
            fragment(inner, peer: peer, mtu: mtu, in: batch, now: now)
        case let .encapsulationLimitReached(peer, pointer):
            counters.drop(.encapsulationLimit, peer: peer)
            icmp.report(.parameterProblem(pointer: pointer), about: inner, peer: peer, counters: counters, into: batch, now: now)
        case let .drop(reason, peer):
            counters.drop(reason, peer: peer)
        }
    }

    /// The outer header is written; the inner packet behind it may still lose MSS (its checksum is its own).
    @inline(__always)
    private func clampMSS(_ slot: UnsafeMutableRawBufferPointer, length: Int, peer: Int, now: Double) {
        if TCPMSSClamp.clampIfSYN(UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset..<(PacketSlot.innerOffset + length)]),
                                  clampMSS, innerMTU: { encapsulator.mtu(toPeer: peer, now: now) }) {
            counters.tcpMSSClampedSent.add()
        }
    }

    /// An outer IPv6 packet larger than the path to its peer (an inner IPv6 packet within the least MTU, on
    /// a path of less than 1280 plus the outer header): sent as fragments of at most `mtu` bytes, as the
    /// kernel's ip6_fragment would cut it — the fixed header in front of each with a Fragment header, the
    /// rest (the encapsulation limit included) cut at multiples of 8.
    private func fragmentOuter(_ packet: UnsafeRawBufferPointer, mtu: Int, peer: Int, innerLength: Int, in batch: PacketBatch) {
        let header = IPv6PacketView.headerLength, fragmentHeader = 8
        outerPacket.copyMemory(from: packet)
        let whole = UnsafeRawBufferPointer(rebasing: outerPacket[0..<packet.count])
        let destination = encapsulator.encapsulations[peer].remote
        let identification = encapsulator.paths[peer].takeFragmentIdentification()
        let step = (mtu - header - fragmentHeader) & ~7
        var offset = header
        while offset < whole.count {
            let end = min(offset + step, whole.count)
            let slot = batch.nextSlot
            slot.copyMemory(from: UnsafeRawBufferPointer(rebasing: whole[0..<header]))
            slot[6] = IPv6ExtensionHeaders.fragment
            slot.setUInt16(UInt16(fragmentHeader + end - offset), at: 4)
            slot[header] = whole[6]
            slot[header + 1] = 0
            slot.setUInt16(UInt16(offset - header) | (end < whole.count ? 1 : 0), at: header + 2)
            slot.setUInt32(identification, at: header + 4)
            UnsafeMutableRawBufferPointer(rebasing: slot[(header + fragmentHeader)...])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: whole[offset..<end]))
            batch.append(0..<(header + fragmentHeader + end - offset), destination: destination,
                         kind: .encapsulatedFragment(peer: peer, innerLength: innerLength, first: offset == header))
            offset = end
        }
    }

    /// An inner packet without DF that does not fit the path to its peer: cut as Linux cuts it before
    /// it enters the tunnel (rare: a learned path MTU below the tunnel's), each piece encapsulated.
    private func fragment(_ inner: UnsafeRawBufferPointer, peer: Int, mtu: Int, in batch: PacketBatch, now: Double) {
        guard let packet = try? IPv4PacketView(validating: inner, exactLength: true) else { return }
        let pieces = IPv4Fragmenter.fragments(of: packet, mtu: mtu)   // copies: the slot is reused below
        guard !pieces.isEmpty else {
            counters.drop(.tooBig, peer: peer)
            return
        }
        for piece in pieces {
            piece.withUnsafeBytes { batch.nextSlot.baseAddress!.advanced(by: PacketSlot.innerOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            encapsulateNextSlot(innerLength: piece.count, in: batch, now: now)
        }
        counters.peers[peer].fragmented.add()
    }
}
