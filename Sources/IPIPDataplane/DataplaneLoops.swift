#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The per-packet loops. Each runs on its own thread and owns its buffers, sender and state; what they
/// share are the counters and the per-peer path state (atomics) and the stop signal.
struct DataplaneLoops: Sendable {
    let box: SnapshotBox
    let stop: StopSignal
    let logger: Logger

    /// The fragmentation path's buffer: the largest IPv4 packet plus room for the outer header.
    static let bufferSize = SendBatch.slotSize

    /// Sends an ICMP error about `original` to its source, if RFC 1122 and the rate limit allow.
    func sendICMPError(type: UInt8, code: UInt8, nextHopMTU: Int = 0, about original: UnsafeRawBufferPointer,
                       peer: Int, counters: TunnelCounters, limiter: inout ICMPRateLimiter, sender: RawIPv4Sender, now: Double) {
        guard ICMPErrorRules.mayReport(on: original) else { return }
        guard limiter.allow(to: original.ipv4Source, now: now) else {
            counters.icmpRateLimited.add()
            return
        }
        let packet = ICMPErrorRules.packet(type: type, code: code, nextHopMTU: nextHopMTU, about: original)
        if packet.withUnsafeBytes({ sender.send($0) }) { counters.peers[peer].icmpErrorsSent.add() }
    }

    /// Sends a batch, counting each packet against its peer: `carried` picks the packet and byte
    /// counters (encapsulated or decapsulated); refusals are counted as drops and logged (throttled).
    func send(_ batch: SendBatch, sender: RawIPv4Sender, counters: TunnelCounters, errors: inout ThrottledLog,
              carried: (PeerCounters) -> (packets: Counter, bytes: Counter)) {
        batch.flush(on: sender.fileDescriptor, sent: { peer, innerLength in
            let (packets, bytes) = carried(counters.peers[peer])
            packets.add()
            bytes.add(UInt64(innerLength))
        }, failed: { peer, code in
            counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
            errors.note(["peer": "\(counters.peers[peer].name)", "error": "\(String(cString: strerror(code)))"])
        })
    }

