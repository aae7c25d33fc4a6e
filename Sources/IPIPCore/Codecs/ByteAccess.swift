// Big-endian field access over raw packet bytes. Callers check bounds once (at validation) so the
// accessors stay branch-free on the per-packet path.

extension UnsafeRawBufferPointer {
    @inline(__always)
    func uint8(at offset: Int) -> UInt8 { self[offset] }

    @inline(__always)
    func uint16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    func uint32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func ipv4Address(at offset: Int) -> IPv4Address { IPv4Address(uint32(at: offset)) }

    @inline(__always)
    func macAddress(at offset: Int) -> MACAddress {
        MACAddress(value: UInt64(uint16(at: offset)) << 32 | UInt64(uint32(at: offset + 2)))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func setUInt8(_ value: UInt8, at offset: Int) { self[offset] = value }

    @inline(__always)
    func setUInt16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    func setUInt32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    func setMACAddress(_ mac: MACAddress, at offset: Int) {
        setUInt16(UInt16(truncatingIfNeeded: mac.value >> 32), at: offset)
        setUInt32(UInt32(truncatingIfNeeded: mac.value), at: offset + 2)
    }
}

/// A growable byte array used by the builders (not by the per-packet path, which writes in place).
public struct PacketWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func append(_ value: UInt8) { bytes.append(value) }
    public mutating func append(_ value: UInt16) { bytes.append(UInt8(value >> 8)); bytes.append(UInt8(value & 0xFF)) }
    public mutating func append(_ value: UInt32) { append(UInt16(value >> 16)); append(UInt16(value & 0xFFFF)) }
    public mutating func append(_ address: IPv4Address) { append(address.value) }
    public mutating func append(_ mac: MACAddress) { bytes.append(contentsOf: mac.array) }
    public mutating func append(contentsOf other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    public mutating func set(_ value: UInt16, at offset: Int) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(value & 0xFF)
    }
}
