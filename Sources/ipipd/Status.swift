import ArgumentParser
import Foundation
import IPIPCore
import IPIPDataplane

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running gateway's uptime, peers and counters.",
        discussion: """
        Asks the daemon running the config's tunnel over its control socket \
        (<runtime-dir>/<tunnel>.sock, readable by root only) and prints: a table of the peers (endpoint, \
        prefixes, path MTU, packets and bytes each way in IEC units, when a packet from it was last \
        delivered, drops); the ghost hosts' ARP and NDP counters; each dataplane loop's health (running, \
        retrying, waiting for the link, failed) with its read errors; what became of every frame the \
        capture took (unaccounted is 0); and the drops by reason. With --json, the same as a JSON document \
        for scripts, numbers raw (bytes as bytes, times as seconds since the epoch). Exit status 1 when no \
        daemon answers.

        With --check, a health check for keepalived's vrrp_script (config/keepalived-b1.conf): prints \
        nothing to standard output and exits 0 when the daemon answers within --timeout seconds, every \
        dataplane loop is running and the TUN device exists (an HA pair's standby is healthy: it must \
        stay able to take over); exits 1 when no daemon answers in time (absent, or stopped), 2 when it \
        answers but does not forward, saying why on standard error. It reads nothing but the config's \
        tunnel name and the daemon's reply, and changes nothing.
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    @Flag(help: "Print the status as JSON.")
    var json = false

    @Flag(help: "Check the daemon's health (exit status 0, 1 or 2) instead of printing the status.")
    var check = false

    @Option(help: ArgumentHelp("How long --check waits for the daemon's answer.", valueName: "seconds"))
    var timeout: Double = 0.5

    func validate() throws {
        guard timeout > 0, timeout <= 60 else { throw ValidationError("--timeout takes 0 to 60 seconds") }
        guard !(check && json) else { throw ValidationError("--check and --json exclude each other") }
    }

    func run() throws {
        let (path, tunnel) = try controlSocketPath(configPath: options.path, runtimeDirectory: runtime.directory)
        let reply: [UInt8]
        do {
            reply = try ControlSocket.request(path: path, timeoutSeconds: check ? timeout : nil)
        } catch {
            printError("ipipd status: no daemon answers for tunnel \(tunnel): \(error)")
            throw ExitCode.failure
        }
        if json {
            print(String(decoding: reply, as: UTF8.self))
            return
        }
        let status = try JSONDecoder().decode(GatewayStatus.self, from: Data(reply))
        if check {
            let problems = status.healthProblems
            guard problems.isEmpty else {
                printError("ipipd status: tunnel \(tunnel) is unhealthy: " + problems.joined(separator: "; "))
                throw ExitCode(2)
            }
            return
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        print(status.text(now: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9), terminator: "")
    }
}