    /// TUN → routing table → outer header → libnet's raw socket, a burst per sendmmsg(2).
    func encapsulate(from tun: TUNDevice, tunnelMTU: Int, sender: RawIPv4Sender) {
        var snapshot = box.current
        var encapsulator = Encapsulator(config: snapshot.config, tunnelMTU: tunnelMTU, paths: snapshot.paths,
                                        initialIdentification: UInt16.random(in: 1...UInt16.max))
        let batch = SendBatch()
        let fragmentBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { fragmentBuffer.deallocate() }
        let superPacket = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { superPacket.deallocate() }
        let headerPosition = Encapsulator.headroom - VirtioNetHeader.size
        var sendErrors = ThrottledLog(logger: logger, message: "cannot send to peer")
        var loopLog = ThrottledLog(logger: logger, message: "the route to a peer's endpoint leads into the tunnel; dropping its traffic instead of looping")
        var limiter = ICMPRateLimiter()
        var routeWatcher = EndpointRouteWatcher(tunnel: tun.name, endpoints: encapsulator.endpoints)
        var lastRouteCheck = -Double.infinity

        func flush() {
            send(batch, sender: sender, counters: snapshot.counters, errors: &sendErrors) {
                ($0.encapsulatedPackets, $0.encapsulatedBytes)
            }
        }

        /// Encapsulates the inner packet in `batch.nextSlot[headroom ..< headroom + length]`: queued for
        /// sending, or answered with an ICMP error, fragmented or dropped.
        func encapsulateInSlot(length: Int, now: Double) {
            let slot = batch.nextSlot, counters = snapshot.counters
            let inner = UnsafeRawBufferPointer(rebasing: slot[Encapsulator.headroom..<(Encapsulator.headroom + length)])
            switch encapsulator.encapsulate(slot, innerLength: length, now: now) {
            case let .send(outerLength, peer, destination, notifyUnreachable):
                if notifyUnreachable {
                    sendICMPError(type: ICMPType.destinationUnreachable, code: ICMPUnreachableCode.host, about: inner,
                                  peer: peer, counters: counters, limiter: &limiter, sender: sender, now: now)
                }
                batch.commit(0..<outerLength, destination: destination, peer: peer, innerLength: length)
            case let .tooBig(peer, mtu):
                counters.drop(.tooBig, peer: peer)
                sendICMPError(type: ICMPType.destinationUnreachable, code: ICMPUnreachableCode.fragmentationNeeded,
                              nextHopMTU: mtu, about: inner, peer: peer, counters: counters, limiter: &limiter, sender: sender, now: now)
            case let .fragment(peer, mtu):
                // Rare (a path MTU below the tunnel's): each piece goes out on its own.
                guard let packet = try? IPv4PacketView(validating: inner, exactLength: true) else { return }
                let pieces = IPv4Fragmenter.fragments(of: packet, mtu: mtu)
                if pieces.isEmpty { counters.drop(.tooBig, peer: peer) }
                for piece in pieces {
                    piece.withUnsafeBytes { fragmentBuffer.baseAddress!.advanced(by: Encapsulator.headroom).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    guard case let .send(outerLength, peer, _, _) = encapsulator.encapsulate(fragmentBuffer, innerLength: piece.count, now: now) else { continue }
                    if sender.send(UnsafeRawBufferPointer(rebasing: fragmentBuffer[0..<outerLength])) {
                        counters.peers[peer].encapsulatedPackets.add()
                        counters.peers[peer].encapsulatedBytes.add(UInt64(piece.count))
                    } else {
                        counters.drop(errno == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
                    }
                }
                counters.peers[peer].fragmented.add()
            case let .drop(reason, peer):
                counters.drop(reason, peer: peer)
            }
        }

        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                encapsulator.reconfigure(snapshot.config, paths: snapshot.paths)
                routeWatcher = EndpointRouteWatcher(tunnel: tun.name, endpoints: encapsulator.endpoints)
                lastRouteCheck = -Double.infinity
            }
            let counters = snapshot.counters, paths = snapshot.paths
            let now = monotonicSeconds()
            if now - lastRouteCheck >= 1 {
                // RFC 2003 §4 / the seed's "looping tunnel": never send outer packets into our own TUN.
                lastRouteCheck = now
                for (peer, looping) in routeWatcher.check().enumerated() {
                    paths[peer].setLooping(looping)
                    if looping { loopLog.note(["peer": "\(counters.peers[peer].name)", "endpoint": "\(encapsulator.endpoints[peer])"]) }
                }
            }
            // Drain what the TUN has queued into the batch's slots, then send the burst at once. Each
            // read starts with the virtio header, placed just before the slot's inner-packet position.
            var drained = false
            while !batch.isFull {
                let slot = batch.nextSlot
                let count: Int
                do {
                    guard let read = try tun.read(into: UnsafeMutableRawBufferPointer(rebasing: slot[headerPosition...])) else {
                        drained = true
                        break
                    }
                    count = read
                } catch {
                    logger.error("TUN read failed; the encapsulator stops", metadata: ["error": "\(error)"])
                    return
                }
                guard count > VirtioNetHeader.size else {
                    counters.drop(.malformedInner)
                    continue
                }
                let header = VirtioNetHeader(UnsafeRawBufferPointer(rebasing: slot[headerPosition..<Encapsulator.headroom]))
                let length = count - VirtioNetHeader.size
                let packet = UnsafeMutableRawBufferPointer(rebasing: slot[Encapsulator.headroom..<(Encapsulator.headroom + length)])
                switch header.segmentation {
                case .none:
                    if let (start, offset) = header.checksum, !ChecksumOffload.complete(packet, start: start, offset: offset) {
                        counters.drop(.malformedInner)
                        continue
                    }
                    encapsulateInSlot(length: length, now: now)
                case .tcpIPv4(let segmentSize):
                    // The segments are built in the slots, starting with this one: move the original aside.
                    superPacket.copyMemory(from: UnsafeRawBufferPointer(packet))
                    guard let segmenter = TCPSegmenter(superPacket: UnsafeRawBufferPointer(rebasing: superPacket[0..<length]),
                                                       segmentSize: segmentSize) else {
                        counters.drop(.malformedInner)
                        continue
                    }
                    counters.tcpPacketsSegmented.add()
                    for index in 0..<segmenter.segmentCount {
                        if batch.isFull { flush() }
                        let segmentLength = segmenter.write(segment: index, to: batch.nextSlot.baseAddress!.advanced(by: Encapsulator.headroom))
                        encapsulateInSlot(length: segmentLength, now: now)
                    }
                case .unsupported:
                    counters.drop(.malformedInner)
                }
            }
            if !batch.isEmpty {
                flush()
                yieldToWhatTheBurstWoke()
            }
            // The queue was empty: sleep until it is not (rather than one more read to find out).
            if drained { _ = tun.waitForPackets(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) }
        }
    }

