#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// The two per-packet loops. Each runs on its own thread and owns its buffer, sender and state; the
/// only shared things are the counters (atomics) and the stop signal.
struct DataplaneLoops: Sendable {
    let counters: TunnelCounters
    let stop: StopSignal
    let logger: Logger

    /// Largest IPv4 packet plus room for the outer header (and link headers on the capture side).
    static let bufferSize = 20 + 65535 + 64

    /// TUN → routing table → outer header → libnet.
    func encapsulate(from tun: TUNDevice, with initial: Encapsulator, sender: RawIPv4Sender) {
        var encapsulator = initial
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        let innerArea = UnsafeMutableRawBufferPointer(rebasing: buffer[Encapsulator.headroom...])
        var sendErrors = ThrottledLog(logger: logger, message: "cannot send to peer")
        while !stop.isStopped {
            let length: Int
            do {
                guard let count = try tun.read(into: innerArea, timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
                length = count
            } catch {
                logger.error("TUN read failed; the encapsulator stops", metadata: ["error": "\(error)"])
                return
            }
            switch encapsulator.encapsulate(buffer, innerLength: length) {
            case let .send(outerLength, peer, _):
                if sender.send(UnsafeRawBufferPointer(rebasing: buffer[0..<outerLength])) {
                    counters.peers[peer].encapsulatedPackets.add()
                    counters.peers[peer].encapsulatedBytes.add(UInt64(length))
                } else {
                    let code = errno
                    counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
                    sendErrors.note(["peer": "\(counters.peers[peer].name)", "error": "\(String(cString: strerror(code)))"])
                }
            case let .drop(reason, peer):
                counters.drop(reason, peer: peer)
            }
        }
    }

    /// libpcap → Ethernet/802.1Q → decapsulator → libnet.
    func decapsulate(from capture: PacketCapture, with initial: Decapsulator, sender: RawIPv4Sender) {
        var decapsulator = initial
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var lastHousekeeping = monotonicSeconds()
        var sendErrors = ThrottledLog(logger: logger, message: "cannot reinject a decapsulated packet")
        while !stop.isStopped {
            let now = monotonicSeconds()
            if now - lastHousekeeping >= 1 {
                lastHousekeeping = now
                counters.drops.set(.captureDrop, to: capture.kernelDrops)
                // Addresses come and go (DHCP, admins); inner packets to local ones are delivered, not forwarded.
                decapsulator.localAddresses = Set(SystemProbe.localAddresses())
            }
            guard capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
            // Drain what is queued, but come back to check the stop signal now and then.
            for _ in 0..<256 {
                let frame: PacketCapture.Frame
                do {
                    guard let next = try capture.next() else { break }
                    frame = next
                } catch {
                    logger.error("capture failed; the decapsulator stops", metadata: ["error": "\(error)"])
                    return
                }
                guard frame.bytes.count >= frame.wireLength else {
                    counters.drop(.truncatedCapture)
                    continue
                }
                guard let ethernet = try? EthernetFrameView(parsing: frame.bytes), ethernet.etherType == EtherType.ipv4 else {
                    counters.drop(.malformedOuter)
                    continue
                }
                // Copy the IP packet out of libpcap's ring: the decapsulator edits the inner header.
                let ip = ethernet.payload
                let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(ip.count, buffer.count)])
                packet.copyMemory(from: UnsafeRawBufferPointer(rebasing: ip[0..<packet.count]))
                switch decapsulator.decapsulate(packet) {
                case let .deliver(peer, inner, _):
                    if sender.send(UnsafeRawBufferPointer(rebasing: packet[inner])) {
                        counters.peers[peer].decapsulatedPackets.add()
                        counters.peers[peer].decapsulatedBytes.add(UInt64(inner.count))
                    } else {
                        let code = errno
                        counters.drop(code == EMSGSIZE ? .tooBig : .sendFailed, peer: peer)
                        sendErrors.note(["peer": "\(counters.peers[peer].name)", "error": "\(String(cString: strerror(code)))"])
                    }
                case let .drop(reason, peer):
                    counters.drop(reason, peer: peer)
                }
            }
        }
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

func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

extension DataplaneLoops {
    /// libpcap (ARP for ghost addresses) → responder → pcap_inject; plus the scheduled announcements.
    func answerARP(on capture: PacketCapture, with initial: ProxyARPResponder) {
        var responder = initial
        let ghostCounters = Dictionary(uniqueKeysWithValues: counters.ghosts
            .filter { $0.interface == capture.interface }.map { ($0.address, $0) })
        var conflictLogs: [IPv4Address: ThrottledLog] = [:]
        var injectErrors = ThrottledLog(logger: logger, message: "cannot send an ARP frame")
        func inject(_ frame: [UInt8]) -> Bool {
            let sent = frame.withUnsafeBytes { capture.inject($0) }
            if !sent { injectErrors.note(["interface": "\(capture.interface)"]) }
            return sent
        }
        while !stop.isStopped {
            for (ghost, frame) in responder.dueAnnouncements(now: monotonicSeconds()) where inject(frame) {
                ghostCounters[ghost]?.announcements.add()
            }
            guard capture.waitForTraffic(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds) else { continue }
            for _ in 0..<256 {
                guard let frame = try? capture.next() else { break }
                switch responder.handle(frame.bytes, now: monotonicSeconds()) {
                case let .reply(ghost, reply):
                    if inject(reply) { ghostCounters[ghost]?.replies.add() }
                case let .conflict(ghost, mac, sender):
                    ghostCounters[ghost]?.conflicts.add()
                    let action = responder.options.yieldOnConflict ? "not answering for it while the conflict lasts" : "still answering for it"
                    conflictLogs[ghost, default: ThrottledLog(logger: logger, message: "another machine claims a ghost address")]
                        .note(["ghost": "\(ghost)", "interface": "\(capture.interface)", "mac": "\(mac)", "sender": "\(sender)",
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
