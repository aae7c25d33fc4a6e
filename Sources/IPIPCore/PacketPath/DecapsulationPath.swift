/// Everything ipipd does with a frame captured on the uplink (wireguard-go's receive.go, for
/// IP-in-IP): Ethernet/802.1Q framing, outer and inner checks, outer reassembly, RFC 6040 ECN, the
/// inner TTL, the ICMP errors a router sends (time exceeded), and ICMP from routers about our own
/// outer packets (path MTU, unreachable peers). Pure: bytes in, inner packets queued in a
/// `PacketBatch` for delivery, drops counted, events reported; the dataplane's loop only takes frames
/// from libpcap and sends the batch. Used by one thread.
public final class DecapsulationPath {
    public private(set) var decapsulator: Decapsulator
    private var counters: TunnelCounters
    private var paths: [PeerPathState]
    private var reassembler = Reassembler()
    private let icmp = ICMPErrorReporter()
    /// Joins TCP segments for the TUN device (kernel delivery) the way GRO would.
    private var coalescer = TCPCoalescer()
    private let tunnelMTU: Int
    /// `tunnel.min-pmtu`: no report lowers the outer path MTU below it.
    private var minimumPathMTU: Int
    /// What the loop logs (path MTU lowered, peer unreachable); set by the dataplane.
    public var report: (PacketPathEvent) -> Void = { _ in }
    /// The standby of an HA pair delivers and answers nothing: every frame is dropped as `standby`
    /// (the loop sets it from the role before each burst).
    public var standby = false

    public init(config: GatewayConfig, tunnelMTU: Int, counters: TunnelCounters, paths: [PeerPathState],
                localNetworks: LocalNetworks) {
        decapsulator = Decapsulator(config: config, localNetworks: localNetworks)
        minimumPathMTU = config.tunnel.minimumPathMTU
        tunnelRoutes = config.routingTable
        self.tunnelMTU = tunnelMTU
        self.counters = counters
        self.paths = paths
    }

    /// Takes a reloaded config; reassembly state and rate limits go on.
    public func reconfigure(_ config: GatewayConfig, counters: TunnelCounters, paths: [PeerPathState]) {
        decapsulator = Decapsulator(config: config, localNetworks: decapsulator.localNetworks)
        minimumPathMTU = config.tunnel.minimumPathMTU
        tunnelRoutes = config.routingTable
        self.counters = counters
        self.paths = paths
    }

    /// This machine's addresses and subnets: inner packets to them take the TUN device, and none may
    /// claim to come from them.
    public var localNetworks: LocalNetworks {
        get { decapsulator.localNetworks }
        set { decapsulator.localNetworks = newValue }
    }

    /// The MTU of the interface each destination is routed to (libnet delivery), from the route
    /// watcher: larger inner packets are fragmented, or answered with "fragmentation needed". The
    /// routes through the tunnel are not in it: destinations in a tunneled prefix (a hub passing packets
    /// from peer to peer) take the tunnel MTU when that prefix is the longer match.
    public var egressMTUs = RoutingTable<Int>()
    private var tunnelRoutes: RoutingTable<Int>

    /// Once a second or so: drops reassembly state that timed out.
    public func expire(now: Double) {
        counters.dropCaptured(.fragmentTimeout, count: reassembler.expire(now: now))
        counters.capture.fragmentsHeld.set(UInt64(reassembler.fragmentsHeldCount))
    }

    public var pendingReassemblies: Int { reassembler.pendingCount }
    /// Bytes the reassembly holds (its charge, bookkeeping included).
    public var reassemblyMemoryInUse: Int { reassembler.memoryInUse }

    /// A frame as captured on the uplink: `frame` holds what was captured of its `wireLength` bytes.
    @inline(__always)
    public func process(frame: UnsafeRawBufferPointer, wireLength: Int, in batch: PacketBatch, now: Double) {
        counters.capture.frames.add()
        guard !standby else {
            counters.dropCaptured(.standby)
            return
        }
        guard frame.count >= wireLength else {
            counters.dropCaptured(.truncatedCapture)
            return
        }
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == EtherType.ipv4 else {
            counters.dropCaptured(.malformedOuter)
            return
        }
        // Copied out of libpcap's ring into the next slot: the decapsulator edits the inner header, which
        // is then delivered from where it lies.
        let ip = ethernet.payload
        let length = min(ip.count, PacketSlot.size)
        batch.nextSlot.copyMemory(from: UnsafeRawBufferPointer(rebasing: ip[0..<length]))
        process(outerLength: length, in: batch, now: now)
    }

