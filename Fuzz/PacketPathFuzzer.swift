// libFuzzer entry point for everything ipipd does with bytes from the network, through the production
// packet paths: the same input is handed to the DecapsulationPath as a frame captured on the uplink
// (Ethernet/802.1Q framing, outer and inner checks, reassembly, ECN, TTL, ICMP about outer packets, the
// ICMP errors it answers with), to the EncapsulationPath as a read from the TUN device (virtio-net
// header, checksum offload, TSO segmentation, routing, encapsulation, fragmentation), and to the
// proxy-ARP responder. Every packet a path queues must be a well-formed IPv4 packet.
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
let counters = TunnelCounters(peerNames: ["b"])
let paths = [PeerPathState()]
let decapsulation = DecapsulationPath(config: machineA, tunnelMTU: 1380, counters: counters, paths: paths,
                                      localAddresses: [IPv4Address(203, 0, 113, 87)])
let encapsulation = EncapsulationPath(config: machineA, tunnelMTU: 1380, counters: counters, paths: paths)
let batch: PacketBatch = {
    let batch = PacketBatch()
    batch.whenFull = checkAndEmpty
    return batch
}()
nonisolated(unsafe) var responder: ProxyARPResponder = {
    var responder = ProxyARPResponder(interfaceMAC: MACAddress(2, 0, 0, 0, 0, 0x86))
    responder.add(IPv4Address(203, 0, 113, 87), mac: nil, now: 0)
    return responder
}()
nonisolated(unsafe) var clock = 0.0

/// What a path queued must be something the kernel would accept to send: a valid IPv4 packet of exactly
/// its length; an outer packet carries a valid inner one.
func checkAndEmpty(_ batch: PacketBatch) {
    for index in 0..<batch.count {
        let packet = batch.packet(at: index)
        guard let ip = try? IPv4PacketView(validating: packet, exactLength: true) else {
            preconditionFailure("queued an invalid IPv4 packet: \(batch.kind(at: index))")
        }
        if case .encapsulated = batch.kind(at: index) {
            precondition(ip.protocolNumber == IPProtocolNumber.ipip && ip.headerLength == 20 && ip.totalLength <= 1400)
            precondition((try? IPv4PacketView(validating: ip.payload, exactLength: true)) != nil)
        }
    }
    batch.removeAll()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    clock += 0.001
    if clock.truncatingRemainder(dividingBy: 1) < 0.001 { decapsulation.expire(now: clock) }

    _ = responder.handle(input, now: clock)
    decapsulation.process(frame: input, wireLength: input.count, in: batch, now: clock)
    checkAndEmpty(batch)

    // The same bytes as a read from the TUN device: a virtio-net header (the frame's first 10 bytes,
    // so that mutations reach checksum offload and segmentation) and the frame's IPv4 packet.
    let packet = (try? EthernetFrameView(parsing: input)).map(\.payload) ?? input
    guard input.count >= VirtioNetHeader.size else { return 0 }
    let slot = batch.nextSlot
    UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset..<PacketSlot.innerOffset])
        .copyMemory(from: UnsafeRawBufferPointer(rebasing: input[0..<VirtioNetHeader.size]))
    let length = min(packet.count, PacketSlot.maximumPacketLength)
    UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[0..<length]))
    encapsulation.process(readLength: VirtioNetHeader.size + length, in: batch, now: clock)
    checkAndEmpty(batch)
    return 0
}
