import ArgumentParser
import Foundation
import IPIPCore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file and print it normalized, or print every error in it.",
        discussion: """
        Reads the file and checks everything that can be checked without looking at this machine: \
        syntax, unknown keys, addresses and prefixes, duplicates, ghost hosts covered by peer routes, \
        tunnel options that contradict each other, endpoints that could never be reached outside the \
        tunnel. Every problem is reported at once, as `file:line:column: error: key: reason`.

        On success the config is printed with every default filled in (a value left out as a comment, or \
        `auto`), which `check` reads back as the same config. Exit status 0 when valid (warnings allowed), 1 \
        otherwise. Use it before a reload, as `nginx -t` or `sshd -t` are used.

        The keys a file may hold (ipipd.yaml(5) says what each means, and its default): \
        \(ConfigReference.help)
        """
    )

    @OptionGroup var options: ConfigOptions

    @Flag(name: .shortAndLong, help: "Print nothing on success; only the exit status tells.")
    var quiet = false

    func run() throws {
        let config = try loadConfigOrExit(options.path)
        if !quiet {
            print(ConfigPrinter.yaml(config), terminator: "")
        }
    }
}
