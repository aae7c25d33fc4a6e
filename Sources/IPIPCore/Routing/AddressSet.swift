/// A small set of IPv4 addresses (this machine's, its subnets' broadcasts) asked about for every
/// packet: a sorted array searched by halves, cheaper than hashing for the handful an interface
/// list holds.
public struct AddressSet: Sendable, Equatable, ExpressibleByArrayLiteral {
    private let sorted: [UInt32]

    public init<S: Sequence>(_ addresses: S) where S.Element == IPv4Address {
        sorted = Array(Set(addresses.map(\.value))).sorted()
    }

    public init(arrayLiteral addresses: IPv4Address...) {
        self.init(addresses)
    }

    public var count: Int { sorted.count }

    @inline(__always)
    public func contains(_ address: IPv4Address) -> Bool {
        sorted.withUnsafeBufferPointer { sorted in
            var low = 0, high = sorted.count   // the first value not below the address
            while low < high {
                let middle = (low + high) / 2
                if sorted[middle] < address.value { low = middle + 1 } else { high = middle }
            }
            return low < sorted.count && sorted[low] == address.value
        }
    }
}
