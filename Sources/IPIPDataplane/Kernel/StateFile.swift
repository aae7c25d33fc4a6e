#if canImport(Glibc)
import Glibc
#endif
import IPIPCore

/// What a running ipipd has changed in the kernel beyond its TUN device, kept in
/// `<runtime-dir>/<tunnel>.state` as plain `key value` lines an admin can read:
///
///     pid 4242
///     sysctl net.ipv4.ip_forward 0        # the value before ipipd changed it
///     pin 203.0.113.86 198.51.100.1 eth0  # endpoint, gateway (or -), interface (IPv6 for an IPv6 underlay)
///
/// and, while the process is root, in `<tunnel>.state.root` too: after the daemon drops privileges its
/// user rewrites the first (a reload's pins), and root trusts at the next start only a file of its own.
final class StateFile {
    struct Pin: Equatable {
        /// Of either family (an IPv6 underlay's endpoints are IPv6), the gateway of the same.
        var endpoint: IPAddress
        var gateway: IPAddress?
        var interface: String
    }

    struct Record: Equatable {
        var pid: Int32?
        var sysctls: [String: String] = [:]
        var pins: [Pin] = []
    }

    let directory: RuntimeDirectory
    let name: String
    var record = Record()

    init(directory: RuntimeDirectory, name: String) {
        self.directory = directory
        self.name = name
    }

    var path: String { "\(directory.path)/\(name)" }
    /// Root's copy, written only while the process is root (before it drops privileges): the daemon's
    /// user owns the runtime directory and may rewrite `name` between runs, but cannot make a file of
    /// root's.
    var rootName: String { name + ".root" }

    /// What `load` found besides the record it kept.
    struct Loaded {
        /// A symbolic link stood where a state file goes (removed, never followed).
        var removedLink = false
        /// The record of the state file that another user wrote (the daemon's unprivileged user, read
        /// by root): kept for the log, never acted on.
        var distrusted: Record?
        /// That file existed without root's copy beside it.
        var rootCopyMissing = false
    }

    /// Reads what a predecessor recorded, trusting only a file that this user wrote: the state file
    /// when it is this user's, otherwise (root reading what the unprivileged daemon rewrote) root's copy.
    /// A symbolic link in a state file's place was not made by ipipd: it is removed, never followed.
    func load() throws(SystemError) -> Loaded {
        record = Record()
        var loaded = Loaded()
        for file in [name, rootName] where directory.isSymbolicLink(file) {
            directory.remove(file)
            loaded.removedLink = true
        }
        guard let written = try directory.readOwned(name) else { return loaded }
        if written.ownedByCaller {
            record = Self.parse(written.text)
            return loaded
        }
        loaded.distrusted = Self.parse(written.text)
        if let copy = try directory.readOwned(rootName), copy.ownedByCaller {
            record = Self.parse(copy.text)
        } else {
            loaded.rootCopyMissing = true
        }
        return loaded
    }

    static func parse(_ text: String) -> Record {
        var record = Record()
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            switch fields.first {
            case "pid" where fields.count == 2: record.pid = Int32(fields[1])
            case "sysctl" where fields.count == 3: record.sysctls[fields[1]] = fields[2]
            case "pin" where fields.count == 4:
                if let endpoint = IPAddress(fields[1]) {
                    let gateway = IPAddress(fields[2]).flatMap { $0.isIPv6 == endpoint.isIPv6 ? $0 : nil }
                    record.pins.append(Pin(endpoint: endpoint, gateway: gateway, interface: fields[3]))
                }
            default: continue
            }
        }
        return record
    }

    static func render(_ record: Record) -> String {
        var text = "# ipipd state: what this instance changed beyond its TUN device (removed on a clean exit)\n"
        if let pid = record.pid { text += "pid \(pid)\n" }
        for key in record.sysctls.keys.sorted() { text += "sysctl \(key) \(record.sysctls[key]!)\n" }
        for pin in record.pins { text += "pin \(pin.endpoint) \(pin.gateway.map { "\($0)" } ?? "-") \(pin.interface)\n" }
        return text
    }

    /// Written to a new file and renamed, so a crash never leaves half a record; while the process is
    /// root, root's copy too.
    func save() throws(SystemError) {
        let text = Self.render(record)
        try directory.write(name, text)
        if geteuid() == 0 { try directory.write(rootName, text) }
    }

    func remove() {
        directory.remove(name)
        directory.remove(rootName)
    }
}
