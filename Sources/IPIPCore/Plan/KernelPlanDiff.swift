/// What a reload changes in the kernel: the steps of the running plan and of the new one compared. A
/// reload adds and removes pinned endpoint routes and tunnel routes (both families) and opens the
/// neighbour captures of LAN interfaces that get their first ghost host; everything else a config can
/// change either needs no kernel step (the snapshot the loops read) or needs a restart (`ConfigDiff`).
/// Pure, so that what a reload will do is a value tests can look at.
public struct KernelPlanDiff: Sendable, Equatable {
    /// Pinned endpoints whose route changes (another gateway or interface): their old route goes
    /// first, then the new one is added with `pinsAdded`.
    public var pinsReplaced: [(old: KernelChange, new: KernelChange)] = []
    /// `.pinEndpoint` steps of endpoints the running plan does not pin.
    public var pinsAdded: [KernelChange] = []
    /// `.pinEndpoint` steps of the running plan whose endpoint the new one no longer pins.
    public var pinsRemoved: [KernelChange] = []
    /// `.addTunnelRoute` steps of prefixes (either family) new to the tunnel, sorted by prefix.
    public var routesAdded: [KernelChange] = []
    /// `.addTunnelRoute` steps of the running plan whose prefix leaves the tunnel, sorted by prefix.
    public var routesRemoved: [KernelChange] = []
    /// `.captureNeighbours` steps of interfaces the running plan captures nothing on.
    public var capturesOpened: [KernelChange] = []

    public init(from old: KernelPlan, to new: KernelPlan) {
        let oldPins = Self.pins(old), newPins = Self.pins(new)
        for (endpoint, change) in newPins.sorted(by: { $0.key < $1.key }) {
            switch oldPins[endpoint] {
            case nil: pinsAdded.append(change)
            case let running? where running != change: pinsReplaced.append((running, change))
            default: break
            }
        }
        pinsRemoved = oldPins.sorted(by: { $0.key < $1.key }).filter { newPins[$0.key] == nil }.map(\.value)

        PrefixMerge.compare(Self.routes(old), Self.routes(new),
                            onlyOld: { _, change in routesRemoved.append(change) },
                            onlyNew: { _, change in routesAdded.append(change) },
                            both: { _, _, _ in })

        let captured = Set(old.changes.compactMap { change -> String? in
            if case let .captureNeighbours(interface, _) = change { interface } else { nil }
        })
        capturesOpened = new.changes.filter { change in
            if case let .captureNeighbours(interface, _) = change { !captured.contains(interface) } else { false }
        }
    }

    public var isEmpty: Bool {
        pinsReplaced.isEmpty && pinsAdded.isEmpty && pinsRemoved.isEmpty && routesAdded.isEmpty && routesRemoved.isEmpty
            && capturesOpened.isEmpty
    }

    /// The prefixes of `routesAdded` or `routesRemoved`.
    public static func prefixes(_ routes: [KernelChange]) -> [IPPrefix] {
        routes.compactMap { if case let .addTunnelRoute(prefix, _, _) = $0 { prefix } else { nil } }
    }

    /// The endpoint a `.pinEndpoint` step pins.
    public static func endpoint(_ pin: KernelChange) -> IPAddress? {
        if case let .pinEndpoint(_, endpoint, _, _) = pin { endpoint } else { nil }
    }

    /// Each pinned endpoint with its step (the first, should a plan pin one twice).
    static func pins(_ plan: KernelPlan) -> [IPAddress: KernelChange] {
        Dictionary(plan.changes.compactMap { change in endpoint(change).map { ($0, change) } }, uniquingKeysWith: { first, _ in first })
    }

    /// Each tunnel route of either family with its step, sorted (a hub's plan has 100,000).
    static func routes(_ plan: KernelPlan) -> [(prefix: IPPrefix, owner: KernelChange)] {
        PrefixMerge.uniqueSorted(plan.changes.compactMap { change in
            if case let .addTunnelRoute(prefix, _, _) = change { (prefix, change) } else { nil }
        })
    }

    public static func == (lhs: KernelPlanDiff, rhs: KernelPlanDiff) -> Bool {
        lhs.pinsReplaced.map(\.old) == rhs.pinsReplaced.map(\.old) && lhs.pinsReplaced.map(\.new) == rhs.pinsReplaced.map(\.new)
            && lhs.pinsAdded == rhs.pinsAdded && lhs.pinsRemoved == rhs.pinsRemoved && lhs.routesAdded == rhs.routesAdded
            && lhs.routesRemoved == rhs.routesRemoved && lhs.capturesOpened == rhs.capturesOpened
    }
}
