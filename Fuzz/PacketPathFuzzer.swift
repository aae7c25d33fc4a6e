// libFuzzer entry point for everything ipipd does with bytes from the network, through the production
// packet paths. One input is a sequence of events for one gateway (machine A of the seed), so that state
// carried from packet to packet — outer reassembly above all, and path MTU, error windows, rate limits —
// is fuzzed, not just single packets:
//
//   each event: kind (1 byte), length (2 bytes, big-endian), then that many bytes
//   kind % 5 == 0  a frame captured on the uplink                       → DecapsulationPath (one burst
//                  with the frames before it, up to the next other event); when kind / 5 is odd, its
//                  first 10 bytes are the virtio-net header the uplink's kernel put before it (a frame
//                  its GRO merged, or one whose checksum a local sender left partial)
//   kind % 5 == 1  a fragment of one of four outer datagrams from peer B, sharing their IDs: offset (2),
//                  length (2), flags (1: bit 0 more fragments), options length (1), then payload bytes
//   kind % 5 == 2  time passes: bytes[0] seconds, and expiry runs; bytes[1], when there, sets the HA role
//                  (bit 0: standby — then nothing may be queued — or active, announcing the ghosts)
//   kind % 5 == 3  a read from the TUN device (virtio-net header and packet) → EncapsulationPath
//   kind % 5 == 4  ICMP "fragmentation needed" or "unreachable" from a router about an outer packet of ours
//                  (protocol 4, or protocol 41 quoting an IPv6 header to relay) with a chosen identification
//                  and next-hop MTU, about a packet that was sent to B or a forger's guess
// Captured frames also go to the proxy-ARP and proxy-NDP responders. The gateway is dual stack: IPv6
// rides the tunnel as protocol 41. The input's length picks the delivery mode, MSS clamping, and the
// outer header (issue 25): plain IP-in-IP, FOU or GUE over IPv4, ip6tnl or FOU over an IPv6 underlay —
// the fragments of kind 1 and the reports of kind 4 are then of that underlay's family (ICMPv6 packet
// too big and unreachable, quoting what the encapsulation wrote).
//
// Every packet a path queues must be a well-formed IPv4 or IPv6 packet of its kind (an ICMPv6 error
// with a valid checksum, no larger than 1280 bytes; an outer packet one the peer's own parser takes,
// carrying a whole inner packet); once time has passed beyond the reassembly timeout, nothing may be
// left held and no memory charged.
// Built by scripts/fuzz.sh with -sanitize=fuzzer,address; not part of the Swift package.

let machineA = GatewayConfig(
    uplink: .init(interface: "eth0", address: IPv4Address(198, 51, 100, 37)),
    tunnel: {
        var tunnel = GatewayConfig.Tunnel()
        tunnel.address = IPv4Address(203, 0, 113, 87)
        tunnel.address6 = ghost6
        return tunnel
    }(),
    peers: [.init(name: "b", remote: IPv4Address(203, 0, 113, 86), routes: [.v4(IPv4Prefix(IPv4Address(203, 0, 113, 0), length: 24)),
                                                                       .v6(IPv6Prefix(IPv6Address(high: 0x2001_0DB8_000B_0000, low: 0), length: 64))])],
    ghostHosts: [.init(address: IPv4Address(203, 0, 113, 87), interface: "eth0", mac: nil)]
)
let ghost6 = IPv6Address(high: 0x2001_0DB8_000B_0000, low: 0x87)
let local = IPv4Address(198, 51, 100, 37), peerB = IPv4Address(203, 0, 113, 86)
let local6 = IPv6Address(high: 0x2001_0DB8_000A_0000, low: 0x37), peerB6 = IPv6Address(high: 0x2001_0DB8_000B_0000, low: 0x86)

/// The outer headers the fuzzer's gateway may use, and the ports it listens on for each.
enum Underlay: CaseIterable {
    case plain, fou, gue, ip6tnl, fou6

    var ipv6: Bool { self == .ip6tnl || self == .fou6 }

