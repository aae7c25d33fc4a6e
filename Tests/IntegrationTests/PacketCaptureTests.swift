import Testing
import IPIPCore
@testable import IPIPDataplane

/// libpcap captures as the daemon opens them (root: packet sockets). On the loopback device of the
/// test's own namespace, sending nothing.
@Suite(.enabled(if: Lab.isRoot, "needs root: packet sockets"))
struct PacketCaptureTests {
    @Test func outgoingPacketsAreSkippedByTheKernelNotJustByLibpcap() throws {
        let capture = try PacketCapture(interface: "lo", filter: CaptureFilter.tunnel(local: IPAddress("192.0.2.1")!),
                                        settings: .init(snapshotLength: 256))
        #expect(capture.kernelIgnoresOutgoing)
        // Nothing is waiting: dispatch returns at once, without calling back.
        var frames = 0
        #expect(try capture.dispatch(limit: 16) { _ in frames += 1 } == 0)
        #expect(frames == 0)
    }
}