    /// libpcap → Ethernet/802.1Q → decapsulator (and reassembler) → libnet's raw socket, a burst per
    /// sendmmsg(2); ICMP about outer packets → path state.
    func decapsulate(from capture: PacketCapture, tunnelMTU: Int, sender: RawIPv4Sender) {
        var snapshot = box.current
        var decapsulator = Decapsulator(config: snapshot.config, localAddresses: Set(SystemProbe.localAddresses()))
        var reassembler = Reassembler()
        var limiter = ICMPRateLimiter()
        let batch = SendBatch()
        var lastHousekeeping = monotonicSeconds()
        var sendErrors = ThrottledLog(logger: logger, message: "cannot reinject a decapsulated packet")
        var pathLog = ThrottledLog(logger: logger, message: "a router reported a problem on the path to a peer", interval: 5)

        func flush() {
            send(batch, sender: sender, counters: snapshot.counters, errors: &sendErrors) {
                ($0.decapsulatedPackets, $0.decapsulatedBytes)
            }
        }

        /// Handles the outer IPv4 packet in `batch.nextSlot[0..<length]`; a delivered inner packet is
        /// queued in place.
        func process(length: Int, now: Double) {
            let counters = snapshot.counters
            let packet = UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[0..<length])
            if length >= 20 && packet[9] == IPProtocolNumber.icmp {
                handleOuterICMP(UnsafeRawBufferPointer(packet), now: now)
                return
            }
            switch decapsulator.decapsulate(packet) {
            case let .deliver(peer, inner, _):
                let destination = UnsafeRawBufferPointer(rebasing: packet[inner]).ipv4Destination
                batch.commit(inner, destination: destination, peer: peer, innerLength: inner.count)
                if batch.isFull { flush() }
            case .reassemble:
                guard let fragment = try? IPv4PacketView(validating: UnsafeRawBufferPointer(packet)) else { return }
                switch reassembler.add(fragment, now: now) {
                case .incomplete:
                    break
                case .dropped(let reason):
                    counters.drop(reason)
                case .complete(let datagram):
                    datagram.withUnsafeBytes { batch.nextSlot.copyMemory(from: $0) }
                    process(length: datagram.count, now: now)
                }
            case let .timeExceeded(peer, inner):
                counters.drop(.ttlExpired, peer: peer)
                sendICMPError(type: ICMPType.timeExceeded, code: 0, about: UnsafeRawBufferPointer(rebasing: packet[inner]),
                              peer: peer, counters: counters, limiter: &limiter, sender: sender, now: now)
            case let .drop(reason, peer):
                counters.drop(reason, peer: peer)
            }
        }

        func handleOuterICMP(_ packet: UnsafeRawBufferPointer, now: Double) {
            let paths = snapshot.paths, peers = snapshot.counters.peers
            switch OuterICMP.classify(packet, local: decapsulator.local, peerByEndpoint: decapsulator.peerByEndpoint,
                                      ttlInherited: snapshot.config.tunnel.ttl == .inherit) {
            case let .fragmentationNeeded(peer, outerMTU):
                if let mtu = paths[peer].learnPathMTU(outerMTU: outerMTU, now: now, ceiling: tunnelMTU) {
                    pathLog.note(["peer": "\(peers[peer].name)", "report": "fragmentation needed", "path-mtu": "\(mtu)"])
                }
            case let .peerError(peer):
                paths[peer].noteError(now: now)
                pathLog.note(["peer": "\(peers[peer].name)", "report": "unreachable", "from": "\(packet.ipv4Source)"])
            case .ignore:
                break
            }
        }

