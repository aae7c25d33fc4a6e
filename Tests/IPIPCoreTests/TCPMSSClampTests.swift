import Testing
@testable import IPIPCore

/// `tunnel.clamp-mss`: the MSS option of SYNs and SYN-ACKs lowered to what fits the path, both ways,
/// both families, the checksum updated incrementally.
@Suite struct TCPMSSClampTests {
    static let mss1460: [UInt8] = [2, 4, 0x05, 0xB4]

    /// A TCP SYN (or, with `ack`, SYN-ACK) from C to A's ghost address, IPv4 or IPv6, with `options`
    /// (padded to a multiple of four) and its checksums right.
    static func syn(options: [UInt8] = mss1460, ack: Bool = false, ipv6: Bool = false, flags: UInt8? = nil) -> [UInt8] {
        var tcpOptions = options
        while tcpOptions.count % 4 != 0 { tcpOptions.append(0) }
        var tcp: [UInt8] = [0x9C, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, ack ? 1 : 0]
        tcp += [UInt8((20 + tcpOptions.count) / 4) << 4, flags ?? (ack ? 0x12 : 0x02), 0xFA, 0xF0, 0, 0, 0, 0] + tcpOptions
        let packet: [UInt8]
        if ipv6 {
            var bytes = [UInt8](repeating: 0, count: 40 + tcp.count)
            bytes.withUnsafeMutableBytes { buffer in
                IPv6HeaderFields(payloadLength: tcp.count, nextHeader: IPProtocolNumber.tcp, hopLimit: 64,
                                 source: IPv6Address("2001:db8:b::20")!, destination: IPv6Address("2001:db8:b::87")!).write(into: buffer)
                UnsafeMutableRawBufferPointer(rebasing: buffer[40...]).copyMemory(from: UnsafeRawBufferPointer(start: tcp, count: tcp.count))
            }
            packet = bytes
        } else {
            packet = IPv4HeaderFields(identification: 7, dontFragment: true, protocolNumber: IPProtocolNumber.tcp,
                                      source: MachineA.hostC, destination: MachineA.ghost).bytes(payload: tcp)
        }
        return FlowCoalescerTests.withChecksumsRight(packet)
    }

    static func mss(_ packet: [UInt8], at offset: Int) -> Int { Int(packet[offset]) << 8 | Int(packet[offset + 1]) }

