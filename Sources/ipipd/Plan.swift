import ArgumentParser
import IPIPCore
import IPIPDataplane

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every change `ipipd run` would make to the kernel, changing nothing.",
        discussion: """
        Validates the config, then looks at this machine (interfaces, MTUs, addresses, the current route \
        to each peer endpoint) without privileges and prints, in order, every step `run` would take: the \
        TUN device, MTU, addresses, sysctls, pinned endpoint routes, tunnel routes, the protocol claim, \
        raw sockets, capture filters, the ingress program, proxy-ARP captures and entries, the control \
        socket and the metrics listener. `run` takes exactly these steps in this order and logs each one \
        as `step N/M: ...` with the same text. Like `netplan generate` or a terraform plan: read it before \
        running as root.

        Exit status 0 when `run` could start here, 1 when the config is invalid or this machine lacks \
        something `run` needs (listed as problems).
        """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let config = try loadConfigOrExit(options.path)
        let plan = KernelPlan(config: config, facts: SystemProbe.facts(for: config),
                              controlSocket: Gateway.controlSocketPath(runtimeDirectory: runtime.directory, tunnel: config.tunnel.name))
        print("ipipd plan for \(options.path): \(plan.changes.count) steps")
        for (index, change) in plan.changes.enumerated() {
            print(String(format: "%3d. ", index + 1) + change.description)
        }
        if !plan.warnings.isEmpty {
            print("\nwarnings:")
            for warning in plan.warnings { print("  - \(warning)") }
        }
        if !plan.notes.isEmpty {
            print("\nnotes:")
            for note in plan.notes { print("  - \(note)") }
        }
        if !plan.problems.isEmpty {
            print("\nproblems (run would refuse to start on this machine):")
            for problem in plan.problems { print("  - \(problem)") }
            throw ExitCode.failure
        }
    }
}
