import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane
import Logging

/// Options of the commands that talk to a running daemon or are one.
struct RuntimeOptions: ParsableArguments {
    static let defaultDirectory = "/run/ipipd"

    @Option(name: .customLong("runtime-dir"),
            help: ArgumentHelp("Where the daemon keeps its control socket (<tunnel>.sock) and state file (<tunnel>.state).",
                               valueName: "dir"))
    var directory: String = RuntimeOptions.defaultDirectory
}

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

        SIGTERM or SIGINT: stop within a second and undo every change (TUN device, routes, pinned host \
        routes, sysctls). After a SIGKILL, the next start finds the leftovers through its state file and \
        cleans them up. The log goes to standard error, one line per event with key=value metadata.

        Needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root). `ipipd status` reads its counters.
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func run() throws {
        let config = try loadConfigOrExit(options.path)
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
        let plan = KernelPlan(config: config, facts: SystemProbe.facts(for: config))
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

        let gateway = Gateway(config: config, plan: plan,
                              options: .init(configFile: options.path, runtimeDirectory: runtime.directory, version: Ipipd.version),
                              logger: logger)
        do {
            try gateway.start()
        } catch {
            logger.error("cannot start; nothing stays applied", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                logger.notice("SIGHUP: reloading is not supported by this version; the running configuration stays")
                continue
            }
            logger.info("stopping", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
            break
        }
        gateway.shutdown()
    }
}
