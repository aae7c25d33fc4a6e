import IPIPCore
import Logging

/// The HA role's thread (`uplink.standby-when-absent`): keepalived's VRRP decides which box of the pair
/// holds the uplink address; this loop follows it. It listens for the kernel's address notifications
/// (RTMGRP_IPV4_IFADDR) and, on each, looks whether the address is on the uplink: present → active,
/// absent → standby. The packet loops read the role before each burst; the proxy-ARP loops are woken
/// so that a new active box announces its ghost hosts at once. No polling: a notification, or the
/// kernel's word that some were lost (ENOBUFS), triggers the look; a slow re-check is only a safety net.
struct RoleWatcherLoop {
    let context: LoopContext
    let health: LoopHealth
    let uplink: GatewayConfig.Uplink
    let wakeUps: WakeUpList

    /// A safety net only: every change arrives as a notification.
    static let recheckSeconds = 30.0

    func run() {
        let (role, stop, logger) = (context.role, context.stop, context.logger)
        PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: health.name)
        defer { health.set(.stopped) }
        let notifications: NetlinkSocket
        do {
            notifications = try NetlinkSocket(subscribingTo: Netlink.ipv4AddressGroup)
        } catch {
            health.noteError("\(error)")
            logger.critical("cannot watch the uplink address; the HA role cannot follow keepalived", metadata: ["error": "\(error)"])
            context.giveUp("\(health.name): \(error)")
            return
        }
        health.set(.running)
        // Subscribed first, then looked: a change between the two is not missed.
        var lastLook = -Double.infinity
        var notified = true
        while !stop.isStopped {
            let now = monotonicSeconds()
            if notified || now - lastLook >= Self.recheckSeconds {
                lastLook = now
                let assigned = SystemProbe.isAssigned(uplink.address, to: uplink.interface)
                let since = role.since
                if role.set(assigned ? .active : .standby, now: now) {
                    wakeUps.signalAll()
                    logger.notice(assigned ? "role: active — the uplink address is here; announcing every ghost host"
                                           : "role: standby — the uplink address went away; answering and sending nothing",
                                  metadata: ["address": "\(uplink.address)", "interface": "\(uplink.interface)",
                                             "previous-role-seconds": "\(Int(now - since))"])
                }
            }
            notified = notifications.drainNotifications(timeoutMilliseconds: StopSignal.pollIntervalMilliseconds)
        }
    }
}
