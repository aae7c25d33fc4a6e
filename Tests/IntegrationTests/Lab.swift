import Foundation
import Testing

/// A throw-away network built from real namespaces and veth pairs, for one test. Everything it creates
/// is named `ipt<tag>-…` and removed by `teardown()`: processes by PID, then the namespaces (which
/// takes their veths with them). scripts/test.sh sweeps `ipt*` leftovers should a test binary crash.
final class Lab: @unchecked Sendable {
    static let isRoot = getuid() == 0
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The ipipd binary built next to this test bundle.
    static let ipipd: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL] {
            let path = candidate.appendingPathComponent("ipipd").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return repository.appendingPathComponent(".build/debug/ipipd").path
    }()

    let tag: String
    private(set) var namespaces: [String] = []
    private var processes: [Process] = []
    private var linkCounter = 0
    let scratch: URL

    init(_ name: String) {
        tag = "ipt\(getpid() % 10000)\(name.prefix(4))"
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString.prefix(6))")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    deinit { teardown() }

    /// Creates namespace `ipt<tag>-<role>` with loopback up; returns its name.
    @discardableResult
    func namespace(_ role: String) throws -> String {
        let name = "\(tag)-\(role)"
        try sh("ip netns add \(name)")
        namespaces.append(name)
        try sh("ip -n \(name) link set lo up")
        return name
    }

    /// A veth pair between two namespaces, named `leftName` and `rightName` inside them, both up.
    func link(_ left: String, _ leftName: String, _ right: String, _ rightName: String, mtu: Int = 1500) throws {
        linkCounter += 1
        let a = "\(tag)\(linkCounter)a", b = "\(tag)\(linkCounter)b"
        try sh("ip link add \(a) mtu \(mtu) netns \(left) type veth peer name \(b) mtu \(mtu) netns \(right)")
        try sh("ip -n \(left) link set \(a) name \(leftName) && ip -n \(left) link set \(leftName) up")
        try sh("ip -n \(right) link set \(b) name \(rightName) && ip -n \(right) link set \(rightName) up")
    }

    /// Whether the gateways' uplinks receive like real NICs (`IPIPD_LAB_GRO=off` turns it off): GRO on.
    static let uplinkGRO = ProcessInfo.processInfo.environment["IPIPD_LAB_GRO"] != "off"

    /// Makes `interface` in `namespace` receive like a real NIC, as a gateway's uplink does: GRO on, in
    /// NAPI with a 50 µs flush timeout and two deferred interrupts (gro_flush_timeout,
    /// napi_defer_hard_irqs), and its veth peer in `peerNamespace` sending MTU-sized frames, as a wire
    /// delivers them (TSO off there: a veth hands a sender's TSO super-packets over whole, and uses GRO
    /// only for frames of a peer without TSO). Then the kernel merges IP-in-IP and 6in4 TCP flows before
    /// the capture sees them, as on virtio_net, ixgbe or mlx5.
    func receiveLikeANIC(_ namespace: String, _ interface: String, peer peerNamespace: String, _ peerInterface: String) throws {
        try sh(in: peerNamespace, "ethtool -K \(peerInterface) tso off >/dev/null")
        try sh(in: namespace, "ethtool -K \(interface) gro on >/dev/null && echo 50000 > /sys/class/net/\(interface)/gro_flush_timeout"
                              + " && echo 2 > /sys/class/net/\(interface)/napi_defer_hard_irqs")
    }

    /// Runs a shell command in the root namespace; throws with its output when it fails.
    @discardableResult
    func sh(_ command: String, timeout: TimeInterval = 60) throws -> String {
        let result = run(command, timeout: timeout)
        guard result.status == 0 else { throw LabError.commandFailed(command, result.status, result.output) }
        return result.output
    }

    /// Runs a shell command inside a namespace.
    @discardableResult
    func sh(in namespace: String, _ command: String, timeout: TimeInterval = 60) throws -> String {
        try sh("ip netns exec \(namespace) sh -c \(Lab.quote(command))", timeout: timeout)
    }

    func run(in namespace: String, _ command: String, timeout: TimeInterval = 60) -> (status: Int32, output: String) {
        run("ip netns exec \(namespace) sh -c \(Lab.quote(command))", timeout: timeout)
    }

    /// Runs and waits (bounded by `timeout`), returning exit status and merged stdout/stderr.
    func run(_ command: String, timeout: TimeInterval = 60) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let output = scratch.appendingPathComponent("out-\(UUID().uuidString.prefix(8))")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try! FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (127, "cannot start /bin/sh: \(error)") }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? handle.close()
            return (124, "timed out after \(timeout)s: \(command)")
        }
        process.waitUntilExit()
        try? handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: output)
        return (process.terminationStatus, text)
    }

    /// Starts a long-running program inside a namespace (`ip netns exec` replaces itself with it, so the
    /// Process's PID is the program's). Output goes to `<scratch>/<logName>.log`.
    func spawn(in namespace: String, _ arguments: [String], logName: String) throws -> Daemon {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip").resolvingIfMissing("/sbin/ip", "/bin/ip")
        process.arguments = ["netns", "exec", namespace] + arguments
        let log = scratch.appendingPathComponent("\(logName).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        processes.append(process)
        return Daemon(process: process, log: log)
    }

    /// Ends what the lab started (by PID: SIGTERM, then SIGKILL after 3 s) and deletes its namespaces.
    func teardown() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGTERM)
        }
        let deadline = Date().addingTimeInterval(3)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        for namespace in namespaces.reversed() {
            // Anything else still running inside (e.g. a helper started by a shell) ends by its PID.
            let pids = run("ip netns pids \(namespace)").output.split(separator: "\n").compactMap { Int32($0) }
            for pid in pids { kill(pid, SIGKILL) }
            _ = run("ip netns delete \(namespace)")
        }
        namespaces.removeAll()
        try? FileManager.default.removeItem(at: scratch)
    }

    /// Waits until `file` has not grown for `quiet` seconds (at most `timeout`): a capture writing it
    /// (tcpdump -U) has written what it was about to.
    static func settle(file: String, quiet: TimeInterval = 0.3, timeout: TimeInterval = 3) {
        func size() -> Int { ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0 }
        let deadline = Date().addingTimeInterval(timeout)
        var last = size(), since = Date()
        while Date() < deadline && Date().timeIntervalSince(since) < quiet {
            usleep(50_000)
            let now = size()
            if now != last { last = now; since = Date() }
        }
    }

    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// A program started by `Lab.spawn`.
