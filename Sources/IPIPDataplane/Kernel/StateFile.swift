import IPIPCore

/// What a running ipipd has changed in the kernel beyond its TUN device, kept in
/// `<runtime-dir>/<tunnel>.state` as plain `key value` lines an admin can read:
///
///     pid 4242
///     sysctl net.ipv4.ip_forward 0        # the value before ipipd changed it
///     pin 203.0.113.86 198.51.100.1 eth0  # endpoint, gateway (or -), interface
final class StateFile {
    struct Pin: Equatable {
        var endpoint: IPv4Address
        var gateway: IPv4Address?
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

    /// Reads what a predecessor recorded. A symbolic link in the state file's place was not made by ipipd:
    /// it is removed (never followed) and reported, and the record starts empty.
    /// Returns true when it removed such a link.
    @discardableResult
    func load() throws(SystemError) -> Bool {
        record = Record()
        if directory.isSymbolicLink(name) {
            directory.remove(name)
            return true
        }
        if let text = try directory.read(name) { record = Self.parse(text) }
        return false
    }

    static func parse(_ text: String) -> Record {
        var record = Record()
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            switch fields.first {
            case "pid" where fields.count == 2: record.pid = Int32(fields[1])
            case "sysctl" where fields.count == 3: record.sysctls[fields[1]] = fields[2]
            case "pin" where fields.count == 4:
                if let endpoint = IPv4Address(fields[1]) {
                    record.pins.append(Pin(endpoint: endpoint, gateway: IPv4Address(fields[2]), interface: fields[3]))
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

    /// Written to a new file and renamed, so a crash never leaves half a record.
    func save() throws(SystemError) {
        try directory.write(name, Self.render(record))
    }

    func remove() {
        directory.remove(name)
    }
}
