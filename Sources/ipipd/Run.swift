import ArgumentParser
import IPIPCore

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set up the tunnel from the config and carry traffic until stopped (root).",
        discussion: """
        Not available yet in this build: the dataplane lands with the next release. Use `ipipd plan` to \
        see what it will do.
        """
    )

    @OptionGroup var options: ConfigOptions

    func run() throws {
        _ = try loadConfigOrExit(options.path)
        printError("ipipd run: the dataplane is not part of this build yet; `ipipd plan` shows what it will do")
        throw ExitCode.failure
    }
}
