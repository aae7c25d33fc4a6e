import Testing
@testable import IPIPCore

@Suite struct TokenBucketTests {
    @Test func aBurstThenTheRate() {
        var bucket = TokenBucket(rate: 10, burst: 5, now: 0)
        let taken = (0..<8).filter { _ in bucket.take(now: 0) }.count
        let tooSoon = bucket.take(now: 0.05)
        let refilled = bucket.take(now: 0.1)
        #expect(taken == 5 && !tooSoon && refilled)
        #expect(!bucket.isFull(now: 0.2) && bucket.isFull(now: 0.7))
    }

    @Test func timeGoingBackwardsNeitherRefillsNorTraps() {
        var bucket = TokenBucket(rate: 10, burst: 1, now: 5)
        let first = bucket.take(now: 5), earlier = bucket.take(now: 1), soon = bucket.take(now: 5.05), later = bucket.take(now: 5.2)
        #expect(first && !earlier && !soon && later)
    }

    @Test func theTableStaysBoundedAndForgetsTheLongestUnseen() {
        var table = TokenBucketTable<Int>(rate: 1, burst: 1, capacity: 100)
        let first = table.take(0, now: 0), again = table.take(0, now: 0)
        #expect(first && !again, "key 0 used its burst")
        _ = table.take(7_777_777, now: 0)
        var largest = 0
        for key in 1...10_000 {
            _ = table.take(key, now: 0)
            if key % 50 == 0 { _ = table.take(7_777_777, now: 0) }   // seen often: never forgotten
            largest = max(largest, table.count)
        }
        #expect(largest <= 200)
        let frequent = table.take(7_777_777, now: 0), forgotten = table.take(0, now: 0)
        #expect(!frequent, "a key seen within the last generation keeps its (empty) bucket")
        #expect(forgotten, "key 0 was forgotten and starts full")
    }
}
