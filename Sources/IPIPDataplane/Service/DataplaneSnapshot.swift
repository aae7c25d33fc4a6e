import IPIPCore
import Synchronization

/// The configuration the dataplane threads work from: replaced as a whole when a reload is applied.
/// Threads compare `generation` between packets (one atomic load) and pick up a new snapshot when it
/// changes, so that a reload never stops or restarts them.
public final class DataplaneSnapshot: Sendable {
    public let generation: Int
    public let config: GatewayConfig
    public let counters: TunnelCounters
    /// What is known of the path to each peer (learned MTU, error window, loop guard), by peer index.
    public let paths: [PeerPathState]
    /// SHA-256 of the config file text this snapshot came from.
    public let configSHA256: String

    init(generation: Int, config: GatewayConfig, counters: TunnelCounters, paths: [PeerPathState], configSHA256: String) {
        self.generation = generation
        self.config = config
        self.counters = counters
        self.paths = paths
        self.configSHA256 = configSHA256
    }

    /// The snapshot for a reloaded config; counters and path state of peers that stay carry on (path state
    /// only with the same endpoint and encapsulation: a learned path MTU is of that outer header's path).
    func next(_ config: GatewayConfig, configSHA256: String) -> DataplaneSnapshot {
        let oldByName = Dictionary(zip(self.config.peers, paths).map { ($0.0.name, ($0.0, $0.1)) }, uniquingKeysWith: { a, _ in a })
        let paths = config.peers.map { peer in
            oldByName[peer.name].flatMap { old, path in
                old.remote == peer.remote && old.encapsulation == peer.encapsulation ? path : nil
            } ?? PeerPathState()
        }
        let counters = TunnelCounters(continuing: counters, peerNames: config.peers.map(\.name),
                                      ghostHosts: config.ghostCounterKeys)
        return DataplaneSnapshot(generation: generation + 1, config: config, counters: counters, paths: paths,
                                 configSHA256: configSHA256)
    }
}

/// Where the current snapshot is published.
final class SnapshotBox: Sendable {
    private let storage: Mutex<DataplaneSnapshot>
    private let published: Atomic<Int>

    init(_ snapshot: DataplaneSnapshot) {
        storage = Mutex(snapshot)
        published = Atomic(snapshot.generation)
    }

    @inline(__always)
    var generation: Int { published.load(ordering: .acquiring) }

    var current: DataplaneSnapshot { storage.withLock { $0 } }

    func publish(_ snapshot: DataplaneSnapshot) {
        storage.withLock { $0 = snapshot }
        published.store(snapshot.generation, ordering: .releasing)
    }
}
