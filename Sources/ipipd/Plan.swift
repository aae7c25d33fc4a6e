import ArgumentParser
import IPIPCore
import IPIPDataplane

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every change `ipipd run` would make to the kernel, changing nothing.",
        discussion: """
        Validates the config, then looks at this machine (interfaces, MTUs, addresses, the current route \
        to each peer endpoint) without privileges and prints, in order, the TUN device, MTU, addresses, \
        sysctls, pinned endpoint routes, tunnel routes, capture filters and proxy-ARP entries that `run` \
        would set up. Like `netplan generate` or a terraform plan: read it before running as root.

        Exit status 0 when `run` could start here, 1 when the config is invalid or this machine lacks \
        something `run` needs (listed as problems).
        """
    )

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try loadConfigOrExit(options.path)
        let plan = KernelPlan(config: config, facts: SystemProbe.facts(for: config))
        print("ipipd plan for \(options.path): \(plan.changes.count) changes")
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
