import IPIPCore
import Synchronization

/// What the route watcher last read of the kernel's routes for the capture thread: the MTU of the
/// interface each destination is routed to (what the routed delivery fits decapsulated packets to) and
/// the prefixes the kernel routes as local (which take the TUN device). Replaced as a whole; the capture
/// thread compares the generation once per burst (one atomic load) and takes a copy when it changed.
final class RouteFacts: Sendable {
    struct Snapshot: Sendable {
        var egressMTUs = PrefixTable<Int>()
        var localRoutes = LocalRoutes.unread
    }

    private let snapshot = Mutex(Snapshot())
    private let published = Atomic<Int>(0)

    var generation: Int { published.load(ordering: .acquiring) }
    var current: Snapshot { snapshot.withLock { $0 } }

    func publish(_ new: Snapshot) {
        snapshot.withLock { $0 = new }
        published.wrappingAdd(1, ordering: .releasing)
    }
}
