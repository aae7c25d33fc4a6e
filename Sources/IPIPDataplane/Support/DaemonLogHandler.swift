#if canImport(Glibc)
import Glibc
#endif
import CIPIPShims
import Logging

/// ipipd's log lines, one per event, shaped for where they go.
///
/// Under systemd, whose journal standard error then is (`$JOURNAL_STREAM`), each event goes to the
/// journal as fields of its own: `MESSAGE`, `PRIORITY` (so `journalctl -p warning` filters),
/// `SYSLOG_IDENTIFIER=ipipd`, and each metadata key as a field (`PEER=`, `GHOST=`, `REASON=`…, so
/// `journalctl -u ipipd PEER=machine-a` selects); no timestamp of ipipd's, the journal keeps its own.
/// Should the journal's socket refuse a message, the line goes to standard error with a `<N>` priority
/// prefix (sd-daemon(3)), which journald files by priority just the same.
///
/// Elsewhere (a terminal, a file): `2026-12-02T03:04:05.123Z warning: message key=value` on standard
/// error, one timestamp. In both, the metadata follows the message as `key=value`, a value quoted when it
/// holds a space, a quote, `=` or a control character.
public struct DaemonLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let journal: Bool

    /// `journal`: nil to look at `$JOURNAL_STREAM`.
    public init(level: Logger.Level, journal: Bool? = nil) {
        logLevel = level
        self.journal = journal ?? (CIPIPShims_standardErrorIsJournal() == 1)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        let fields = metadata.merging(explicit ?? [:]) { $1 }.sorted { $0.key < $1.key }
        let text = Self.line(message.description, fields)
        if journal {
            let datagram = Self.journalFields(text, priority: Self.priority(level), fields)
            if datagram.withUnsafeBytes({ CIPIPShims_journalSend($0.baseAddress, $0.count) }) == 0 { return }
            Self.write("<\(Self.priority(level))>\(text)\n")
        } else {
            Self.write("\(Self.timestamp()) \(level): \(text)\n")
        }
    }

    /// A line for standard error outside the logger (a command's error, a config diagnostic), with the
    /// priority a journal files it under when standard error is one (`<N>`, sd-daemon(3)).
    public static func printLine(_ line: String, level: Logger.Level) {
        write(CIPIPShims_standardErrorIsJournal() == 1 ? "<\(priority(level))>\(line)\n" : line + "\n")
    }

    /// The message followed by its metadata, `key=value`.
    static func line(_ message: String, _ fields: [(key: String, value: Logger.Metadata.Value)]) -> String {
        fields.reduce(message) { $0 + " \($1.key)=\(quoted("\($1.value)"))" }
    }

    /// A value as it goes behind `key=`: bare when it is one plain word, quoted (with `\"` and `\\`) otherwise.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy {
            $0.value > 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "=" && $0 != "\\"
        }
        if plain { return value }
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// syslog(3)'s levels: swift-log's trace and debug are both debug (7).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A journal field name for a metadata key: upper case, letters, digits and `_`, not starting with
    /// `_` or a digit (journald keeps those for itself or refuses them).
    static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
        while name.first == "_" { name.removeFirst() }
        if name.first?.isNumber != false { name = "IPIPD_" + name }
        return String(name.prefix(64))
    }

    /// journald's native protocol: `KEY=value` lines; a value with a newline as `KEY`, newline, its length
    /// (64-bit little-endian), the value, newline.
    static func journalFields(_ message: String, priority: Int, _ fields: [(key: String, value: Logger.Metadata.Value)]) -> [UInt8] {
        var datagram: [UInt8] = []
        func append(_ name: String, _ value: String) {
            let bytes = Array(value.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                datagram += Array(name.utf8) + [UInt8(ascii: "\n")]
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { datagram += $0 }
                datagram += bytes + [UInt8(ascii: "\n")]
            } else {
                datagram += Array("\(name)=".utf8) + bytes + [UInt8(ascii: "\n")]
            }
        }
        append("MESSAGE", message)
        append("PRIORITY", "\(priority)")
        append("SYSLOG_IDENTIFIER", "ipipd")
        for (key, value) in fields { append(fieldName(key), "\(value)") }
        return datagram
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))T"
            + "\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2)).\(padded(now.tv_nsec / 1_000_000, 3))Z"
    }

    /// One write(2) per line, so that lines from several threads never interleave.
    static func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = retryOnInterrupt { Glibc.write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset) }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
