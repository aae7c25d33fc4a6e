extension UnsafeBufferPointer where Element == UInt32 {
    /// In these ascending values, the index of the first one not below `value` (`count` when none is):
    /// where `value` is, or where it would go. The search by halves behind `AddressSet`.
    @inline(__always)
    func lowerBound(of value: UInt32) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