    /// An outer IPv4 packet at `batch.nextSlot[0..<outerLength]`.
    public func process(outerLength: Int, in batch: PacketBatch, now: Double) {
        var length = outerLength
        while true {
            let packet = UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[0..<length])
            switch decapsulator.decapsulate(packet) {
            case let .deliver(peer, inner, .tun):
                let innerBytes = UnsafeRawBufferPointer(rebasing: packet[inner])
                if coalescer.join(innerBytes, peer: peer, in: batch) { return }
                // The TUN device takes a virtio-net header before each packet: zeros, no offload asked.
                let start = inner.lowerBound - VirtioNetHeader.size
                UnsafeMutableRawBufferPointer(rebasing: packet[start..<inner.lowerBound]).initializeMemory(as: UInt8.self, repeating: 0)
                batch.append(start..<inner.upperBound, destination: .any, kind: .decapsulated(peer: peer, innerLength: inner.count, viaTUN: true))
                coalescer.started(innerBytes, peer: peer, in: batch)
            case let .deliver(peer, inner, .routed):
                route(UnsafeMutableRawBufferPointer(rebasing: packet[inner]), at: inner, from: peer, in: batch, now: now)
            case .reassemble(let peer):
                guard let fragment = try? IPv4PacketView(validating: UnsafeRawBufferPointer(packet)) else { return }
                let result = reassembler.add(fragment, now: now)
                counters.capture.fragmentsHeld.set(UInt64(reassembler.fragmentsHeldCount))
                switch result {
                case .incomplete:
                    return
                case .duplicate:
                    counters.dropCaptured(.fragmentDuplicate, peer: peer)
                    return
                case let .dropped(reason, fragments):
                    counters.dropCaptured(reason, peer: peer, count: fragments)
                    return
                case let .complete(datagram, fragments):
                    counters.peers[peer].fragmentsReassembled.add(UInt64(fragments))
                    counters.capture.fragmentsReassembled.add(UInt64(fragments))
                    counters.capture.datagramsReassembled.add()
                    // Whole again (and no longer a fragment): decapsulated on the next turn.
                    datagram.withUnsafeBytes { batch.nextSlot.copyMemory(from: $0) }
                    length = datagram.count
                    continue
                }
            case let .timeExceeded(peer, inner):
                counters.dropCaptured(.ttlExpired, peer: peer)
                icmp.report(type: ICMPType.timeExceeded, code: 0, about: UnsafeRawBufferPointer(rebasing: packet[inner]),
                            peer: peer, counters: counters, into: batch, now: now)
            case .aboutOuter(let report):
                learn(from: report, reporter: UnsafeRawBufferPointer(packet), in: batch, now: now)
            case let .drop(reason, peer):
                counters.dropCaptured(reason, peer: peer)
            }
            return
        }
    }

    /// An inner packet ipipd routes itself (libnet delivery), at `batch.nextSlot[range]`: sent as it is
    /// when it fits the interface its destination is routed to; otherwise, as a router would, cut into
    /// fragments (DF clear) or answered with "fragmentation needed" and that interface's MTU (DF set).
    private func route(_ inner: UnsafeMutableRawBufferPointer, at range: Range<Int>, from peer: Int, in batch: PacketBatch, now: Double) {
        let packet = UnsafeRawBufferPointer(inner)
        let destination = packet.ipv4Destination
        let egress = egressMTUs.lookupEntry(destination)
        var mtu = egress?.value ?? PacketSlot.maximumPacketLength
        if let tunneled = tunnelRoutes.lookupEntry(destination), tunneled.prefix.length >= egress?.prefix.length ?? -1 { mtu = tunnelMTU }
        if packet.count <= mtu {
            batch.append(range, destination: destination, kind: .decapsulated(peer: peer, innerLength: packet.count, viaTUN: false))
            return
        }
        guard let view = try? IPv4PacketView(validating: packet, exactLength: true) else { return }
        if view.dontFragment {
            counters.dropCaptured(.tooBig, peer: peer)
            icmp.report(type: ICMPType.destinationUnreachable, code: ICMPUnreachableCode.fragmentationNeeded, nextHopMTU: mtu,
                        about: packet, peer: peer, counters: counters, into: batch, now: now)
            return
        }
        let pieces = IPv4Fragmenter.fragments(of: view, mtu: mtu)   // copies: the slot is reused below
        guard !pieces.isEmpty else {
            counters.dropCaptured(.tooBig, peer: peer)
            return
        }
        counters.peers[peer].fragmented.add()
        for (index, piece) in pieces.enumerated() {
            piece.withUnsafeBytes { batch.nextSlot.copyMemory(from: $0) }
            batch.append(0..<piece.count, destination: destination,
                         kind: index == 0 ? .decapsulated(peer: peer, innerLength: piece.count, viaTUN: false)
                                          : .decapsulatedPiece(peer: peer, innerLength: piece.count))
        }
    }

    /// ICMP about one of our outer packets (RFC 2003 §4, Linux's ipip_err), believed only when it quotes
    /// an outer packet we sent to that peer lately: anyone can forge a router's ICMP error.
    private func learn(from report: OuterICMP, reporter packet: UnsafeRawBufferPointer, in batch: PacketBatch, now: Double) {
        let reporter = packet.ipv4Source
        switch report {
        case let .fragmentationNeeded(peer, outerMTU, identification):
            guard paths[peer].sentRecently(identification: identification, now: now) else {
                counters.dropCaptured(.icmpUnverified, peer: peer)
                return
            }
            counters.capture.icmpActedOn.add()
            if let mtu = paths[peer].learnPathMTU(outerMTU: outerMTU, now: now, ceiling: tunnelMTU, floor: minimumPathMTU) {
                self.report(.pathMTULowered(peer: peer, mtu: mtu))
            }
        case let .peerError(peer, identification):
            guard paths[peer].sentRecently(identification: identification, now: now) else {
                counters.dropCaptured(.icmpUnverified, peer: peer)
                return
            }
            counters.capture.icmpActedOn.add()
            paths[peer].noteError(now: now)
            self.report(.peerReportedUnreachable(peer: peer, reporter: reporter))
        case let .relayToIPv6Source(peer, identification, timeExceeded):
            guard paths[peer].sentRecently(identification: identification, now: now) else {
                counters.dropCaptured(.icmpUnverified, peer: peer)
                return
            }
            counters.capture.icmpActedOn.add()
            guard let inner = OuterICMP.quotedInner6(inPacket: packet) else { return }
            icmp.report6(type: timeExceeded ? ICMPv6Type.timeExceeded : ICMPv6Type.destinationUnreachable,
                         code: timeExceeded ? 0 : ICMPv6UnreachableCode.addressUnreachable,
                         about: inner, peer: peer, counters: counters, into: batch, now: now)
        case .ignore:
            counters.dropCaptured(.icmpIgnored)
        }
    }
}
