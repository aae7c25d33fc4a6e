import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane
import Logging

// What the subcommands share: the options every one of them takes, reading and checking the config
// file, finding a running daemon's control socket, and printing errors.

/// Loads and validates a config file; prints warnings to standard error; on errors prints them all
/// and exits 1.
func loadConfigOrExit(_ path: String) throws -> GatewayConfig {
    try loadConfigWithTextOrExit(path).config
}

/// The config and the text it was read from (whose hash `status` shows).
func loadConfigWithTextOrExit(_ path: String) throws -> (config: GatewayConfig, text: String) {
    let text = try readConfigTextOrExit(path)
    let result = ConfigLoader.load(yaml: text, file: path)
    for diagnostic in result.diagnostics {
        let level: Logger.Level = switch diagnostic.severity { case .error: .error; case .warning: .warning; case .note: .notice }
        DaemonLogHandler.printLine(diagnostic.description, level: level)
    }
    guard let config = result.config else {
        printError("\(path): \(result.errors.count) error\(result.errors.count == 1 ? "" : "s"); nothing was applied")
        throw ExitCode.failure
    }
    return (config, text)
}

/// The config file's text; when it cannot be read, says why (naming the file) and exits 1.
func readConfigTextOrExit(_ path: String) throws -> String {
    do {
        return try readConfigFile(path, limit: YAMLLimits.maximumBytes)
    } catch {
        printError("\(path): error: cannot read the config file: \(error.reason)")
        throw ExitCode.failure
    }
}

/// An error on standard error (filed as one by the journal, under systemd).
func printError(_ line: String) {
    DaemonLogHandler.printLine(line, level: .error)
}

/// The control socket of the daemon that runs the tunnel named in `configPath`. The file is read
/// leniently: `reload` must reach the daemon even when the edited file has errors (it reports them).
func controlSocketPath(configPath: String, runtimeDirectory: String) throws -> (path: String, tunnel: String) {
    let text = try readConfigTextOrExit(configPath)
    let tunnel = ConfigLoader.tunnelName(yaml: text)
    return (Gateway.controlSocketPath(runtimeDirectory: runtimeDirectory, tunnel: tunnel), tunnel)
}

/// The `-c/--config` option every subcommand shares.
struct ConfigOptions: ParsableArguments {
    static let defaultPath = "/etc/ipipd/ipipd.yaml"

    @Option(name: [.customShort("c"), .customLong("config")],
            help: ArgumentHelp("The gateway's config file.", valueName: "file"))
    var path: String = ConfigOptions.defaultPath
}

/// Options of the commands that talk to a running daemon or are one.
struct RuntimeOptions: ParsableArguments {
    static let defaultDirectory = "/run/ipipd"

    @Option(name: .customLong("runtime-dir"),
            help: ArgumentHelp("Where the daemon keeps its control socket (<tunnel>.sock) and state file (<tunnel>.state).",
                               valueName: "dir"))
    var directory: String = RuntimeOptions.defaultDirectory
}
