import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the running daemon re-read its config file and apply the differences.",
        discussion: """
        Asks the daemon running the config's tunnel, over its control socket, to reload (the same as \
        SIGHUP) and prints what changed, or why nothing did. The daemon re-reads the file it was started \
        with. Exit status 0 when the new config is in effect (or nothing changed), 1 when it was refused \
        (the running configuration then stays) or no daemon answers.
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let (path, tunnel) = try controlSocketPath(configPath: options.path, runtimeDirectory: runtime.directory)
        let reply: [UInt8]
        do {
            reply = try ControlSocket.request(path: path, command: "reload")
        } catch {
            printError("ipipd reload: no daemon answers for tunnel \(tunnel): \(error)")
            throw ExitCode.failure
        }
        let outcome = try JSONDecoder().decode(Gateway.ReloadOutcome.self, from: Data(reply))
        for message in outcome.messages {
            if outcome.applied { print(message) } else { printError(message) }
        }
        if !outcome.applied {
            printError("reload refused; the running configuration stays")
            throw ExitCode.failure
        }
    }
}
