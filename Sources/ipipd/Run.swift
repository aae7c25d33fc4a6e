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
        Validates the config, checks this machine (as `plan` does), then applies every change in the plan \
        all or nothing: if one fails, the ones already made are undone and ipipd exits 1. Then it carries \
        traffic: inner packets from the TUN device are wrapped and sent to their peer; protocol-4 packets \
        captured on the uplink are checked and unwrapped, and the inner packet is handed back to the \
        kernel's routing (its OUTPUT path: firewall rules for tunneled traffic belong in the OUTPUT chain, \
        not FORWARD).

        SIGHUP (or `ipipd reload`): read the file again and apply it as a diff — peers, prefixes, routes and \
        ghost hosts added or removed — without recreating the TUN device or restarting a capture. An \
        invalid file is logged with every error and the running configuration stays.

        SIGTERM or SIGINT: stop within a second and undo every change (TUN device, routes, pinned host \
        routes, sysctls). After a SIGKILL, the next start finds the leftovers through its state file and \
        cleans them up. The log goes to standard error, one line per event with key=value metadata.

        Start it as root: once the TUN device, captures and raw sockets are open it switches to --user, \
        keeping CAP_NET_ADMIN and CAP_NET_RAW. Under systemd (Type=notify-reload) it reports READY, \
        RELOADING and STOPPING on $NOTIFY_SOCKET. `ipipd status` reads its counters.
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

    func run() throws {
        let (config, configText) = try loadConfigWithTextOrExit(options.path)
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
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
        // and the dataplane threads inherit the mask.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        let gateway = Gateway(config: config, configText: configText, plan: plan,
                              options: .init(configFile: options.path, runtimeDirectory: runtime.directory, version: Ipipd.version),
                              logger: logger)
        gateway.onReload = { starting in starting ? notifier.reloading() : notifier.ready(status: "tunnel up") }
        let metrics = MetricsEndpoint(logger: logger)
        do {
            try gateway.start { [user, runtime] in
                try PrivilegeDrop.apply(user: user, runtimeDirectory: runtime.directory, logger: logger)
            }
            if let server = gateway.metricsServer { try metrics.start(serving: gateway, on: server) }
        } catch {
            logger.error("cannot start; nothing stays applied", metadata: ["error": "\(error)"])
            metrics.stop()
            gateway.shutdown()
            throw ExitCode.failure
        }
        notifier.ready(status: "tunnel \(config.tunnel.name) up, \(config.peers.count) peer(s)")
        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                logger.notice("SIGHUP: reloading", metadata: ["file": "\(options.path)"])
                _ = gateway.reload()
                continue
            }
            logger.info("stopping", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
            break
        }
        notifier.stopping()
        metrics.stop()
        gateway.shutdown()
    }
}
