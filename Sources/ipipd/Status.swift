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
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    @Flag(help: "Print the status as JSON.")
    var json = false

    func run() throws {
        let (path, tunnel) = try controlSocketPath(configPath: options.path, runtimeDirectory: runtime.directory)
        let reply: [UInt8]
        do {
            reply = try ControlSocket.request(path: path)
        } catch {
            printError("ipipd status: no daemon answers for tunnel \(tunnel): \(error)")
            throw ExitCode.failure
        }
        if json {
            print(String(decoding: reply, as: UTF8.self))
            return
        }
        let status = try JSONDecoder().decode(GatewayStatus.self, from: Data(reply))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        print(status.text(now: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9), terminator: "")
    }
}
