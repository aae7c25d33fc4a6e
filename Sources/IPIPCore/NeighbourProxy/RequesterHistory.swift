/// Which requesters a responder knew before a flood began, so that a flood of requests from new MACs
/// (forged at will) cannot take their replies: a requester answered at least `promotionAge` seconds
/// before it asks again is *established*, and established requesters draw on a global reply budget of
/// their own. Only an answered request starts the clock, and only `capacity` requesters are established
/// at once (one unseen for `forgetAfter` seconds makes room), so a flood neither promotes itself quickly
/// nor pushes the known hosts out. Pure and bounded: a two-generation table of first answers, as the
/// reply budgets use, and a small table of the established.
public struct RequesterHistory: Sendable {
    public static let promotionAge = 5.0
    public static let capacity = 256
    public static let forgetAfter = 600.0

    private var firstAnswered: [MACAddress: Double] = [:]
    private var firstAnsweredBefore: [MACAddress: Double] = [:]
    private let firstAnsweredCapacity: Int
    /// Established requesters, each with when it last asked.
    private var established: [MACAddress: Double] = [:]
    private var lastSweep = -Double.infinity

    public init(firstAnsweredCapacity: Int = 4096) {
        self.firstAnsweredCapacity = firstAnsweredCapacity
    }

    public var establishedCount: Int { established.count }

    /// A request from `requester` at `now`: whether it is established (promoting it when its first answer
    /// is old enough and there is room).
    public mutating func noteRequest(from requester: MACAddress, now: Double) -> Bool {
        if established[requester] != nil {
            established[requester] = now
            return true
        }
        guard let first = firstAnswered[requester] ?? firstAnsweredBefore[requester], now - first >= Self.promotionAge else {
            return false
        }
        if established.count >= Self.capacity && now - lastSweep >= 1 {
            lastSweep = now
            established = established.filter { now - $0.value < Self.forgetAfter }
        }
        guard established.count < Self.capacity else { return false }
        established[requester] = now
        return true
    }

    /// `requester` got a reply at `now`: the first one starts its clock.
    public mutating func noteAnswered(_ requester: MACAddress, now: Double) {
        guard established[requester] == nil, firstAnswered[requester] == nil else { return }
        if let earlier = firstAnsweredBefore.removeValue(forKey: requester) {
            firstAnswered[requester] = earlier
            return
        }
        if firstAnswered.count >= firstAnsweredCapacity {
            firstAnsweredBefore = firstAnswered
            firstAnswered = [:]
        }
        firstAnswered[requester] = now
    }
}
