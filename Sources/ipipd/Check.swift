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

        On success the config is printed with every default filled in. Exit status 0 when valid (warnings \
        allowed), 1 otherwise. Use it before a reload, as `nginx -t` or `sshd -t` are used.
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
        printError(diagnostic.description)
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
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        printError("\(path): error: cannot read the config file: \((error as NSError).localizedDescription)")
        throw ExitCode.failure
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
