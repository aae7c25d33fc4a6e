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
    private var coalescer = FlowCoalescer()
    /// A super-packet the uplink's GRO merged, moved out of the slots its segments are cut into (routed delivery).
    private let superPacketCopy = UnsafeMutableRawBufferPointer.allocate(byteCount: PacketSlot.maximumPacketLength, alignment: 16)
    private let tunnelMTU: Int
    private let uplinkMTU: Int?
    /// Each peer's inner MTU before any router's report (`Encapsulator.innerMTU`).
    private var peerMTUs: [Int]
    /// `tunnel.clamp-mss`: the MSS of SYNs received from peers.
    private var clampMSS: TCPMSSClamp.Setting
    /// `tunnel.min-pmtu` (and 1280 over IPv6): no report lowers the outer path MTU below it.
    private var minimumPathMTU: Int
    /// What the loop logs (path MTU lowered, peer unreachable); set by the dataplane.
    public var report: (PacketPathEvent) -> Void = { _ in }
    /// The standby of an HA pair delivers and answers nothing: every frame is dropped as `standby`
    /// (the loop sets it from the role before each burst).
    public var standby = false

    public init(config: GatewayConfig, tunnelMTU: Int, uplinkMTU: Int? = nil, counters: TunnelCounters, paths: [PeerPathState],
                localNetworks: LocalNetworks, localRoutes: LocalRoutes = LocalRoutes([])) {
        decapsulator = Decapsulator(config: config, localNetworks: localNetworks, localRoutes: localRoutes)
        self.uplinkMTU = uplinkMTU
        peerMTUs = config.encapsulations.map { Encapsulator.innerMTU($0, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU) }
        minimumPathMTU = Self.pathMTUFloor(config)
        tunnelRoutes = config.routingTable
        self.tunnelMTU = tunnelMTU
        self.counters = counters
        self.paths = paths
        clampMSS = config.tunnel.clampMSS
    }

    deinit { superPacketCopy.deallocate() }

    /// Takes a reloaded config; reassembly state and rate limits go on.
    public func reconfigure(_ config: GatewayConfig, counters: TunnelCounters, paths: [PeerPathState]) {
        decapsulator = Decapsulator(config: config, localNetworks: decapsulator.localNetworks, localRoutes: decapsulator.localRoutes)
        peerMTUs = config.encapsulations.map { Encapsulator.innerMTU($0, tunnelMTU: tunnelMTU, uplinkMTU: uplinkMTU) }
        minimumPathMTU = Self.pathMTUFloor(config)
        tunnelRoutes = config.routingTable
        self.counters = counters
        self.paths = paths
        clampMSS = config.tunnel.clampMSS
    }

    /// RFC 8201 §4: an IPv6 path is never below 1280, whatever a report says.
    private static func pathMTUFloor(_ config: GatewayConfig) -> Int {
        config.uplink.isIPv6 ? max(config.tunnel.minimumPathMTU, Encapsulator.minimumIPv6MTU) : config.tunnel.minimumPathMTU
    }

    /// This machine's addresses and subnets: inner packets to them take the TUN device, and none may
    /// claim to come from them.
    public var localNetworks: LocalNetworks {
        get { decapsulator.localNetworks }
        set { decapsulator.localNetworks = newValue }
    }

    /// The prefixes the kernel routes as local (AnyIP ranges among them): packets to them take the TUN
    /// device in the routed delivery too, and none may claim to come from them.
    public var localRoutes: LocalRoutes {
        get { decapsulator.localRoutes }
        set { decapsulator.localRoutes = newValue }
    }

    /// The MTU of the interface each destination is routed to (routed delivery), from the route
    /// watcher: larger inner packets are fragmented, or answered with "fragmentation needed". The
    /// routes through the tunnel are not in it: destinations in a tunneled prefix (a hub passing packets
    /// from peer to peer) take the tunnel MTU when that prefix is the longer match.
    public var egressMTUs = PrefixTable<Int>()
    private var tunnelRoutes: PrefixTable<Int>

    /// Once a second or so: drops reassembly state that timed out.
    public func expire(now: Double) {
        counters.dropCaptured(.fragmentTimeout, count: reassembler.expire(now: now))
        counters.capture.fragmentsHeld.set(UInt64(reassembler.fragmentsHeldCount))
    }

    public var pendingReassemblies: Int { reassembler.pendingCount }
    /// Bytes the reassembly holds (its charge, bookkeeping included).
    public var reassemblyMemoryInUse: Int { reassembler.memoryInUse }

    /// A frame as captured on the uplink: `frame` holds what was captured of its `wireLength` bytes, and
    /// `offload` what the kernel did to it before (merged it out of many segments: GRO, LRO), with
    /// offsets from the frame's start.
    @inline(__always)
    public func process(frame: UnsafeRawBufferPointer, wireLength: Int, offload: VirtioNetHeader = .plain,
                        in batch: PacketBatch, now: Double) {
        counters.capture.frames.add()
        guard !standby else {
            counters.dropCaptured(.standby)
            return
        }
        guard frame.count >= wireLength else {
            counters.dropCaptured(.truncatedCapture)
            return
        }
        let underlay = decapsulator.local.isIPv6 ? EtherType.ipv6 : EtherType.ipv4
        guard let ethernet = try? EthernetFrameView(parsing: frame), ethernet.etherType == underlay else {
            counters.dropCaptured(.malformedOuter)
            return
        }
        // Copied out of the capture's buffer into the next slot: the decapsulator edits the inner header,
        // which is then delivered from where it lies.
        let ip = ethernet.payload
        let length = min(ip.count, PacketSlot.size)
        batch.nextSlot.copyMemory(from: UnsafeRawBufferPointer(rebasing: ip[0..<length]))
        process(outerLength: length, offload: offload, outerOffset: ethernet.payloadOffset, in: batch, now: now)
    }

    /// An outer packet at `batch.nextSlot[0..<outerLength]`; `offload` as the capture reported it, its
    /// offsets from `outerOffset` bytes before the outer header.
    public func process(outerLength: Int, offload: VirtioNetHeader = .plain, outerOffset: Int = 0, in batch: PacketBatch, now: Double) {
        var length = outerLength
        var offload = offload
        while true {
            let packet = UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[0..<length])
            let checksum: OuterHeaderParser.ChecksumState = offload.dataValid ? .verified
                : offload.checksum.map { .partial(start: $0.start - outerOffset, offset: $0.offset) } ?? .unknown
            let verdict = decapsulator.decapsulate(packet, checksum: checksum)
            // A partial checksum in front of the inner packet was the outer UDP header's, completed by the parser.
            if case let .deliver(_, inner, _) = verdict, let partial = offload.checksum, partial.start - outerOffset < inner.lowerBound {
                offload.checksum = nil
            }
            var superPacket: SuperPacket?
            if offload != .plain {
                switch verdict {
                case let .deliver(peer, inner, _):
                    do {
                        superPacket = try ReceiveOffload.examine(offload, inner: UnsafeMutableRawBufferPointer(rebasing: packet[inner]),
                                                                 innerOffset: outerOffset + inner.lowerBound)
                    } catch {
                        counters.dropCaptured(.unsupportedOffload, peer: peer)
                        return
                    }
                    if let superPacket {
                        counters.uplinkMergedFrames.add()
                        counters.uplinkMergedSegments.add(UInt64(superPacket.segments))
                    }
                case .reassemble(let peer):
                    // GRO merges no fragments, and a fragment's checksum is no one's to complete.
                    counters.dropCaptured(.unsupportedOffload, peer: peer)
                    return
                case .timeExceeded, .aboutOuter, .drop:
                    break
                }
            }
            // A SYN from a peer announces an MSS our side will send to it: no more than fits the way back.
            if case let .deliver(peer, inner, _) = verdict, superPacket == nil,
               TCPMSSClamp.clampIfSYN(UnsafeMutableRawBufferPointer(rebasing: packet[inner]), clampMSS,
                                      innerMTU: { min(peerMTUs[peer], paths[peer].currentMTU(now: now) ?? peerMTUs[peer]) }) {
                counters.tcpMSSClampedReceived.add()
            }
            switch verdict {
            case let .deliver(peer, inner, .tun):
                let innerBytes = UnsafeMutableRawBufferPointer(rebasing: packet[inner])
                let arrival = FlowCoalescer.Arrival(UnsafeRawBufferPointer(innerBytes), merged: superPacket, verified: offload.dataValid)
                if coalescer.join(arrival, peer: peer, in: batch) { return }
                let start = inner.lowerBound - VirtioNetHeader.size
                let virtioHeader = UnsafeMutableRawBufferPointer(rebasing: packet[start..<inner.lowerBound])
                if let superPacket {
                    // Whole, as Linux's ipip hands a GRO packet on: the kernel cuts it where the next hop needs it.
                    superPacket.prepareForTUN(innerBytes).write(to: virtioHeader)
                    batch.append(start..<inner.upperBound, destination: .any,
                                 kind: .superPacket(peer: peer, innerLength: superPacket.sentLength(merged: inner.count),
                                                    segments: superPacket.segments, frames: 1))
                } else {
                    // The TUN device takes a virtio-net header before each packet: zeros, no offload asked.
                    virtioHeader.initializeMemory(as: UInt8.self, repeating: 0)
                    batch.append(start..<inner.upperBound, destination: .any,
                                 kind: .decapsulated(peer: peer, innerLength: inner.count, viaTUN: true))
                }
                coalescer.started(arrival, peer: peer, in: batch)
            case let .deliver(peer, inner, .routed):
                if let superPacket {
                    routeSuperPacket(UnsafeRawBufferPointer(rebasing: packet[inner]), superPacket, from: peer, in: batch, now: now)
                } else {
                    route(UnsafeMutableRawBufferPointer(rebasing: packet[inner]), at: inner, from: peer, in: batch, now: now)
                }
            case .reassemble(let peer):
                let result: Reassembler.Result
                if decapsulator.local.isIPv6 {
                    guard let fragment = Reassembler.Fragment(ipv6: UnsafeRawBufferPointer(packet)) else {
                        counters.dropCaptured(.malformedOuter, peer: peer)
                        return
                    }
                    result = reassembler.add(fragment, now: now)
                } else {
                    guard let fragment = try? IPv4PacketView(validating: UnsafeRawBufferPointer(packet)) else { return }
                    result = reassembler.add(fragment, now: now)
                }
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
                    offload = .plain
                    continue
                }
            case let .timeExceeded(peer, inner):
                counters.dropCaptured(.ttlExpired, peer: peer)
                icmp.report(.timeExceeded, about: UnsafeRawBufferPointer(rebasing: packet[inner]), peer: peer, counters: counters, into: batch, now: now)
            case .aboutOuter(let report):
                learn(from: report, reporter: UnsafeRawBufferPointer(packet), in: batch, now: now)
            case let .drop(reason, peer):
                counters.dropCaptured(reason, peer: peer)
            }
            return
        }
    }

    /// The MTU of the interface `destination` is routed to (routed delivery); the tunnel's when a tunneled
    /// prefix is the longer match.
    private func egressMTU(to destination: IPv4Address) -> Int {
        let egress = egressMTUs.lookupEntry(destination)
        if let tunneled = tunnelRoutes.lookupEntry(destination), tunneled.prefix.length >= egress?.prefix.length ?? -1 { return tunnelMTU }
        return egress?.value ?? PacketSlot.maximumPacketLength
    }

    /// An inner packet ipipd routes itself (routed delivery), at `batch.nextSlot[range]`: sent as it is
    /// when it fits the interface its destination is routed to; otherwise, as a router would, cut into
    /// fragments (DF clear) or answered with "fragmentation needed" and that interface's MTU (DF set).
    /// `capturedFrame`: false for a segment after the first of a super-packet, which is no frame of its own.
    private func route(_ inner: UnsafeMutableRawBufferPointer, at range: Range<Int>, from peer: Int, capturedFrame: Bool = true,
                       in batch: PacketBatch, now: Double) {
        let packet = UnsafeRawBufferPointer(inner)
        let destination = packet.ipv4Destination
        let mtu = egressMTU(to: destination)
        if packet.count <= mtu {
            batch.append(range, destination: destination,
                         kind: capturedFrame ? .decapsulated(peer: peer, innerLength: packet.count, viaTUN: false)
                                             : .decapsulatedPiece(peer: peer, innerLength: packet.count))
            return
        }
        func drop(_ reason: DropReason) {
            if capturedFrame { counters.dropCaptured(reason, peer: peer) } else { counters.drop(reason, peer: peer) }
        }
        guard let view = try? IPv4PacketView(validating: packet, exactLength: true) else { return }
        if view.dontFragment {
            drop(.tooBig)
            icmp.report(.tooBig(mtu: mtu), about: packet, peer: peer, counters: counters, into: batch, now: now)
            return
        }
        let pieces = IPv4Fragmenter.fragments(of: view, mtu: mtu)   // copies: the slot is reused below
        guard !pieces.isEmpty else {
            drop(.tooBig)
            return
        }
        counters.peers[peer].fragmented.add()
        for (index, piece) in pieces.enumerated() {
            piece.withUnsafeBytes { batch.nextSlot.copyMemory(from: $0) }
            batch.append(0..<piece.count, destination: destination,
                         kind: index == 0 && capturedFrame ? .decapsulated(peer: peer, innerLength: piece.count, viaTUN: false)
                                                           : .decapsulatedPiece(peer: peer, innerLength: piece.count))
        }
    }

    /// A super-packet the uplink's GRO merged, for ipipd to route (routed delivery): cut back into the
    /// segments its sender sent, as the kernel's GSO cuts one for a NIC without TSO, each routed as a
    /// packet. As the kernel's forwarding treats a GSO packet, segments that do not fit the interface they
    /// leave by get one "fragmentation needed" for the frame (DF set), or are fragmented (DF clear).
    private func routeSuperPacket(_ inner: UnsafeRawBufferPointer, _ superPacket: SuperPacket, from peer: Int,
                                  in batch: PacketBatch, now: Double) {
        let mtu = egressMTU(to: inner.ipv4Destination)
        if superPacket.headersLength + superPacket.segmentSize > mtu && inner[6] & 0x40 != 0 {
            counters.dropCaptured(.tooBig, peer: peer)
            icmp.report(.tooBig(mtu: mtu), about: inner, peer: peer, counters: counters, into: batch, now: now)
            return
        }
        // The segments are built in the batch's slots, starting with the one the super-packet lies in.
        let copy = UnsafeMutableRawBufferPointer(rebasing: superPacketCopy[0..<inner.count])
        copy.copyMemory(from: inner)
        guard let segmenter = GSOSegmenter(superPacket: UnsafeRawBufferPointer(copy), segmentSize: superPacket.segmentSize) else {
            counters.dropCaptured(.unsupportedOffload, peer: peer)
            return
        }
        for index in 0..<segmenter.segmentCount {
            let slot = batch.nextSlot
            let length = segmenter.write(segment: index, to: slot.baseAddress!)
            route(UnsafeMutableRawBufferPointer(rebasing: slot[0..<length]), at: 0..<length, from: peer, capturedFrame: index == 0,
                  in: batch, now: now)
        }
    }

    /// ICMP about one of our outer packets (RFC 2003 §4, Linux's ipip_err), believed only when it quotes
    /// an outer packet we sent to that peer lately — its ID, its length and its inner packet's first bytes —
    /// and only within the peer's report budget (`PeerPathState.takeReportBudget`): anyone can forge a router's ICMP error.
    private func learn(from report: OuterICMP, reporter packet: UnsafeRawBufferPointer, in batch: PacketBatch, now: Double) {
        let reporter: IPAddress = decapsulator.local.isIPv6 ? .v6(packet.ipv6Address(at: 8)) : .v4(packet.ipv4Source)
        func believed(_ quote: OuterPacketQuote, peer: Int) -> Bool {
            guard paths[peer].takeReportBudget(now: now) else {
                counters.dropCaptured(.icmpOverBudget, peer: peer)
                return false
            }
            guard paths[peer].sentRecently(quote, now: now) else {
                counters.dropCaptured(.icmpUnverified, peer: peer)
                return false
            }
            counters.capture.icmpActedOn.add()
            return true
        }
        switch report {
        case let .fragmentationNeeded(peer, outerMTU, quote):
            // A router reports a packet that did not fit: one that fits the reported MTU was not stopped by it.
            guard Int(quote.outerLength) > outerMTU else {
                counters.dropCaptured(.icmpUnverified, peer: peer)
                return
            }
            guard believed(quote, peer: peer) else { return }
            if let mtu = paths[peer].learnPathMTU(outerMTU: outerMTU, now: now, ceiling: peerMTUs[peer], floor: minimumPathMTU,
                                                  overhead: decapsulator.peers.encapsulations[peer].overhead) {
                self.report(.pathMTULowered(peer: peer, mtu: mtu))
            }
        case let .peerError(peer, quote):
            guard believed(quote, peer: peer) else { return }
            paths[peer].noteError(now: now)
            self.report(.peerReportedUnreachable(peer: peer, reporter: reporter))
        case let .relayToIPv6Source(peer, quote, timeExceeded, inner):
            guard believed(quote, peer: peer) else { return }
            icmp.report(timeExceeded ? .timeExceeded : .unreachable, about: UnsafeRawBufferPointer(rebasing: packet[inner]), peer: peer,
                        counters: counters, into: batch, now: now)
        case .unverifiable(let peer):
            counters.dropCaptured(.icmpUnverified, peer: peer)
        case .ignore:
            counters.dropCaptured(.icmpIgnored)
        }
    }
}
