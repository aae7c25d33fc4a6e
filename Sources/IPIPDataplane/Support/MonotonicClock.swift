#if canImport(Glibc)
import Glibc
#endif

/// Seconds on CLOCK_MONOTONIC: the time every packet path and rate limit is given.
func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Called after each round that sent something (up to 64 packets read from the TUN, or up to 256
/// frames taken from the capture's ring, sent 64 at a time): lets the tasks that the round woke run
/// before this thread takes the next one — the server reading what was reinjected, the other
/// direction's thread that a reply woke, the next hop's handler — much as the kernel's NAPI polls a
/// bounded budget per turn. On a CPU where nothing else waits it returns at once;
/// where the endpoints share the CPUs, it turns long runs of this thread into interleaved ones, so a
/// receiver's socket is read between bursts instead of overflowing (docs/BENCHMARKS.md: 64-byte
/// packets +25 %, ping lower, TCP −4 %).
@inline(__always)
func yieldToWhatTheBurstWoke() {
    sched_yield()
}

/// Seconds since the Unix epoch (CLOCK_REALTIME): for times that status shows as dates.
func wallClockSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
