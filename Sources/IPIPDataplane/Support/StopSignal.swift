import Synchronization

/// Set once to ask every loop to finish; loops check it at least every `pollIntervalMilliseconds`.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    public static let pollIntervalMilliseconds: Int32 = 100
    public init() {}
    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}