struct Daemon: @unchecked Sendable {
    let process: Process
    let log: URL

    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text` (at least `occurrences` times), the process exits, or
    /// `timeout` passes.
    @discardableResult
    func waitForLog(_ text: String, occurrences: Int = 1, timeout: TimeInterval = 15) -> Bool {
        func found() -> Bool { output.components(separatedBy: text).count - 1 >= occurrences }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if found() { return true }
            if !process.isRunning { return found() }
            usleep(50_000)
        }
        return false
    }

    /// Waits until the output has not grown for `quiet` seconds (at most `timeout`): what a capture was
    /// about to print has been printed.
    func settle(quiet: TimeInterval = 0.3, timeout: TimeInterval = 3) {
        let deadline = Date().addingTimeInterval(timeout)
        var last = output.count, since = Date()
        while Date() < deadline && Date().timeIntervalSince(since) < quiet {
            usleep(50_000)
            let now = output.count
            if now != last { last = now; since = Date() }
        }
    }

    /// Sends `signal` and waits up to `timeout` for the exit; returns the elapsed seconds or nil.
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 5) -> TimeInterval? {
        let start = Date()
        kill(pid, signal)
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(10_000) }
        return process.isRunning ? nil : Date().timeIntervalSince(start)
    }
}

enum LabError: Error, CustomStringConvertible {
    case commandFailed(String, Int32, String)
    var description: String {
        switch self {
        case let .commandFailed(command, status, output): "`\(command)` exited \(status):\n\(output)"
        }
    }
}

extension URL {
    /// This URL if the file exists, otherwise the first alternative that does.
    func resolvingIfMissing(_ alternatives: String...) -> URL {
        if FileManager.default.fileExists(atPath: path) { return self }
        for alternative in alternatives where FileManager.default.fileExists(atPath: alternative) {
            return URL(fileURLWithPath: alternative)
        }
        return self
    }
}
