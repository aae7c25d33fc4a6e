import CIPIPShims

/// How the daemon asks glibc's allocator to give memory back. A hub's reload builds tables of 100,000
/// entries on several threads and frees the old ones; by default glibc keeps what was freed in one arena
/// per thread and raises its mmap threshold as large blocks come and go, so the daemon's resident size
/// only grows (measured: 112 MB at start, 192 MB after one reload at 10,000 peers). With large blocks
/// always mmapped (returned to the kernel when freed) and two arenas, it stays near its working set
/// (80 MB, 107 MB). The packet paths allocate nothing per packet, so fewer arenas cost them nothing.
public enum MemoryTuning {
    public static let mmapThreshold = 256 << 10
    public static let arenas: Int32 = 2

    /// Call once, before any thread starts. False when glibc refused (the daemon runs anyway).
    @discardableResult
    public static func apply() -> Bool {
        CIPIPShims_tuneMalloc(mmapThreshold, arenas) != 0
    }
}
