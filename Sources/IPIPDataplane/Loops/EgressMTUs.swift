import IPIPCore
import Synchronization

/// The MTU of the interface each destination is routed to, as the route watcher last read the main
/// table: what the libnet delivery fits decapsulated packets to. Replaced as a whole; the capture
/// thread compares the generation once per burst (one atomic load) and takes a copy when it changed.
final class EgressMTUs: Sendable {
    private let table = Mutex(RoutingTable<Int>())
    private let published = Atomic<Int>(0)

    var generation: Int { published.load(ordering: .acquiring) }
    var current: RoutingTable<Int> { table.withLock { $0 } }

    func publish(_ new: RoutingTable<Int>) {
        table.withLock { $0 = new }
        published.wrappingAdd(1, ordering: .releasing)
    }
}
