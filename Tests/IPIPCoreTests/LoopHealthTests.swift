import Testing
@testable import IPIPCore

@Suite struct LoopHealthTests {
    /// libpcap's drop counters are 32-bit: a wrap adds what was dropped since, it is not a reset.
    @Test func aWrappingCounterNeverGoesDown() {
        var counter = WrappingCounter32()
        counter.update(10)
        counter.update(UInt32.max - 5)
        #expect(counter.total == UInt64(UInt32.max) - 5)
        counter.update(4)   // wrapped: 10 more
        #expect(counter.total == UInt64(UInt32.max) + 5)
        counter.update(4)
        #expect(counter.total == UInt64(UInt32.max) + 5)
    }

    @Test func failuresPauseLongerThenGiveUpUnlessTheLinkIsDown() {
        var policy = RetryPolicy(giveUpAfter: 30)
        #expect(policy.failed(now: 0, linkDown: false) == 0.1)
        #expect(policy.failed(now: 1, linkDown: false) == 0.2)
        #expect(policy.failed(now: 29, linkDown: false) == 0.4)
        #expect(policy.failed(now: 30, linkDown: false) == nil, "30 s of failures without a success")
        policy.succeeded()
        #expect(policy.failed(now: 100, linkDown: false) == 0.1, "a success starts afresh")
        for second in 0..<120 { #expect(policy.failed(now: 200 + Double(second), linkDown: true) != nil) }
        #expect(policy.failed(now: 400, linkDown: true) == 2, "pauses stop growing at 2 s")
    }

    @Test func healthRemembersTheLastError() {
        let health = LoopHealth(name: "ipipd-capture")
        #expect(health.current == .starting && health.errorCount == 0)
        health.noteError("capture on eth0: Network is down", linkDown: true)
        #expect(health.current == .waitingForLink && health.errorCount == 1 && health.lastError == "capture on eth0: Network is down")
        health.set(.running)
        #expect(health.current.label == "running")
    }
}