    static func checksumVerifies(_ packet: [UInt8]) -> Bool {
        packet.withUnsafeBytes { bytes in
            let tcp = bytes[0] >> 4 == 6 ? 40 : 20
            let pseudo = tcp == 40
                ? InternetChecksum.pseudoHeaderSum(ofIPv6: bytes, nextHeader: IPProtocolNumber.tcp, transportLength: bytes.count - tcp)
                : InternetChecksum.pseudoHeaderSum(ofIPv4: bytes, protocol: IPProtocolNumber.tcp, transportLength: bytes.count - tcp)
            return InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: bytes[tcp...]), initial: pseudo) == 0xFFFF
        }
    }

    func clamp(_ packet: inout [UInt8], to maximum: Int) -> Bool {
        packet.withUnsafeMutableBytes { bytes in
            guard let tcp = TCPMSSClamp.tcpHeaderOfSYN(UnsafeRawBufferPointer(bytes)) else { return false }
            return TCPMSSClamp.clamp(bytes, tcp: tcp, to: maximum)
        }
    }

    @Test func whatFitsThePathForEachFamily() {
        #expect(TCPMSSClamp.maximum(.auto, innerMTU: 1480, ipv6: false) == 1440)
        #expect(TCPMSSClamp.maximum(.auto, innerMTU: 1480, ipv6: true) == 1420)
        #expect(TCPMSSClamp.maximum(.auto, innerMTU: 1380, ipv6: false) == 1340)
        #expect(TCPMSSClamp.maximum(.fixed(1300), innerMTU: 1480, ipv6: true) == 1300)
        #expect(TCPMSSClamp.maximum(.off, innerMTU: 1480, ipv6: false) == nil)
    }

    /// SYN and SYN-ACK, IPv4 and IPv6, the MSS value at an even and an odd offset from the TCP header
    /// (behind a NOP): lowered, and the checksum still verifies.
    @Test(arguments: [false, true], [false, true])
    func aSYNsMSSIsLoweredWithItsChecksumStillRight(ipv6: Bool, odd: Bool) {
        let tcp = ipv6 ? 40 : 20
        for ack in [false, true] {
            var packet = Self.syn(options: (odd ? [1] : []) + Self.mss1460 + [1, 3, 3, 7], ack: ack, ipv6: ipv6)
            let at = tcp + 20 + (odd ? 1 : 0) + 2
            #expect(Self.mss(packet, at: at) == 1460 && Self.checksumVerifies(packet))
            #expect(clamp(&packet, to: 1400))
            #expect(Self.mss(packet, at: at) == 1400)
            #expect(Self.checksumVerifies(packet), "ipv6 \(ipv6), odd \(odd), ack \(ack)")
        }
    }

    @Test func neverRaisedNorAddedNorTouchingWhatIsNoSYN() {
        var small = Self.syn(options: [2, 4, 0x03, 0xE8])   // 1000
        let before = small
        #expect(!clamp(&small, to: 1400) && small == before)
        var none = Self.syn(options: [1, 1, 4, 2])           // NOP NOP SACK-permitted, no MSS
        let noneBefore = none
        #expect(!clamp(&none, to: 1400) && none == noneBefore)
        let ack = Self.syn(flags: 0x10)
        #expect(ack.withUnsafeBytes { TCPMSSClamp.tcpHeaderOfSYN($0) } == nil)
        let rst = Self.syn(flags: 0x04)
        #expect(rst.withUnsafeBytes { TCPMSSClamp.tcpHeaderOfSYN($0) } == nil)
        // A later IPv4 fragment holds no TCP header.
        var fragment = Self.syn()
        fragment[7] = 0x10
        #expect(fragment.withUnsafeBytes { TCPMSSClamp.tcpHeaderOfSYN($0) } == nil)
    }

    /// Hostile option lists: a length of 0 or 1, an option running past the data offset, an MSS of
    /// the wrong length, a data offset past the packet: nothing is written.
    @Test func malformedOptionsAreLeftAlone() {
        for options: [UInt8] in [[3, 0, 2, 4, 5, 0xB4], [3, 1, 2, 4, 5, 0xB4], [8, 12, 0, 0, 2, 4, 5, 0xB4], [2, 6, 5, 0xB4, 0, 0], [1, 1, 1, 2]] {
            var packet = Self.syn(options: options)
            let before = packet
            #expect(!clamp(&packet, to: 1000) && packet == before, "\(options)")
        }
        var pastTheEnd = Self.syn()
        pastTheEnd[32] = 0xF0   // data offset 60 bytes, the packet has 44
        let before = pastTheEnd
        #expect(!clamp(&pastTheEnd, to: 1000) && pastTheEnd == before)
    }

    /// The update is incremental: a SYN whose checksum was wrong is not made right by clamping it.
    @Test func aWrongChecksumStaysWrong() {
        var packet = Self.syn()
        packet[36] ^= 0x40
        #expect(!Self.checksumVerifies(packet))
        #expect(clamp(&packet, to: 1300))
        #expect(!Self.checksumVerifies(packet))
    }

    /// Both paths: a SYN into the tunnel and a SYN-ACK out of it, clamped to the peer's path — the tunnel
    /// MTU, then what a router's report lowered it to — and counted per direction; with `off`, untouched.
    @Test func bothPathsClampToThePeersCurrentPath() throws {
        var config = MachineA.config
        config.tunnel.clampMSS = .auto
        config.tunnel.delivery = .kernel
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let paths = [PeerPathState()]
        let encapsulation = EncapsulationPath(config: config, tunnelMTU: 1480, counters: counters, paths: paths)
        let decapsulation = DecapsulationPath(config: config, tunnelMTU: 1480, counters: counters, paths: paths,
                                              localNetworks: LocalNetworks(addresses: []))
        func send(_ inner: [UInt8]) -> [UInt8]? {
            let sent = SentPackets()
            let slot = sent.batch.nextSlot
            VirtioNetHeader.plain.write(to: UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.virtioHeaderOffset..<PacketSlot.innerOffset]))
            inner.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: slot[PacketSlot.innerOffset...]).copyMemory(from: $0) }
            encapsulation.process(readLength: VirtioNetHeader.size + inner.count, in: sent.batch, now: 0)
            return sent.flush().first.map { Array($0.bytes[20...]) }
        }
        func receive(_ inner: [UInt8]) -> [UInt8]? {
            let sent = SentPackets()
            ethernetFrame(MachineA.outerFromB(inner)).withUnsafeBytes { decapsulation.process(frame: $0, wireLength: $0.count, in: sent.batch, now: 0) }
            return sent.flush().first.map { Array($0.bytes[VirtioNetHeader.size...]) }
        }
        // Into the tunnel: A's host sends a SYN to B's side (C's address is B's).
        let out = try #require(send(Self.syn(ipv6: false).swappingAddresses()))
        #expect(Self.mss(out, at: 42) == 1440 && Self.checksumVerifies(out))
        // Out of it: B's side answers with a SYN-ACK announcing 1460 (IPv6 this time: 1480 − 60).
        let back = try #require(receive(Self.syn(ack: true, ipv6: true)))
        #expect(Self.mss(back, at: 62) == 1420 && Self.checksumVerifies(back))
        #expect(counters.tcpMSSClampedSent.value == 1 && counters.tcpMSSClampedReceived.value == 1)
        // A router reported a smaller path to B: what fits it now.
        paths[0].learnPathMTU(outerMTU: 1400, now: 0, ceiling: 1480)
        #expect(try Self.mss(#require(send(Self.syn().swappingAddresses())), at: 42) == 1340)
        #expect(try Self.mss(#require(receive(Self.syn(ack: true))), at: 42) == 1340)
        #expect(counters.tcpMSSClampedSent.value == 2 && counters.tcpMSSClampedReceived.value == 2)

        config.tunnel.clampMSS = .off
        encapsulation.reconfigure(config, counters: counters, paths: paths)
        #expect(try Self.mss(#require(send(Self.syn().swappingAddresses())), at: 42) == 1460)
        #expect(counters.tcpMSSClampedSent.value == 2)
    }
}

extension Array where Element == UInt8 {
    /// An IPv4 packet with source and destination swapped (checksums made right again).
    func swappingAddresses() -> [UInt8] {
        var packet = self
        for index in 0..<4 { packet.swapAt(12 + index, 16 + index) }
        return FlowCoalescerTests.withChecksumsRight(packet)
    }
}
