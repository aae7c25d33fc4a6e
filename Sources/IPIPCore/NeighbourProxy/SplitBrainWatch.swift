/// Whether an HA pair's active box shares the LAN with another box that acts as active too (a split
/// brain: the VRRP link between them cut, both masters). Each sees the other claim what only the active
/// box may claim — the tunnel endpoint (keepalived's gratuitous ARP for the virtual address) and the
/// ghost hosts (ipipd's announcements and defenses). A claim counts once this box is still active
/// `confirmationSeconds` after it: at a switch-over the old master sees its successor's first claims
/// in the milliseconds before it gives the address up, and that is no split brain. Pure: claims and
/// role in, confirmed claims out, time passed in.
public struct SplitBrainWatch: Sendable {
    public struct Claim: Sendable, Equatable {
        /// The other machine's MAC, and the address it claimed (the endpoint or a ghost).
        public var mac: MACAddress
        public var address: String
        public var at: Double
        public init(mac: MACAddress, address: String, at: Double) {
            self.mac = mac
            self.address = address
            self.at = at
        }
    }

    public var confirmationSeconds: Double
    /// Claims waiting for their confirmation, oldest first: at most `maximumPending` (a flood of claims
    /// from forged MACs keeps the newest; each still counts as a conflict where it is handled).
    public private(set) var pending: [Claim] = []
    public static let maximumPending = 64

    public init(confirmationSeconds: Double = 1) {
        self.confirmationSeconds = confirmationSeconds
    }

    /// Another machine claimed `address` while this box was active.
    public mutating func claimed(_ address: String, by mac: MACAddress, now: Double) {
        if pending.count >= Self.maximumPending { pending.removeFirst() }
        pending.append(Claim(mac: mac, address: address, at: now))
    }

    /// The claims confirmed at `now`: made at least `confirmationSeconds` ago, this box active since.
    /// A box that is not active (any more) drops what it held.
    public mutating func confirmed(active: Bool, now: Double) -> [Claim] {
        guard active else {
            pending.removeAll()
            return []
        }
        let due = pending.prefix { now - $0.at >= confirmationSeconds }
        guard !due.isEmpty else { return [] }
        pending.removeFirst(due.count)
        return Array(due)
    }
}