        while !stop.isStopped {
            if box.generation != snapshot.generation {
                snapshot = box.current
                decapsulator = Decapsulator(config: snapshot.config, localAddresses: decapsulator.localAddresses)
            }
            let counters = snapshot.counters
            var now = monotonicSeconds()
            if now - lastHousekeeping >= 1 {
                lastHousekeeping = now
                counters.drops.set(.captureDrop, to: capture.kernelDrops)
                for _ in 0..<reassembler.expire(now: now) { counters.drop(.fragmentTimeout) }
                // Addresses come and go (DHCP, admins); inner packets to local ones are delivered, not forwarded.
                decapsulator.localAddresses = Set(SystemProbe.localAddresses())
            }
            guard capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
            now = monotonicSeconds()
            // Drain what is queued (from libpcap's ring, no system call while frames are waiting), but
            // come back to check the stop signal now and then.
            do {
                try capture.dispatch(limit: 256) { frame in
                    guard frame.bytes.count >= frame.wireLength else {
                        counters.drop(.truncatedCapture)
                        return
                    }
                    guard let ethernet = try? EthernetFrameView(parsing: frame.bytes), ethernet.etherType == EtherType.ipv4 else {
                        counters.drop(.malformedOuter)
                        return
                    }
                    // Copy the IP packet out of libpcap's ring into the next send slot: the decapsulator
                    // edits the inner header, which is then sent from where it lies.
                    let ip = ethernet.payload
                    let length = min(ip.count, SendBatch.slotSize)
                    batch.nextSlot.copyMemory(from: UnsafeRawBufferPointer(rebasing: ip[0..<length]))
                    process(length: length, now: now)
                }
            } catch {
                logger.error("capture failed; the decapsulator stops", metadata: ["error": "\(error)"])
                return
            }
            if !batch.isEmpty {
                flush()
                yieldToWhatTheBurstWoke()
            }
        }
    }
}

/// Watches the kernel's route to every peer endpoint; one netlink socket, owned by the encapsulator's
/// thread.
struct EndpointRouteWatcher {
    let tunnel: String
    let endpoints: [IPv4Address]
    private let netlink = try? NetlinkSocket()

    init(tunnel: String, endpoints: [IPv4Address]) {
        self.tunnel = tunnel
        self.endpoints = endpoints
    }