    func configure(_ config: inout GatewayConfig) {
        if ipv6 {
            config.uplink.address = .v6(local6)
            config.peers[0].remote = .v6(peerB6)
        }
        switch self {
        case .plain, .ip6tnl: break
        case .fou, .fou6:
            config.peers[0].encapsulation = UDPEncapsulation(kind: .fou, destinationPort: 5555, destinationPort6: 5556)
            config.fouPorts = [FOUPort(port: 5555, payload: .fou(innerProtocol: 4)), FOUPort(port: 5556, payload: .fou(innerProtocol: 41))]
        case .gue:
            config.peers[0].encapsulation = UDPEncapsulation(kind: .gue, destinationPort: 6080, sourcePort: .fixed(6080), checksum: true)
            config.fouPorts = [FOUPort(port: 6080, payload: .gue)]
        }
    }
}
/// The peer's view of what this gateway sends: every outer packet queued must be one it takes.
nonisolated(unsafe) var peerParser = OuterHeaderParser(local: .v4(peerB), ports: [])
let batch: PacketBatch = {
    let batch = PacketBatch()
    batch.whenFull = checkAndEmpty
    return batch
}()

/// What a path queued must be something the kernel would accept to send: a valid IPv4 packet of exactly
/// its length; an outer packet carries a valid inner one.
func checkAndEmpty(_ batch: PacketBatch) {
    for index in 0..<batch.count {
        let packet = batch.packet(at: index)
        // What goes to the TUN device starts with its virtio-net header.
        let ipPacket = batch.goesToTUN(at: index) ? UnsafeRawBufferPointer(rebasing: packet[VirtioNetHeader.size...]) : packet
        if batch.goesToICMPv6Socket(at: index) {
            guard let error = try? IPv6PacketView(validating: ipPacket, exactLength: true), error.nextHeader == IPv6NextHeader.icmpv6,
                  ipPacket.count <= 1280, InternetChecksum.verifyIPv6Upper(ipPacket, nextHeader: IPv6NextHeader.icmpv6),
                  ICMPv6Type.isError(ipPacket[40]) else {
                preconditionFailure("queued an invalid ICMPv6 error")
            }
            continue
        }
        if batch.goesToTUN(at: index), ipPacket.count >= 1, ipPacket[0] >> 4 == 6 {
            guard (try? IPv6PacketView(validating: ipPacket, exactLength: true)) != nil else { preconditionFailure("queued an invalid IPv6 packet") }
            if case let .superPacket(_, _, segments, _) = batch.kind(at: index), case let .tcpIPv6(size) = VirtioNetHeader(packet).segmentation {
                // Merged or joined TCPV6: the kernel cuts it into as many segments as arrived.
                let header = VirtioNetHeader(packet)
                precondition(header.checksum?.start == 40 && header.checksum?.offset == 16 && ipPacket[6] == IPProtocolNumber.tcp
                             && header.headersLength == 40 + Int(ipPacket[52] >> 4) * 4
                             && GSOSegmenter(superPacket: ipPacket, segmentSize: size)?.segmentCount == segments,
                             "a TCPV6 super-packet with a header that does not describe it: \(header)")
            }
            continue
        }
        if case let .encapsulated(_, innerLength) = batch.kind(at: index), ipPacket.first.map({ $0 >> 4 == 6 }) == true {
            precondition(innerLength > 0)
            checkOuter(packet)
            continue
        }
        if case .encapsulatedFragment = batch.kind(at: index) {
            // An IPv6 underlay's outer fragment: a valid IPv6 packet with a Fragment header, within the least MTU.
            precondition((try? IPv6PacketView(validating: ipPacket, exactLength: true)) != nil && ipPacket[6] == 44 && ipPacket.count <= 1400)
            continue
        }
        guard let ip = try? IPv4PacketView(validating: ipPacket, exactLength: true) else {
            preconditionFailure("queued an invalid IPv4 packet: \(batch.kind(at: index))")
        }
        if case .decapsulated(_, _, false) = batch.kind(at: index) { precondition(ip.totalLength <= 576 || ip.destination.value >> 8 != 0xCB0071) }
        if case let .superPacket(_, _, segments, frames) = batch.kind(at: index) {
            // A super-packet (merged by the uplink, joined by ipipd, or both): its header says exactly how
            // the kernel is to cut it, into as many segments as arrived.
            let header = VirtioNetHeader(packet)
            let transport = ipPacket[0] >> 4 == 6 ? 40 : 20
            precondition(segments >= 2 && frames >= 1 && frames <= segments && header.checksum?.start == transport
                         && header.headersLength > transport,
                         "a super-packet with a header that does not describe it: \(header)")
            switch header.segmentation {
            case .tcpIPv4(let size):
                precondition(header.checksum?.offset == 16 && header.headersLength == 20 + Int(ipPacket[32] >> 4) * 4
                             && GSOSegmenter(superPacket: ipPacket, segmentSize: size)?.segmentCount == segments)
            case .tcpIPv6(let size):
                precondition((ipPacket.count - header.headersLength + size - 1) / size == segments)
            case .udp(let size):
                // UDP_L4: the whole's UDP length, so that the kernel's per-datagram lengths and checksums come out right.
                precondition(header.checksum?.offset == 6 && header.headersLength == transport + 8
                             && ipPacket.uint16(at: transport + 4) == ipPacket.count - transport
                             && (ipPacket.count - header.headersLength + size - 1) / size == segments,
                             "a UDP super-packet with a header that does not describe it: \(header)")
            case .none, .unsupported:
                preconditionFailure("a super-packet without its segmentation: \(header)")
            }
        }
        if case .encapsulated = batch.kind(at: index) { checkOuter(packet) }
    }
    batch.removeAll()
}

