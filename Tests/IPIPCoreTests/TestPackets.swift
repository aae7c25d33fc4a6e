@testable import IPIPCore

/// Collects what a packet path queues, as the dataplane's loop would send it: full batches when they
/// fill up, the rest at the end of the burst.
final class SentPackets {
    struct Packet {
        var kind: PacketBatch.Kind
        var destination: IPv4Address
        /// The destination of either family (an IPv6 underlay's outer packets go to IPv6 ones).
        var address: IPAddress
        var bytes: [UInt8]
    }

    let batch = PacketBatch()
    private(set) var packets: [Packet] = []
    private(set) var fullBatches = 0

    init() {
        batch.whenFull = { [unowned self] batch in
            fullBatches += 1
            take(batch)
        }
    }

    private func take(_ batch: PacketBatch) {
        for index in 0..<batch.count {
            packets.append(Packet(kind: batch.kind(at: index), destination: batch.destination(at: index),
                                  address: batch.destinationAddress(at: index), bytes: Array(batch.packet(at: index))))
        }
        batch.removeAll()
    }

    /// Everything queued so far (the end of a burst).
    func flush() -> [Packet] {
        take(batch)
        defer { packets = [] }
        return packets
    }
}

/// The outer-ICMP classifier on an IPv4 packet carrying ICMP to `local`, whose only peer (index 0) is a
/// plain IP-in-IP one at `peer`.
func classifyOuterICMP(_ packet: UnsafeRawBufferPointer, local: IPv4Address, peer: IPv4Address, ttlInherited: Bool) -> OuterICMP {
    OuterICMP.classify(packet, messageAt: Int(packet[0] & 0x0F) * 4,
                       peers: OuterPeers(local: .v4(local), encapsulations: [.plainIPv4(local: local, remote: peer)]), ttlInherited: ttlInherited)
}

/// A frame as libpcap hands it over: Ethernet around an IPv4 packet.
func ethernetFrame(_ packet: [UInt8]) -> [UInt8] {
    EthernetBuilder.frame(destination: MACAddress(2, 0, 0, 0, 0, 0x37), source: MACAddress(2, 0, 0, 0, 0, 0x86),
                          etherType: EtherType.ipv4, payload: packet)
}

/// The seed's machine A: uplink 198.51.100.37, peer machine B at 203.0.113.86 for 203.0.113.0/24.
enum MachineA {
    static let config = ConfigLoader.load(yaml: Repository.text("config/machine-a.yaml"), file: "machine-a.yaml").config!
    static let local = IPv4Address("198.51.100.37")!
    static let peerB = IPv4Address("203.0.113.86")!
    static let ghost = IPv4Address("203.0.113.87")!
    static let hostC = IPv4Address("203.0.113.20")!

    /// An inner UDP packet from the ghost address to host C.
    static func inner(length: Int, dontFragment: Bool = false, ttl: UInt8 = 64, identification: UInt16 = 0x4242) -> [UInt8] {
        IPv4HeaderFields(identification: identification, dontFragment: dontFragment, ttl: ttl, protocolNumber: IPProtocolNumber.udp,
                         source: ghost, destination: hostC)
            .bytes(payload: (0..<(length - 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    }

    /// What machine B would send: `inner` wrapped in an outer header B → A (protocol 4, or 41 for IPv6).
    static func outerFromB(_ inner: [UInt8], identification: UInt16 = 9, dontFragment: Bool = false) -> [UInt8] {
        IPv4HeaderFields(identification: identification, dontFragment: dontFragment, ttl: 64,
                         protocolNumber: inner.first.map { $0 >> 4 == 6 } == true ? IPProtocolNumber.ipv6 : IPProtocolNumber.ipip,
                         source: peerB, destination: local).bytes(payload: inner)
    }
}

extension IPv4Address {
    var asMACForTests: MACAddress { MACAddress(value: UInt64(value) | 0x0200_0000_0000) }
}
