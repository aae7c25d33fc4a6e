/// One problem found in a config file, located by file, line and key, in the GCC style that editors
/// and admins already read: `file:line:column: error: key: reason`.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    /// `note`: nothing wrong, but worth changing (a spelling that will go away).
    public enum Severity: String, Sendable { case error, warning, note }

    public var severity: Severity
    public var file: String
    public var line: Int?
    public var column: Int?
    /// The key path, e.g. `peers[0].remote`; empty for file-level problems.
    public var key: String
    public var message: String

    public init(_ severity: Severity = .error, file: String, line: Int?, column: Int? = nil, key: String, message: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return "\(location): \(severity.rawValue): " + (key.isEmpty ? "" : "\(key): ") + message
    }
}

/// The outcome of loading a config file: the config when there were no errors, and every diagnostic.
public struct ConfigLoadResult: Sendable {
    public var config: GatewayConfig?
    public var diagnostics: [ConfigDiagnostic]

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .warning } }
    public var notes: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .note } }
}
