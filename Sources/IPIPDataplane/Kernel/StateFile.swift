#if canImport(Glibc)
import Glibc
#endif
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

    let path: String
    var record = Record()

    init(path: String) { self.path = path }

    func load() throws(SystemError) {
        guard access(path, F_OK) == 0 else { record = Record(); return }
        record = Self.parse(try readSmallFile(path))
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

    /// Written to a temporary file and renamed, so a crash never leaves half a record.
    func save() throws(SystemError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError.fromErrno("write \(temporary)") }
        let bytes = Array(Self.render(record).utf8)
        let written = write(fd, bytes, bytes.count)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else { throw SystemError.fromErrno("write \(path)") }
    }

    func remove() {
        unlink(path)
    }
}