    /// For each endpoint: true when the kernel would send packets for it into the tunnel.
    func check() -> [Bool] {
        let tunnelIndex = SystemProbe.interfaceIndex(tunnel)
        return endpoints.map { endpoint in
            guard let netlink, let tunnelIndex, let route = try? netlink.route(to: endpoint) else { return false }
            return route.outputInterface == tunnelIndex
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The source address of the IPv4 header at the start (0.0.0.0 when too short).
    var ipv4Source: IPv4Address {
        count >= 16 ? IPv4Address(UInt32(bigEndian: loadUnaligned(fromByteOffset: 12, as: UInt32.self))) : .any
    }

    /// The destination address of the IPv4 header at the start (0.0.0.0 when too short).
    var ipv4Destination: IPv4Address {
        count >= 20 ? IPv4Address(UInt32(bigEndian: loadUnaligned(fromByteOffset: 16, as: UInt32.self))) : .any
    }
}

/// Logs an event at most once per interval, with how many were suppressed in between.
struct ThrottledLog {
    let logger: Logger
    let message: Logger.Message
    var interval: Double = 10
    private var lastLogged = -Double.infinity
    private var suppressed = 0

    init(logger: Logger, message: Logger.Message, interval: Double = 10) {
        self.logger = logger
        self.message = message
        self.interval = interval
    }

    mutating func note(_ metadata: Logger.Metadata) {
        let now = monotonicSeconds()
        guard now - lastLogged >= interval else {
            suppressed += 1
            return
        }
        var metadata = metadata
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.warning(message, metadata: metadata)
        lastLogged = now
        suppressed = 0
    }
}

/// Called after each round that sent something (up to 64 packets read from the TUN, or up to 256
/// frames taken from the capture's ring, sent 64 at a time): lets the tasks that the round woke run
/// before this thread takes the next one — the server reading what was reinjected, the other
/// direction's thread that a reply woke, the next hop's handler — much as the kernel's NAPI polls a
/// bounded budget per turn. On a CPU where nothing else waits it returns at once;
/// where the endpoints share the CPUs, it turns long runs of this thread into interleaved ones, so a
/// receiver's socket is read between bursts instead of overflowing (docs/BENCHMARKS.md: 64-byte
/// packets +25 %, ping lower, TCP −4 %).
@inline(__always)
func yieldToWhatTheBurstWoke() {
    sched_yield()
}

func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

extension DataplaneLoops {
    /// The responder for one LAN interface, as a snapshot describes it.
    static func responder(for interface: String, mac: MACAddress, in config: GatewayConfig, announce: Bool, now: Double) -> ProxyARPResponder {
        var options = ProxyARPResponder.Options()
        options.answerProbes = config.proxyARP.answerProbes
        options.yieldOnConflict = config.proxyARP.onConflict == .yield
        var responder = ProxyARPResponder(interfaceMAC: mac, options: options)
        for ghost in config.ghostHosts where ghost.interface == interface {
            responder.add(ghost.address, mac: ghost.mac, now: now, announce: announce)
        }
        return responder
    }

    /// libpcap (ARP for ghost addresses) → responder → pcap_inject; plus the scheduled announcements.
    func answerARP(on capture: PacketCapture, mac: MACAddress) {
        let interface = capture.interface
        var snapshot = box.current
        var responder = Self.responder(for: interface, mac: mac, in: snapshot.config, announce: true, now: monotonicSeconds())
        var ghostCounters: [IPv4Address: GhostCounters] = [:]
        func takeCounters() {
            ghostCounters = Dictionary(snapshot.counters.ghosts.filter { $0.interface == interface }.map { ($0.address, $0) },
                                       uniquingKeysWith: { a, _ in a })
        }
        takeCounters()
        var conflictLogs: [IPv4Address: ThrottledLog] = [:]
        var injectErrors = ThrottledLog(logger: logger, message: "cannot send an ARP frame")
        func inject(_ frame: [UInt8]) -> Bool {
            let sent = frame.withUnsafeBytes { capture.inject($0) }
            if !sent { injectErrors.note(["interface": "\(interface)"]) }
            return sent
        }
        while !stop.isStopped {
            if box.generation != snapshot.generation {
                let previous = snapshot.config
                snapshot = box.current
                takeCounters()
                responder = responder.reconfigured(for: snapshot.config, interface: interface, previous: previous, now: monotonicSeconds())
                let ghosts = snapshot.config.ghostHosts.filter { $0.interface == interface }.map(\.address)
                do {
                    try capture.setFilter(CaptureFilter.proxyARP(ghosts: ghosts))
                } catch {
                    logger.error("cannot update the ARP filter", metadata: ["interface": "\(interface)", "error": "\(error)"])
                }
            }
            for (ghost, frame) in responder.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                ghostCounters[ghost]?.announcements.add()
            }
            guard capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
            _ = try? capture.dispatch(limit: 256) { frame in
                switch responder.handle(frame.bytes, now: monotonicSeconds()) {
                case let .reply(ghost, reply):
                    if inject(reply) { ghostCounters[ghost]?.replies.add() }
                case let .conflict(ghost, mac, sender):
                    ghostCounters[ghost]?.conflicts.add()
                    let action = responder.options.yieldOnConflict ? "not answering for it while the conflict lasts" : "still answering for it"
                    conflictLogs[ghost, default: ThrottledLog(logger: logger, message: "another machine claims a ghost address")]
                        .note(["ghost": "\(ghost)", "interface": "\(interface)", "mac": "\(mac)", "sender": "\(sender)",
                               "action": "\(action)"])
                case .ignore(.probe, let ghost?):
                    ghostCounters[ghost]?.probesIgnored.add()
                case .ignore(_, let ghost?):
                    ghostCounters[ghost]?.otherIgnored.add()
                case .ignore(_, nil):
                    break
                }
            }
        }
    }
}

extension ProxyARPResponder {
    /// The responder after a reload: ghost hosts that stay keep their state; new ones are announced.
    func reconfigured(for config: GatewayConfig, interface: String, previous: GatewayConfig, now: Double) -> ProxyARPResponder {
        let kept = Set(previous.ghostHosts.filter { $0.interface == interface }).intersection(config.ghostHosts)
        var next = DataplaneLoops.responder(for: interface, mac: interfaceMAC, in: config, announce: false, now: now)
        for ghost in config.ghostHosts where ghost.interface == interface {
            if kept.contains(ghost), let state = ghosts[ghost.address] {
                next.restore(state)
            } else {
                next.add(ghost.address, mac: ghost.mac, now: now, announce: true)
            }
        }
        return next
    }
}