/// An outer packet of ours, as the peer reads it: one of its kind, carrying a whole inner packet.
func checkOuter(_ packet: UnsafeRawBufferPointer) {
    precondition(packet.count <= 1400, "an outer packet larger than the uplink")
    var copy = Array(packet)
    let parsed = copy.withUnsafeMutableBytes { peerParser.parse($0) }
    guard case let .tunnelled(_, inner, family, _, _) = parsed else { preconditionFailure("the peer would refuse our outer packet: \(parsed)") }
    copy.withUnsafeBytes { bytes in
        let carried = UnsafeRawBufferPointer(rebasing: bytes[inner])
        precondition(family == .ipv6 ? (try? IPv6PacketView(validating: carried, exactLength: true)) != nil
                                     : (try? IPv4PacketView(validating: carried, exactLength: true)) != nil, "a broken inner packet")
    }
}

func frame(_ packet: [UInt8]) -> [UInt8] {
    EthernetBuilder.frame(destination: MACAddress(2, 0, 0, 0, 0, 0x37), source: MACAddress(2, 0, 0, 0, 0, 0x86),
                          etherType: packet.first.map { $0 >> 4 == 6 } == true ? EtherType.ipv6 : EtherType.ipv4, payload: packet)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let counters = TunnelCounters(peerNames: ["b"])
    let paths = [PeerPathState()]
    // Both delivery modes: the input's length picks one.
    var config = machineA
    config.tunnel.delivery = size % 2 == 0 ? .kernel : .routed
    // MSS clamping reads every SYN's options in both paths: on for two inputs in three.
    config.tunnel.clampMSS = [.auto, .fixed(600), .off][size % 3]
    let underlay = Underlay.allCases[size / 6 % Underlay.allCases.count]
    underlay.configure(&config)
    let encapsulationOfB = config.encapsulations[0]
    peerParser = OuterHeaderParser(local: encapsulationOfB.remote, ports: config.fouPorts)   // B listens where A does
    let decapsulation = DecapsulationPath(config: config, tunnelMTU: 1380, counters: counters, paths: paths,
                                          localNetworks: LocalNetworks(addresses: [IPv4Address(203, 0, 113, 87)],
                                                                       networks: [IPv4Prefix(IPv4Address(198, 51, 100, 37), length: 24)]))
    var egress = PrefixTable<Int>()
    egress.insert(.v4(IPv4Prefix(IPv4Address(203, 0, 113, 0), length: 24)), 576)
    decapsulation.egressMTUs = egress
    let encapsulation = EncapsulationPath(config: config, tunnelMTU: 1380, uplinkMTU: 1400, counters: counters, paths: paths)
    var responder = ProxyARPResponder(interfaceMAC: MACAddress(2, 0, 0, 0, 0, 0x86))
    responder.add(IPv4Address(203, 0, 113, 87), mac: nil, now: 0)
    var responder6 = ProxyNDPResponder(interfaceMAC: MACAddress(2, 0, 0, 0, 0, 0x86))
    responder6.add(ghost6, mac: nil, now: 0)
    var clock = 1.0

    var position = 0
    while position + 3 <= input.count {
        let kind = input[position]
        let length = min(Int(input[position + 1]) << 8 | Int(input[position + 2]), input.count - position - 3)
        let bytes = UnsafeRawBufferPointer(rebasing: input[(position + 3)..<(position + 3 + length)])
        position += 3 + length
        switch kind % 5 {
        case 0:
            _ = responder.handle(bytes, now: clock)
            if case let .reply(_, answer) = responder6.handle(bytes, now: clock) {
                // An advertisement ipipd sends must itself pass RFC 4861's checks.
                answer.withUnsafeBytes { precondition((try? NDPMessageView(validating: UnsafeRawBufferPointer(rebasing: $0[14...]))) != nil) }
            }
            if kind / 5 % 2 == 1 {
                guard bytes.count >= VirtioNetHeader.size else { continue }
                let frame = UnsafeRawBufferPointer(rebasing: bytes[VirtioNetHeader.size...])
                decapsulation.process(frame: frame, wireLength: frame.count, offload: VirtioNetHeader(bytes), in: batch, now: clock)
            } else {
                decapsulation.process(frame: bytes, wireLength: bytes.count, in: batch, now: clock)
            }
        case 1 where underlay.ipv6:
            // An outer IPv6 fragment from B: the same four identifications, the offset and flags as for IPv4,
            // and (bytes[5]) a Hop-by-Hop header in the unfragmentable part or not.
            guard bytes.count >= 6 else { continue }
            let offset = (Int(bytes[0]) << 8 | Int(bytes[1])) & 0x1FFF * 8
            let payloadLength = min(Int(bytes[2]) << 8 | Int(bytes[3]), 1440)
            let hopByHop: [UInt8] = bytes[5] & 1 != 0 ? [44, 0, 1, 4, 0, 0, 0, 0] : []
            var body = hopByHop + [bytes[4] & 2 != 0 ? IPProtocolNumber.udp : IPProtocolNumber.ipip, 0,
                                   UInt8((offset & 0xFFF8) >> 8), UInt8(offset & 0xF8) | (bytes[4] & 1), 0, 0, 0xF0, kind >> 3 & 3]
            body += Array(bytes.dropFirst(6).prefix(payloadLength))
            body += [UInt8](repeating: 0x45, count: max(0, payloadLength - (bytes.count - 6)))
            var packet = [UInt8](repeating: 0, count: 40) + body
            packet.withUnsafeMutableBytes {
                IPv6HeaderFields(payloadLength: body.count, nextHeader: hopByHop.isEmpty ? 44 : 0, hopLimit: 64, source: peerB6,
                                 destination: local6).write(into: $0)
            }
            frame(packet).withUnsafeBytes { decapsulation.process(frame: $0, wireLength: $0.count, in: batch, now: clock) }
        case 1:
            guard bytes.count >= 6 else { continue }
            let offset = (Int(bytes[0]) << 8 | Int(bytes[1])) & 0x1FFF * 8
            let payloadLength = min(Int(bytes[2]) << 8 | Int(bytes[3]), 1480)
            let optionsLength = Int(bytes[5] & 0x0F) * 4
            var packet = IPv4HeaderFields(identification: 0xF000 | UInt16(kind >> 3 & 3), moreFragments: bytes[4] & 1 != 0,
                                          fragmentOffset: offset & 0xFFF8, ttl: 64,
                                          protocolNumber: bytes[4] & 2 != 0 ? IPProtocolNumber.udp : IPProtocolNumber.ipip,
                                          source: peerB, destination: local).bytes(payload: [])
            packet += [UInt8](repeating: 1, count: optionsLength) + Array(bytes.dropFirst(6).prefix(payloadLength))
            packet += [UInt8](repeating: 0x45, count: max(0, payloadLength - (bytes.count - 6)))
            packet.withUnsafeMutableBytes { header in
                header[0] = 0x40 | UInt8((20 + optionsLength) / 4)
                header.setUInt16(UInt16(header.count), at: 2)
                IPv4HeaderEditor.recomputeChecksum(header)
            }
            frame(packet).withUnsafeBytes { decapsulation.process(frame: $0, wireLength: $0.count, in: batch, now: clock) }
        case 2:
            clock += Double(bytes.first ?? 1)
            decapsulation.expire(now: clock)
            if bytes.count >= 2 {
                checkAndEmpty(batch)   // the burst queued before the role changes is the active box's
                let standby = bytes[1] & 1 != 0
                (decapsulation.standby, encapsulation.standby) = (standby, standby)
                if standby {
                    responder.cancelAnnouncements()
                    responder6.cancelAnnouncements()
                } else {
                    responder.announceAll(now: clock)
                    responder6.announceAll(now: clock)
                }
            }
        case 3:
            // A virtio-net header and a packet, as the TUN device hands them over.
            let readLength = min(bytes.count, PacketSlot.size - PacketSlot.virtioHeaderOffset)
            UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[PacketSlot.virtioHeaderOffset...])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<readLength]))
            encapsulation.process(readLength: readLength, in: batch, now: clock)
        case 4 where underlay != .plain:
            // A router's report about an outer packet of this gateway's kind: what the encapsulation wrote
            // around an inner packet of the fuzzed bytes, quoted whole or cut (bytes[3] bit 7), noted as sent
            // or not (bytes[2] bit 2); ICMPv6 packet too big or unreachable over IPv6, ICMP over IPv4.
            guard bytes.count >= 8 else { continue }
            let innerIPv6 = bytes[2] & 2 != 0
            var inner = innerIPv6 ? [UInt8(0x60), 0, 0, 0, 0, 8, 17, 64] + [UInt8](repeating: 0, count: 32) : [0x45, 0, 0, 28, bytes[0], bytes[1], 0, 0, 64, 17, 0, 0]
                + [203, 0, 113, 87, 203, 0, 113, 20]
            inner += Array(bytes.dropFirst(4).prefix(8)) + [UInt8](repeating: 0x10, count: max(0, 8 - (bytes.count - 4)))
            if innerIPv6 { inner.withUnsafeMutableBytes { $0.storeBytes(of: ghost6.low.bigEndian, toByteOffset: 16, as: UInt64.self) } }
            let sent = encapsulationOfB.write(inner: inner, identification: UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
            let quote = inner.withUnsafeBytes {
                OuterPacketQuote(identification: underlay.ipv6 ? nil : UInt16(bytes[0]) << 8 | UInt16(bytes[1]), outerLength: sent.count,
                                 quotedInner: $0, innerLength: inner.count)
            }
            if bytes[2] & 4 != 0, let quote { paths[0].noteSent(quote, now: clock) }
            let quoted = bytes[3] & 0x80 != 0 ? Array(sent.prefix(Int(bytes[3] & 0x3F))) : sent
            let mtu = Int(bytes[3] & 0x7F) << 4 | Int(bytes[2] >> 4)
            var packet: [UInt8]
            if underlay.ipv6 {
                let type = bytes[2] & 1 == 0 ? ICMPv6Type.packetTooBig : ICMPv6Type.destinationUnreachable
                packet = [UInt8](repeating: 0, count: 40) + [type, 0, 0, 0] + withUnsafeBytes(of: UInt32(mtu + 1000).bigEndian, Array.init) + quoted
                packet.withUnsafeMutableBytes {
                    IPv6HeaderFields(payloadLength: $0.count - 40, nextHeader: IPv6NextHeader.icmpv6, hopLimit: 64,
                                     source: IPv6Address(high: 0x2001_0DB8_000A_0000, low: 1), destination: local6).write(into: $0)
                    $0.setUInt16(InternetChecksum.computeIPv6Upper(UnsafeRawBufferPointer($0), nextHeader: IPv6NextHeader.icmpv6), at: 42)
                }
            } else {
                let message = ICMPBuilder.message(type: ICMPType.destinationUnreachable,
                                                  code: bytes[2] & 1 == 0 ? ICMPUnreachableCode.fragmentationNeeded : ICMPUnreachableCode.host,
                                                  restOfHeader: UInt32(mtu), body: quoted)
                packet = IPv4HeaderFields(protocolNumber: IPProtocolNumber.icmp, source: IPv4Address(198, 51, 100, 1), destination: local)
                    .bytes(payload: message)
            }
            frame(packet).withUnsafeBytes { decapsulation.process(frame: $0, wireLength: $0.count, in: batch, now: clock) }
            let floor = underlay.ipv6 ? Encapsulator.minimumIPv6MTU : PeerPathState.defaultMinimumPathMTU
            if let mtu = paths[0].currentMTU(now: clock) { precondition(mtu >= floor - encapsulationOfB.overhead) }
        default:
            guard bytes.count >= 4 else { continue }
            // Protocol 41 quoting an IPv6 header (from the fuzzed bytes that follow) to relay, or protocol 4.
            let sixInFour = bytes[2] & 2 != 0
            let inner6 = [UInt8(0x60), 0, 0, 0, 0, 8, 58, 64] + Array(bytes.dropFirst(4).prefix(32)) + [UInt8](repeating: 0x80, count: 8)
            let quoted = IPv4HeaderFields(identification: UInt16(bytes[0]) << 8 | UInt16(bytes[1]) &+ 100, dontFragment: true,
                                          protocolNumber: sixInFour ? IPProtocolNumber.ipv6 : IPProtocolNumber.ipip, source: local, destination: peerB)
                .bytes(payload: sixInFour ? inner6 : [0x45, 0, 5, 0xC8, 0, 0, 0, 0])
            // bytes[2] bit 2: a report about a packet that did go to B (a router's), else a forger's guess.
            if bytes[2] & 4 != 0, let sent = quoted.withUnsafeBytes({ OuterPacketQuote(quoted: $0) }) {
                paths[0].noteSent(sent, now: clock)
            }
            let message = quoted.withUnsafeBytes {
                bytes[2] & 1 == 0
                    ? ICMPBuilder.destinationUnreachable(code: ICMPUnreachableCode.fragmentationNeeded,
                                                         nextHopMTU: Int(bytes[3]) << 3, original: $0)
                    : ICMPBuilder.destinationUnreachable(code: ICMPUnreachableCode.host, original: $0)
            }
            let packet = IPv4HeaderFields(protocolNumber: IPProtocolNumber.icmp, source: IPv4Address(198, 51, 100, 1),
                                          destination: local).bytes(payload: message)
            frame(packet).withUnsafeBytes { decapsulation.process(frame: $0, wireLength: $0.count, in: batch, now: clock) }
            if let mtu = paths[0].currentMTU(now: clock) { precondition(mtu >= PeerPathState.defaultMinimumPathMTU - 20) }
        }
        precondition(!decapsulation.standby || batch.isEmpty, "the standby queued a packet")
        if decapsulation.standby {
            precondition(responder.dueAnnouncements(now: clock).isEmpty && responder6.dueAnnouncements(now: clock).isEmpty, "the standby announced")
        }
        // Captured frames stay queued like one capture burst (so that TCP segments can be joined); every
        // other event ends the burst.
        if kind % 5 != 0 { checkAndEmpty(batch) }
    }
    checkAndEmpty(batch)
    // Time runs out for every datagram still being put together: nothing may stay held or charged.
    decapsulation.expire(now: clock + 31)
    precondition(decapsulation.pendingReassemblies == 0 && decapsulation.reassemblyMemoryInUse == 0,
                 "reassembly state left: \(decapsulation.pendingReassemblies) datagrams, \(decapsulation.reassemblyMemoryInUse) bytes")
    return 0
}

extension Encapsulation {
    /// The outer packet this encapsulation writes around `inner` (for the reports the fuzzer forges).
    func write(inner: [UInt8], identification: UInt16) -> [UInt8] {
        let headerLength = headerLength(withEncapsulationLimit: encapsulationLimit != nil)
        var packet = [UInt8](repeating: 0, count: headerLength) + inner
        packet.withUnsafeMutableBytes {
            write(.init(trafficClass: 0, identification: identification, dontFragment: true, hopLimit: 64,
                        innerIsIPv6: inner[0] >> 4 == 6, flowHash: 7, encapsulationLimit: encapsulationLimit), into: $0)
        }
        return packet
    }
}
