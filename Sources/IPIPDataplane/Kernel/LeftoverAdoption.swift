#if canImport(Glibc)
import Glibc
#endif
import IPIPCore
import Logging

/// What a start does about a predecessor for the same tunnel that was killed before it could clean up:
/// reads its state file (trusting only root's own record of it), refuses to start while that ipipd
/// still runs, and deletes the pinned endpoint routes it left (those the record names, and any route
/// ipipd marked with its protocol number to an endpoint this plan pins). The sysctl values from before
/// the first run stay in the record, for this run to restore at its exit.
struct LeftoverAdoption {
    let state: StateFile
    let netlink: NetlinkSocket
    let tunnelName: String
    let logger: Logger

    func adopt(_ plan: KernelPlan) throws(SystemError) {
        let loaded = try state.load()
        if loaded.removedLink {
            logger.warning("removed a symbolic link where the state file goes; ipipd never makes one there", metadata: ["path": "\(state.path)"])
        }
        if let distrusted = loaded.distrusted { warnAboutRewrittenState(distrusted, rootCopyMissing: loaded.rootCopyMissing) }
        try refuseWhileThePredecessorRuns()
        try removeLeftoverPins(plan)
        state.record.pins = []
    }

    /// Issue 27, finding 12: the daemon's user could have written anything there — a PID that blocks
    /// this start, the values sysctls are restored to, routes for root to delete. None of it is acted on.
    private func warnAboutRewrittenState(_ distrusted: StateFile.Record, rootCopyMissing: Bool) {
        let unverified = distrusted.pins.map(\.endpoint).filter { pin in !state.record.pins.contains { $0.endpoint == pin } }
        let message = "the state file was rewritten by the daemon's unprivileged user: only root's own record of that run is used"
            + (rootCopyMissing ? " (none is left: the sysctls ipipd sets keep their current values at exit)" : "")
        logger.warning("\(message)", metadata: ["path": "\(state.path)", "not-acted-on": "\(unverified.map(\.description).joined(separator: ","))"])
    }

    /// A run for this tunnel holds its TUN device; a process of that name alone is no proof.
    private func refuseWhileThePredecessorRuns() throws(SystemError) {
        guard let pid = state.record.pid, pid != getpid() else { return }
        if kill(pid, 0) == 0, Self.isIpipd(pid), SystemProbe.interfaceIndex(tunnelName) != nil {
            throw SystemError("start", errno: EEXIST, detail: "ipipd (pid \(pid)) is already running for this tunnel")
        }
        logger.notice("found the state of an ipipd that ended without cleaning up; taking over", metadata: ["pid": "\(pid)"])
    }

    private func removeLeftoverPins(_ plan: KernelPlan) throws(SystemError) {
        var pinned = Set(state.record.pins.map(\.endpoint))
        for change in plan.changes {
            if let endpoint = KernelPlanDiff.endpoint(change) { pinned.insert(endpoint) }
        }
        try removeLeftoverPins(IPv4Address.self, pinned: pinned)
        if pinned.contains(where: \.isIPv6) { try removeLeftoverPins(IPv6Address.self, pinned: pinned) }
    }

    /// Host routes of one family that ipipd (proto 73) added to the main table for an endpoint it pins.
    private func removeLeftoverPins<Address: NetlinkAddress>(_ family: Address.Type, pinned: Set<IPAddress>) throws(SystemError) {
        let leftovers = try netlink.routes(family).filter {
            $0.protocolNumber == Netlink.ipipdRouteProtocol && $0.table == Netlink.mainTable
                && $0.prefix.length == Address.bitWidth && pinned.contains($0.prefix.address.ipAddress)
        }
        for route in leftovers {
            let message = Netlink.RouteMessage(prefix: IPPrefix(host: route.prefix.address.ipAddress), outputInterface: route.outputInterface,
                                               gateway: route.gateway?.ipAddress)
            try? netlink.change("delete leftover route \(route.prefix)") { Netlink.deleteRoute(message, sequence: $0) }
            logger.notice("removed a leftover pinned route", metadata: ["route": "\(route.prefix)"])
        }
    }

    static func isIpipd(_ pid: Int32) -> Bool {
        guard let comm = try? readSmallFile("/proc/\(pid)/comm") else { return false }
        return comm.hasPrefix("ipipd")
    }
}
