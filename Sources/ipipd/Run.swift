import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane
import Logging

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set up the tunnel from the config and carry traffic until stopped (root).",
        discussion: """
        Validates the config, checks this machine (as `plan` does), then takes every step of the plan, in \
        the order `plan` prints them, all or nothing: if one fails, the ones already taken are undone and \
        ipipd exits 1. Then it carries traffic: inner packets from the TUN device are wrapped and sent to \
        their peer (protocol 4 or 41, or UDP to the peer's `encap` port; inside IPv6 over an IPv6 underlay); \
        the tunnel packets captured on the uplink (and on its `fou` ports) are checked (the peer, its accept-sources, \
        martian addresses, source routes) and unwrapped, and the inner packet is written to the TUN device, \
        where the kernel receives it as Linux's ipip would (firewall it in INPUT and FORWARD with \
        iifname "tunl") — or, with `tunnel.delivery: routed`, reinjected through a raw socket, marked.

        HA pair (`uplink.standby-when-absent: yes`): while the uplink address is not assigned to the uplink \
        (keepalived gave it to the other box), ipipd takes every step but is the standby: it answers no ARP, \
        announces nothing and sends nothing. When the address appears (a netlink address notification) it \
        becomes active within milliseconds and announces every ghost host by gratuitous ARP; when the \
        address goes, it is the standby again. `ipipd status` shows the role.

        SIGHUP (or `ipipd reload`): read the file again and apply it as a diff — peers, prefixes, routes and \
        ghost hosts added or removed — without recreating the TUN device or restarting a capture. An \
        invalid file is logged with every error and the running configuration stays.

        SIGTERM or SIGINT: stop within a second and undo every change (TUN device, routes, pinned host \
        routes, sysctls). After a SIGKILL, the next start finds the leftovers through its state file and \
        cleans them up. When a dataplane loop cannot read its device for --loop-failure-timeout seconds, \
        ipipd undoes its changes and exits 1, for systemd to restart it. The log goes to standard error, \
        one line per event with key=value metadata (values quoted when they hold spaces); under systemd it \
        goes to the journal with a priority and a field per key (PEER=, GHOST=, REASON=…): \
        `journalctl -u ipipd -p warning`, `journalctl -u ipipd PEER=machine-a`.

        Start it as root: once the TUN device, captures and raw sockets are open it switches to --user, \
        keeping CAP_NET_ADMIN and CAP_NET_RAW in the main and control threads only; the threads that parse \
        packets hold no capability. Under systemd (the unit's Type=notify, or Type=notify-reload on \
        systemd 253 and later) it reports READY, RELOADING and STOPPING on $NOTIFY_SOCKET. `ipipd status` reads its counters.
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("""
        After setup, run as this user, keeping only CAP_NET_ADMIN and CAP_NET_RAW. `root` keeps full \
        privileges. When the default user does not exist, ipipd warns and stays root.
        """, valueName: "name"))
    var user: String = PrivilegeDrop.defaultUser

    @Option(name: .customLong("loop-failure-timeout"), help: ArgumentHelp("""
        How long a dataplane loop may keep failing to read its device (the uplink's capture, the TUN \
        device, a LAN interface's ARP capture) before ipipd exits with status 1, so that systemd starts it \
        afresh. A link that is down is waited for however long it takes.
        """, valueName: "seconds"))
    var loopFailureTimeout: Double = 30

    func run() throws {
        MemoryTuning.apply()   // before the config is read and any thread starts
        let (config, configText) = try loadConfigWithTextOrExit(options.path)
        let level = logLevel
        LoggingSystem.bootstrap { _ in DaemonLogHandler(level: level) }
        let logger = Logger(label: "ipipd")
        guard geteuid() == 0 else {
            printError("ipipd run: needs root (CAP_NET_ADMIN for the TUN device and routes, CAP_NET_RAW for capture and raw sockets)")
            throw ExitCode.failure
        }
        let plan = KernelPlan(config: config, facts: SystemProbe.facts(for: config),
                              controlSocket: Gateway.controlSocketPath(runtimeDirectory: runtime.directory, tunnel: config.tunnel.name))
        for note in plan.notes { logger.info("\(note)") }
        for warning in plan.warnings { logger.warning("\(warning)") }
        guard plan.problems.isEmpty else {
            for problem in plan.problems { printError("\(options.path): cannot run here: \(problem)") }
            throw ExitCode.failure
        }

        // Signals are taken synchronously by this thread (sigwait), so they are blocked everywhere,
        // and the dataplane threads inherit the mask. SIGUSR1 is ipipd's own: a loop that gave up.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        let gateway = Gateway(config: config, configText: configText, plan: plan,
                              options: .init(configFile: options.path, runtimeDirectory: runtime.directory, version: Ipipd.version,
                                             loopFailureTimeout: loopFailureTimeout),
                              logger: logger)
        gateway.onReload = { starting in starting ? notifier.reloading() : notifier.ready(status: "tunnel up") }
        gateway.onFatal = { reason in
            notifier.status("failed: \(reason)")
            kill(getpid(), SIGUSR1)
        }
        let metrics = MetricsEndpoint(logger: logger)
        do {
            try gateway.start { [user] in
                try PrivilegeDrop.apply(user: user, runtimeDirectory: gateway.runtimeDirectory, logger: logger)
            }
            if let server = gateway.metricsServer { try metrics.start(serving: gateway, on: server) }
        } catch {
            logger.error("cannot start; nothing stays applied", metadata: ["error": "\(error)"])
            metrics.stop()
            gateway.shutdown()
            throw ExitCode.failure
        }
        notifier.ready(status: "tunnel \(config.tunnel.name) up, \(config.peers.count) peer(s)")
        var failed = false
        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                logger.notice("SIGHUP: reloading", metadata: ["file": "\(options.path)"])
                _ = gateway.reload()
                continue
            }
            failed = received == SIGUSR1
            let cause = failed ? "a dataplane loop failed" : received == SIGTERM ? "SIGTERM" : "SIGINT"
            logger.info("stopping", metadata: ["cause": "\(cause)"])
            break
        }
        notifier.stopping()
        metrics.stop()
        gateway.shutdown()
        // Non-zero after a failure, so that systemd (Restart=on-failure) starts a fresh daemon.
        if failed { throw ExitCode.failure }
    }
}
