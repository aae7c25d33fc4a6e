// libFuzzer entry point for everything ipipd does with bytes from the network: Ethernet/802.1Q
// framing, the decapsulator (outer and inner validation, ECN, TTL), outer reassembly, ICMP about outer
// packets, the proxy-ARP responder, and the encapsulator and fragmenter for packets from the TUN.
// Built by scripts/fuzz.sh with -sanitize=fuzzer,address; not part of the Swift package.

let machineA = GatewayConfig(
    uplink: .init(interface: "eth0", address: IPv4Address(198, 51, 100, 37)),
    tunnel: {
        var tunnel = GatewayConfig.Tunnel()
        tunnel.address = IPv4Address(203, 0, 113, 87)
        return tunnel
    }(),
    peers: [.init(name: "b", remote: IPv4Address(203, 0, 113, 86), routes: [IPv4Prefix(IPv4Address(203, 0, 113, 0), length: 24)])],
    ghostHosts: [.init(address: IPv4Address(203, 0, 113, 87), interface: "eth0", mac: nil)]
)
nonisolated(unsafe) var reassembler = Reassembler()
nonisolated(unsafe) var responder: ProxyARPResponder = {
    var responder = ProxyARPResponder(interfaceMAC: MACAddress(2, 0, 0, 0, 0, 0x86))
    responder.add(IPv4Address(203, 0, 113, 87), mac: nil, now: 0)
    return responder
}()
nonisolated(unsafe) var encapsulator = Encapsulator(config: machineA, tunnelMTU: 1380)
nonisolated(unsafe) var clock = 0.0
let decapsulator = Decapsulator(config: machineA, localAddresses: [IPv4Address(203, 0, 113, 87)])
let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 20 + 65535 + 64, alignment: 16)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    clock += 0.001
    if clock.truncatingRemainder(dividingBy: 1) < 0.001 { _ = reassembler.expire(now: clock) }

    _ = responder.handle(input, now: clock)
    guard let frame = try? EthernetFrameView(parsing: input), frame.etherType == EtherType.ipv4 else {
        fuzzInner(input)
        return 0
    }
    let ip = frame.payload
    let packet = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(ip.count, scratch.count)])
    packet.copyMemory(from: UnsafeRawBufferPointer(rebasing: ip[0..<packet.count]))
    _ = OuterICMP.classify(UnsafeRawBufferPointer(packet), local: machineA.uplink.address,
                           peerByEndpoint: decapsulator.peerByEndpoint, ttlInherited: true)
    switch decapsulator.decapsulate(packet) {
    case let .deliver(_, inner, _), let .timeExceeded(_, inner):
        precondition(inner.upperBound <= packet.count)
        _ = ICMPErrorRules.mayReport(on: UnsafeRawBufferPointer(rebasing: packet[inner]))
    case .reassemble:
        if let fragment = try? IPv4PacketView(validating: UnsafeRawBufferPointer(packet)),
           case let .complete(datagram) = reassembler.add(fragment, now: clock) {
            datagram.withUnsafeBytes { precondition((try? IPv4PacketView(validating: $0, exactLength: true)) != nil) }
        }
    case .drop:
        break
    }
    fuzzInner(ip)
    return 0
}

/// The same bytes as a packet read from the TUN: as a TSO packet cut into segments (segment size and
/// checksum position from the first bytes), then whole.
func fuzzInner(_ bytes: UnsafeRawBufferPointer) {
    let length = min(bytes.count, 65535)
    if length >= 4 {
        let segmentSize = Int(bytes[0]) << 4 | Int(bytes[1] & 0x0F)
        if let segmenter = TCPSegmenter(superPacket: UnsafeRawBufferPointer(rebasing: bytes[0..<length]), segmentSize: segmentSize) {
            for index in 0..<min(segmenter.segmentCount, 64) {
                let segmentLength = segmenter.write(segment: index, to: scratch.baseAddress!)
                precondition(segmentLength <= length && InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: scratch[0..<(Int(scratch[0] & 0x0F) * 4)])))
            }
        }
        let copy = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length])
        copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        _ = ChecksumOffload.complete(copy, start: Int(bytes[2]), offset: Int(bytes[3]))
    }
    UnsafeMutableRawBufferPointer(rebasing: scratch[20..<(20 + length)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
    switch encapsulator.encapsulate(scratch, innerLength: length, now: clock) {
    case let .send(outerLength, _, _, _):
        precondition((try? IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: scratch[0..<outerLength]), exactLength: true)) != nil)
    case let .fragment(_, mtu):
        if let packet = try? IPv4PacketView(validating: UnsafeRawBufferPointer(rebasing: scratch[20..<(20 + length)]), exactLength: true) {
            for piece in IPv4Fragmenter.fragments(of: packet, mtu: mtu) { precondition(piece.count <= mtu) }
        }
    case .tooBig, .drop:
        break
    }
}
