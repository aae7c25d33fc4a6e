import Yams

/// Reads a gateway config from YAML text (netplan's style: nested maps, lists, `#` comments) and checks
/// it completely: every error is reported, with its line, before anything could be applied.
public enum ConfigLoader {
    public static func load(yaml text: String, file: String) -> ConfigLoadResult {
        let beyondLimits = YAMLLimits.check(text, file: file)
        guard beyondLimits.isEmpty else { return ConfigLoadResult(config: nil, diagnostics: beyondLimits) }
        // The parser's word for a tab in the indentation ("found character that cannot start any token")
        // names neither the tab nor the fix.
        let tabs = indentationTabs(text, file: file)
        guard tabs.isEmpty else { return ConfigLoadResult(config: nil, diagnostics: tabs) }
        var reader = NodeReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text, .basic)   // every value is read as text, by ipipd: no regex per scalar
        } catch let error as YamlError {
            if case let .duplicatedKeysInMapping(duplicates, context) = error, let key = duplicates.first {
                return ConfigLoadResult(config: nil, diagnostics: [duplicateKey(key, first: context.mark, in: text, file: file)])
            }
            return ConfigLoadResult(config: nil, diagnostics: [reader.diagnostic(for: error)])
        } catch {
            return ConfigLoadResult(config: nil, diagnostics: [
                ConfigDiagnostic(file: file, line: nil, key: "", message: "cannot parse: \(error)"),
            ])
        }
        guard let root else {
            reader.error(nil, key: "", "the file is empty; it must describe at least `uplink` and `peers`")
            return ConfigLoadResult(config: nil, diagnostics: reader.diagnostics)
        }
        // Semantic checks run on whatever could be read, so that one bad value does not hide the rest.
        guard let config = reader.readGateway(root) else {
            return ConfigLoadResult(config: nil, diagnostics: reader.diagnostics)
        }
        var validator = ConfigValidator(config: config, locations: reader.locations, file: file, unreadable: reader.unreadable)
        validator.validate()
        let diagnostics = (reader.diagnostics + validator.diagnostics).sorted {
            ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0)
        }
        let hasErrors = diagnostics.contains { $0.severity == .error }
        return ConfigLoadResult(config: hasErrors ? nil : config, diagnostics: diagnostics)
    }
}

extension ConfigLoader {
    /// Every line whose indentation holds a tab: YAML indents with spaces only.
    static func indentationTabs(_ text: String, file: String) -> [ConfigDiagnostic] {
        var diagnostics: [ConfigDiagnostic] = []
        for (index, line) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let indentation = line.prefix { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard let tab = indentation.firstIndex(of: UInt8(ascii: "\t")) else { continue }
            diagnostics.append(ConfigDiagnostic(file: file, line: index + 1, column: line.distance(from: line.startIndex, to: tab) + 1, key: "",
                                                message: "a tab in the indentation: YAML indents with spaces only; replace the tab with spaces"))
        }
        return diagnostics
    }

    /// A key written twice in one mapping, named by its whole path, at its second occurrence, with the
    /// line of the first (the parser names only the key, at the first).
    static func duplicateKey(_ key: String, first: Mark, in text: String, file: String) -> ConfigDiagnostic {
        let lines = text.components(separatedBy: "\n")
        // The second occurrence: the same key at the same column further down, before the mapping ends
        // (a line indented less), or further along the same line (a flow mapping).
        var second: (line: Int, column: Int)?
        let firstLine = first.line - 1, column = first.column - 1
        if lines.indices.contains(firstLine) {
            let rest = lines[firstLine].dropFirst(column + key.count)
            if let range = rest.range(of: "\(key):") ?? rest.range(of: "\(key) :") {
                second = (first.line, column + key.count + rest.distance(from: rest.startIndex, to: range.lowerBound) + 1)
            }
            var number = firstLine + 1
            while second == nil && number < lines.count {
                let line = lines[number]
                let indentation = line.prefix { $0 == " " || $0 == "-" }.count
                let content = line.dropFirst(indentation)
                if !content.isEmpty && !content.hasPrefix("#") {
                    if indentation < column { break }
                    if indentation == column && (content.hasPrefix("\(key):") || content.hasPrefix("\(key) :")) { second = (number + 1, column + 1) }
                }
                number += 1
            }
        }
        // The path, from a copy of the text in which the second occurrence has another name.
        var path = key
        if let second {
            var copy = lines
            let line = Array(copy[second.line - 1])
            copy[second.line - 1] = String(line[..<(second.column - 1)]) + "ipipd-duplicate-\(key)" + String(line[(second.column - 1 + key.count)...])
            if let root = try? Yams.compose(yaml: copy.joined(separator: "\n"), .basic),
               let found = keyPath(to: "ipipd-duplicate-\(key)", in: root) {
                path = String(found.dropLast("ipipd-duplicate-\(key)".count)) + key
            }
        }
        return ConfigDiagnostic(file: file, line: second?.line ?? first.line, column: second?.column ?? first.column, key: path,
                                message: "duplicate key: already given at line \(first.line)\(second == nil ? "" : ", column \(first.column)"); "
                                    + "a key may appear once in a mapping (which one would count?)")
    }

    /// The path (`peers[0].remote`) of the first mapping key called `name` in `node`.
    static func keyPath(to name: String, in node: Node, prefix: String = "") -> String? {
        switch node {
        case .mapping(let mapping):
            for (keyNode, value) in mapping {
                let key = keyNode.string ?? ""
                let path = prefix.isEmpty ? key : "\(prefix).\(key)"
                if key == name { return path }
                if let found = keyPath(to: name, in: value, prefix: path) { return found }
            }
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() {
                if let found = keyPath(to: name, in: item, prefix: "\(prefix)[\(index)]") { return found }
            }
        default:
            break
        }
        return nil
    }

    /// The TUN device name a file asks for, read leniently (the rest of the file may be invalid): what
    /// `status` and `reload` need to find the daemon's control socket.
    /// Only the top-level `tunnel:` block is parsed when the file has one of its own (a hub's file has
    /// 30,000 lines, and `status` should answer at once); any other file is parsed whole.
    public static func tunnelName(yaml text: String) -> String {
        var yaml = text
        // Lines as bytes: splitting a 3 MB String into Characters costs more than the whole lookup.
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if let start = lines.firstIndex(where: { $0.starts(with: "tunnel:".utf8) }) {
            var end = start + 1
            while end < lines.count, lines[end].isEmpty || lines[end].first == UInt8(ascii: " ") || lines[end].first == UInt8(ascii: "#") {
                end += 1
            }
            yaml = String(decoding: text.utf8[lines[start].startIndex..<lines[end - 1].endIndex], as: UTF8.self)
        } else if !text.contains("tunnel") {
            return GatewayConfig.Tunnel.defaultName
        }
        guard YAMLLimits.check(yaml, file: "").isEmpty, let root = try? Yams.compose(yaml: yaml, .basic),
              let name = root.mapping?["tunnel"]?.mapping?["name"]?.string else {
            return GatewayConfig.Tunnel.defaultName
        }
        return name
    }
}

/// Where each key of the file was, so that semantic checks made after parsing can name the line.
/// Where each key of a config is in its file, found on demand by walking the YAML node tree along the
/// key's path (`peers[3].routes[2]`): only messages need positions, so a hub's 100,000 prefixes cost no
/// table of them.
public struct SourceLocations: @unchecked Sendable {   // Node is an immutable value tree
    var root: Node?
    /// The position in the file's list of each peer / ghost host that could be read (entries with
    /// unreadable values are left out of the config but keep their numbers in messages).
    var peerIndex: [Int] = []
    var ghostIndex: [Int] = []
    /// Per peer read: the position in its `routes` list of each prefix that could be read.
    var routePositions: [[Int]] = []

    public func line(of key: String) -> Int? { node(at: key)?.mark?.line }
    func column(of key: String) -> Int? { node(at: key)?.mark?.column }

    /// The node at `key`: names separated by dots, list positions in brackets.
    func node(at key: String) -> Node? {
        var node = root
        for component in key.split(separator: ".") {
            var name = Substring(component)
            var positions: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "["), let position = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) {
                positions.insert(position, at: 0)
                name = name[..<open]
            }
            node = node?.mapping?[String(name)]
            for position in positions {
                guard let list = node?.sequence, list.indices.contains(position) else { return nil }
                node = list[position]
            }
        }
        return node
    }
}

/// Walks the YAML node tree, recording every problem instead of stopping at the first.
struct NodeReader {
    let file: String
    var diagnostics: [ConfigDiagnostic] = []
    var locations = SourceLocations()
    /// Set when a value could not be read; the config is then incomplete and not validated further.
    var incomplete = false
    /// What could not be read, so that the checks that depend on it stay silent: one mistake, one error.
    var unreadable = ConfigValidator.Unreadable()

    init(file: String) { self.file = file }

    mutating func error(_ node: Node?, key: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.error, file: file, line: node?.mark?.line,
                                            column: node?.mark?.column, key: key, message: message))
    }

    func diagnostic(for error: YamlError) -> ConfigDiagnostic {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let detail = context.map { "\(problem) \($0.text)" } ?? problem
            return ConfigDiagnostic(file: file, line: mark.line, column: mark.column, key: "",
                                    message: "YAML syntax: \(detail)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return ConfigDiagnostic(file: file, line: context.mark.line, column: context.mark.column, key: "",
                                    message: "duplicate key(s) \(duplicates.joined(separator: ", ")) in one mapping")
        default:
            return ConfigDiagnostic(file: file, line: nil, key: "", message: "YAML: \(error)")
        }
    }

    // MARK: - Structure

    /// Reads a mapping, reporting unknown keys (typos) and missing required ones.
    mutating func fields(of node: Node, key: String, allowed: [String], required: [String]) -> [String: Node]? {
        guard let mapping = node.mapping else {
            error(node, key: key, "expected a mapping of keys (\(allowed.joined(separator: ", "))), found \(kind(of: node))")
            incomplete = true
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            let name = keyNode.string ?? ""
            guard allowed.contains(name) else {
                let hint = closest(to: name, in: allowed).map { "; did you mean `\($0)`?" } ?? ""
                error(keyNode, key: key.isEmpty ? name : "\(key).\(name)", "unknown key\(hint) (known here: \(allowed.joined(separator: ", ")))")
                continue
            }
            result[name] = value
        }
        for name in required where result[name] == nil {
            error(node, key: key.isEmpty ? name : "\(key).\(name)", "required key is missing")
            incomplete = true
        }
        return result
    }

    /// `key` is built only for a message (a hub's config reads 100,000 values).
    mutating func scalar(_ node: Node, key: @autoclosure () -> String) -> String? {
        guard case .scalar(let scalar) = node else {
            error(node, key: key(), "expected a single value, found \(kind(of: node))")
            incomplete = true
            return nil
        }
        return scalar.string
    }

    mutating func sequence(_ node: Node, key: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            error(node, key: key, "expected a list, found \(kind(of: node))")
            incomplete = true
            return nil
        }
        return Array(sequence)
    }

    func kind(of node: Node) -> String {
        switch node {
        case .scalar(let scalar): "the value `\(scalar.string)`"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    // MARK: - Typed values

    mutating func address(_ node: Node, key: String) -> IPv4Address? {
        guard let text = scalar(node, key: key) else { return nil }
        if let address = IPv4Address(text) { return address }
        let hint = text.contains("/") ? " (a single address, without a prefix length)" : ""
        error(node, key: key, "`\(text)` is not an IPv4 address in dotted-quad form\(hint)")
        incomplete = true
        return nil
    }

    mutating func unicastAddress(_ node: Node, key: String) -> IPv4Address? {
        guard let address = address(node, key: key) else { return nil }
        guard address.isUnicastCandidate, !address.isLoopback else {
            error(node, key: key, "\(address) is not a usable unicast address")
            return address
        }
        return address
    }

    mutating func prefix(_ node: Node, key: @autoclosure () -> String) -> IPv4Prefix? {
        guard let text = scalar(node, key: key()) else { return nil }
        guard let prefix = IPv4Prefix(text) else {
            error(node, key: key(), "`\(text)` is not an IPv4 prefix (write it as address/length, e.g. 203.0.113.0/24)")
            incomplete = true
            return nil
        }
        if prefix.hasHostBitsSet {
            error(node, key: key(), "\(text) has host bits set; did you mean \(prefix.network)?")
        }
        return prefix.network
    }

    /// A prefix of either family: IPv6 when the text has a ':'.
    mutating func anyPrefix(_ node: Node, key: @autoclosure () -> String) -> IPPrefix? {
        guard case .scalar(let scalar) = node, scalar.string.utf8.contains(UInt8(ascii: ":")) else {
            return prefix(node, key: key()).map(IPPrefix.v4)
        }
        let text = scalar.string
        guard let prefix = IPv6Prefix(text) else {
            error(node, key: key(), "`\(text)` is not an IPv6 prefix (write it as address/length, e.g. 2001:db8:b::/64)")
            incomplete = true
            return nil
        }
        if prefix.hasHostBitsSet {
            error(node, key: key(), "\(text) has host bits set; did you mean \(prefix.network)?")
        }
        return .v6(prefix.network)
    }

    /// A unicast address of either family (IPv6 when the text has a ':'): an underlay endpoint.
    mutating func unicastAnyAddress(_ node: Node, key: String) -> IPAddress? {
        guard case .scalar(let scalar) = node, scalar.string.utf8.contains(UInt8(ascii: ":")) else {
            return unicastAddress(node, key: key).map(IPAddress.v4)
        }
        return unicastAddress6(node, key: key).map(IPAddress.v6)
    }

    /// A UDP port, 1–65535.
    mutating func port(_ node: Node, key: String) -> UInt16? {
        integer(node, key: key, in: 1...65535, what: "UDP port").map { UInt16($0) }
    }

    mutating func unicastAddress6(_ node: Node, key: String) -> IPv6Address? {
        guard let text = scalar(node, key: key) else { return nil }
        guard let address = IPv6Address(text) else {
            let hint = text.contains("/") ? " (a single address, without a prefix length)" : ""
            error(node, key: key, "`\(text)` is not an IPv6 address\(hint)")
            incomplete = true
            return nil
        }
        guard address.isUnicastCandidate, !address.isLinkLocal else {
            error(node, key: key, "\(address) is not a usable unicast address (not ::, ::1, multicast, IPv4-mapped or link-local)")
            return address
        }
        return address
    }

    mutating func interfaceName(_ node: Node, key: String) -> String? {
        guard let name = scalar(node, key: key) else { return nil }
        // The kernel's rules (dev_valid_name): 1–15 bytes, not "." or "..", no '/', ':' or whitespace.
        let valid = !name.isEmpty && name.utf8.count <= 15 && name != "." && name != ".."
            && !name.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace })
        if !valid {
            error(node, key: key, "`\(name)` is not a valid interface name (1–15 characters, no '/', ':' or spaces)")
        }
        return name
    }

    /// `word`: a word the key also takes instead of a number (`auto`, `inherit`), for the message.
    mutating func integer(_ node: Node, key: String, in range: ClosedRange<Int>, what: String, or word: String? = nil) -> Int? {
        guard let text = scalar(node, key: key) else { return nil }
        let value = text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        guard let value, range.contains(value) else {
            error(node, key: key, "`\(text)` is not a valid \(what) (\(range.lowerBound)–\(range.upperBound)\(word.map { ", or `\($0)`" } ?? ""))")
            incomplete = true
            return nil
        }
        return value
    }

    mutating func boolean(_ node: Node, key: String) -> Bool? {
        guard let text = scalar(node, key: key) else { return nil }
        // The spellings systemd.syntax(7) accepts, which YAML 1.1 readers also know.
        switch text.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default:
            error(node, key: key, "`\(text)` is not a boolean (yes/no, true/false, on/off)")
            incomplete = true
            return nil
        }
    }

    // MARK: - The gateway file

    /// Reads what can be read. A value that cannot be read is reported and left out (an unreadable
    /// uplink becomes a placeholder that matches no real address), so that the caller can still run
    /// the semantic checks; `incomplete` then keeps the result from being used.
    mutating func readGateway(_ root: Node) -> GatewayConfig? {
        locations.root = root
        guard let top = fields(of: root, key: "", allowed: ConfigReference.allowed(in: ""),
                               required: ["uplink", "peers"]) else { return nil }
        let uplink = top["uplink"].flatMap { readUplink($0) }
        if uplink == nil { unreadable.uplink = true }
        let tunnel = top["tunnel"].map { readTunnel($0) } ?? GatewayConfig.Tunnel()
        let peers = top["peers"].map { readPeers($0) } ?? []
        let ghosts = top["ghost-hosts"].map { readGhostHosts($0) } ?? []
        let proxyARP = top["proxy-arp"].map { readProxyARP($0) } ?? GatewayConfig.ProxyARP()
        let metrics = top["metrics"].flatMap { readMetrics($0) }
        let fouPorts = top["fou"].map { readFOUPorts($0) } ?? []
        if uplink == nil { incomplete = true }
        return GatewayConfig(uplink: uplink ?? GatewayConfig.Uplink(interface: "", address: .any),
                             tunnel: tunnel, peers: peers, ghostHosts: ghosts, proxyARP: proxyARP, metricsListen: metrics, fouPorts: fouPorts)
    }

    mutating func readUplink(_ node: Node) -> GatewayConfig.Uplink? {
        guard let f = fields(of: node, key: "uplink", allowed: ConfigReference.allowed(in: "uplink"),
                             required: ["interface", "address"]) else { return nil }
        let interface = f["interface"].flatMap { interfaceName($0, key: "uplink.interface") }
        let address = f["address"].flatMap { unicastAnyAddress($0, key: "uplink.address") }
        // An unreadable value is reported and marks the file incomplete; `false` only fills the gap.
        let standby = f["standby-when-absent"].flatMap { boolean($0, key: "uplink.standby-when-absent") } ?? false
        guard let interface, let address else { return nil }
        return GatewayConfig.Uplink(interface: interface, address: address, standbyWhenAbsent: standby)
    }

    mutating func readTunnel(_ node: Node) -> GatewayConfig.Tunnel {
        var tunnel = GatewayConfig.Tunnel()
        let incompleteBefore = incomplete
        defer { if incomplete && !incompleteBefore { unreadable.tunnel = true } }
        guard let f = fields(of: node, key: "tunnel", allowed: ConfigReference.allowed(in: "tunnel"),
                             required: []) else { return tunnel }
        if let node = f["name"], let name = interfaceName(node, key: "tunnel.name") { tunnel.name = name }
        if let node = f["address"] { tunnel.address = unicastAddress(node, key: "tunnel.address") }
        if let node = f["address6"] { tunnel.address6 = unicastAddress6(node, key: "tunnel.address6") }
        // `auto` (what `check` prints for a value left out) is the default: the uplink MTU - 20.
        if let node = f["mtu"], node.scalar?.string != "auto" {
            // 68 is IPv4's minimum (RFC 791); 65515 leaves room for the outer header in 65535.
            tunnel.mtu = integer(node, key: "tunnel.mtu", in: 68...65515, what: "MTU", or: "auto")
        }
        if let node = f["ttl"], let text = scalar(node, key: "tunnel.ttl") {
            if text == "inherit" {
                tunnel.ttl = .inherit
            } else if text == "0" {
                error(node, key: "tunnel.ttl", "0 is not a TTL; write `inherit` (what systemd-networkd spells TTL=0)")
                incomplete = true
            } else if let ttl = integer(node, key: "tunnel.ttl", in: 1...255, what: "TTL", or: "inherit") {
                tunnel.ttl = .fixed(UInt8(ttl))
            }
        }
        if let node = f["tos"], let text = scalar(node, key: "tunnel.tos") {
            if text == "inherit" {
                tunnel.tos = .inherit
            } else if let tos = integer(node, key: "tunnel.tos", in: 0...255, what: "TOS byte", or: "inherit") {
                tunnel.tos = .fixed(UInt8(tos))
                if tos & 0b11 != 0 {
                    diagnostics.append(ConfigDiagnostic(.warning, file: file, line: node.mark?.line,
                        column: node.mark?.column, key: "tunnel.tos",
                        message: "the low two bits are the ECN field, which ipipd copies from the inner packet; they are ignored"))
                }
            }
        }
        if let node = f["pmtudisc"], let value = boolean(node, key: "tunnel.pmtudisc") { tunnel.pmtudisc = value }
        if let node = f["min-pmtu"], let value = integer(node, key: "tunnel.min-pmtu", in: 68...65535, what: "path MTU floor") {
            tunnel.minimumPathMTU = value
        }
        if let node = f["delivery"], let text = scalar(node, key: "tunnel.delivery") {
            if let delivery = GatewayConfig.Delivery(rawValue: text) {
                tunnel.delivery = delivery
            } else if text == GatewayConfig.Delivery.formerRoutedSpelling {
                tunnel.delivery = .routed
                diagnostics.append(ConfigDiagnostic(.note, file: file, line: node.mark?.line, column: node.mark?.column,
                    key: "tunnel.delivery", message: "`libnet` is the former name of `routed` (ipipd routes decapsulated packets "
                        + "itself, through a raw socket) and means the same; write `routed`, the old name will go away"))
            } else {
                error(node, key: "tunnel.delivery", "`\(text)` is not `kernel` (decapsulated packets received on the TUN device, "
                      + "as Linux's ipip does) or `routed` (routed by ipipd, reinjected through a raw socket)")
                incomplete = true
            }
        }
        if let node = f["clamp-mss"], let text = scalar(node, key: "tunnel.clamp-mss") {
            switch text {
            case "off": tunnel.clampMSS = .off
            case "auto": tunnel.clampMSS = .auto
            default:
                if let value = integer(node, key: "tunnel.clamp-mss", in: TCPMSSClamp.smallestFixed...65495, what: "MSS", or: "auto` or `off") {
                    tunnel.clampMSS = .fixed(value)
                }
            }
        }
        if let node = f["reinjection-mark"], let value = integer(node, key: "tunnel.reinjection-mark", in: 0...Int(UInt32.max), what: "packet mark") {
            tunnel.reinjectionMark = UInt32(value)
        }
        if let node = f["encaplimit"], let text = scalar(node, key: "tunnel.encaplimit") {
            if text == "none" {
                tunnel.encapsulationLimit = nil
            } else if let value = integer(node, key: "tunnel.encaplimit", in: 0...255, what: "encapsulation limit", or: "none") {
                tunnel.encapsulationLimit = UInt8(value)
            }
        }
        return tunnel
    }

    mutating func readPeers(_ node: Node) -> [GatewayConfig.Peer] {
        guard let items = sequence(node, key: "peers") else {
            unreadable.peers = true
            return []
        }
        var peers: [GatewayConfig.Peer] = []
        for (index, item) in items.enumerated() {
            let key = "peers[\(index)]"
            guard let f = fields(of: item, key: key, allowed: ConfigReference.allowed(in: "peers[]"),
                                 required: ["name", "remote"]) else {
                unreadable.peers = true
                continue
            }
            let name = f["name"].flatMap { scalar($0, key: "\(key).name") }
            if let name, let nameNode = f["name"],
               name.isEmpty || name.count > 32 || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
                error(nameNode, key: "\(key).name",
                      "`\(name)` is not a usable peer name (1–32 letters, digits, '-', '_' or '.'; it labels logs and metrics)")
            }
            let remote = f["remote"].flatMap { unicastAnyAddress($0, key: "\(key).remote") }
            let encapsulation = f["encap"].flatMap { readEncapsulation($0, key: "\(key).encap") }
            var routes: [IPPrefix] = [], positions: [Int] = []
            if let routesNode = f["routes"], let list = sequence(routesNode, key: "\(key).routes") ?? { unreadable.routes = true; return nil }() {
                for (routeIndex, routeNode) in list.enumerated() {
                    if let prefix = anyPrefix(routeNode, key: "\(key).routes[\(routeIndex)]") {
                        routes.append(prefix)
                        positions.append(routeIndex)
                    } else {
                        unreadable.routes = true
                    }
                }
            }
            var acceptSources: [IPPrefix]?
            if let sourcesNode = f["accept-sources"], let list = sequence(sourcesNode, key: "\(key).accept-sources") {
                acceptSources = list.enumerated().compactMap { sourceIndex, sourceNode in
                    anyPrefix(sourceNode, key: "\(key).accept-sources[\(sourceIndex)]")
                }
            }
            if let name, let remote {
                peers.append(GatewayConfig.Peer(name: name, remote: remote, routes: routes, acceptSources: acceptSources,
                                                encapsulation: encapsulation))
                locations.peerIndex.append(index)
                locations.routePositions.append(positions)
            } else {
                incomplete = true
                unreadable.peers = true
            }
        }
        return peers
    }

    /// `encap: {type: fou|gue|none, dport: P, dport6: P, sport: auto|N, csum: yes|no}`: iproute2's
    /// `encap`, `encap-dport`, `encap-sport`, `[no]encap-csum`. nil: none (or unreadable, reported).
    mutating func readEncapsulation(_ node: Node, key: String) -> UDPEncapsulation? {
        guard let f = fields(of: node, key: key, allowed: ConfigReference.allowed(in: "peers[].encap"), required: ["type"]),
              let typeNode = f["type"], let type = scalar(typeNode, key: "\(key).type") else { return nil }
        let kind: UDPEncapsulation.Kind
        switch type {
        case "none":
            for name in ["dport", "dport6", "sport", "csum"] where f[name] != nil {
                error(f[name], key: "\(key).\(name)", "type: none sends no UDP header: \(name) is for fou and gue; remove it")
            }
            return nil
        case "fou": kind = .fou
        case "gue": kind = .gue
        default:
            error(typeNode, key: "\(key).type", "`\(type)` is not `fou` (Foo-over-UDP), `gue` (Generic UDP Encapsulation) or `none` "
                  + "(the IP header alone, protocol 4 or 41)")
            incomplete = true
            return nil
        }
        guard let dportNode = f["dport"] else {
            error(node, key: "\(key).dport", "required key is missing: the UDP port the peer receives on (its `ip fou add port`)")
            incomplete = true
            return nil
        }
        guard let destinationPort = port(dportNode, key: "\(key).dport") else { return nil }
        var encapsulation = UDPEncapsulation(kind: kind, destinationPort: destinationPort)
        if let node = f["dport6"] {
            if kind == .gue {
                error(node, key: "\(key).dport6", "a GUE header names the inner protocol: IPv6 goes to dport too; remove dport6")
            }
            encapsulation.destinationPort6 = port(node, key: "\(key).dport6")
        }
        if let node = f["sport"], let text = scalar(node, key: "\(key).sport") {
            if text == "auto" {
                encapsulation.sourcePort = .auto
            } else if let value = integer(node, key: "\(key).sport", in: 1...65535, what: "UDP port", or: "auto") {
                encapsulation.sourcePort = .fixed(UInt16(value))
            }
        }
        if let node = f["csum"] { encapsulation.checksum = boolean(node, key: "\(key).csum") }
        return encapsulation
    }

    /// `fou: [{port: P, ipproto: 4|41}, {port: P, gue: yes}]`: what `ip fou add` opens for receiving.
    mutating func readFOUPorts(_ node: Node) -> [FOUPort] {
        guard let items = sequence(node, key: "fou") else { return [] }
        var ports: [FOUPort] = []
        for (index, item) in items.enumerated() {
            let key = "fou[\(index)]"
            guard let f = fields(of: item, key: key, allowed: ConfigReference.allowed(in: "fou[]"), required: ["port"]),
                  let portNode = f["port"], let number = port(portNode, key: "\(key).port") else { continue }
            let gue = f["gue"].flatMap { boolean($0, key: "\(key).gue") } ?? false
            if gue {
                if let node = f["ipproto"] {
                    error(node, key: "\(key).ipproto", "a GUE port takes both inner families (the GUE header names each packet's): remove ipproto")
                }
                ports.append(FOUPort(port: number, payload: .gue))
                continue
            }
            guard let node = f["ipproto"] else {
                error(item, key: "\(key).ipproto", "required key is missing: the inner protocol of every packet on the port, "
                      + "4 (IPv4) or 41 (IPv6), as `ip fou add port \(number) ipproto 4` — or `gue: yes`")
                incomplete = true
                continue
            }
            guard let text = scalar(node, key: "\(key).ipproto") else { continue }
            switch text {
            case "4", "ipip": ports.append(FOUPort(port: number, payload: .fou(innerProtocol: IPProtocolNumber.ipip)))
            case "41", "ipv6": ports.append(FOUPort(port: number, payload: .fou(innerProtocol: IPProtocolNumber.ipv6)))
            default:
                error(node, key: "\(key).ipproto", "`\(text)` is not 4 (IPv4 inside) or 41 (IPv6 inside)")
                incomplete = true
            }
        }
        return ports
    }

    mutating func readProxyARP(_ node: Node) -> GatewayConfig.ProxyARP {
        var settings = GatewayConfig.ProxyARP()
        guard let f = fields(of: node, key: "proxy-arp", allowed: ConfigReference.allowed(in: "proxy-arp"), required: []) else {
            return settings
        }
        if let node = f["answer-probes"], let value = boolean(node, key: "proxy-arp.answer-probes") {
            settings.answerProbes = value
        }
        if let node = f["on-conflict"], let text = scalar(node, key: "proxy-arp.on-conflict") {
            if let value = GatewayConfig.ProxyARP.OnConflict(rawValue: text) {
                settings.onConflict = value
            } else {
                error(node, key: "proxy-arp.on-conflict", "`\(text)` is not `defend` (keep answering) or `yield` (stop answering while another machine claims the address)")
                incomplete = true
            }
        }
        return settings
    }

    mutating func readMetrics(_ node: Node) -> GatewayConfig.ListenAddress? {
        guard let f = fields(of: node, key: "metrics", allowed: ConfigReference.allowed(in: "metrics"), required: ["listen"]),
              let listenNode = f["listen"], let text = scalar(listenNode, key: "metrics.listen") else { return nil }
        guard let listen = GatewayConfig.ListenAddress(Substring(text)) else {
            error(listenNode, key: "metrics.listen", "`\(text)` is not an address and port, e.g. 127.0.0.1:9473 or [::1]:9473")
            incomplete = true
            return nil
        }
        return listen
    }

    mutating func readGhostHosts(_ node: Node) -> [GatewayConfig.GhostHost] {
        guard let items = sequence(node, key: "ghost-hosts") else { return [] }
        var ghosts: [GatewayConfig.GhostHost] = []
        for (index, item) in items.enumerated() {
            let key = "ghost-hosts[\(index)]"
            guard let f = fields(of: item, key: key, allowed: ConfigReference.allowed(in: "ghost-hosts[]"),
                                 required: ["address", "interface"]) else { continue }
            // IPv4 (answered by proxy ARP) or IPv6 (by proxy NDP), told apart by a ':'.
            let isIPv6 = f["address"]?.scalar?.string.contains(":") == true
            let address: IPAddress? = isIPv6 ? f["address"].flatMap { unicastAddress6($0, key: "\(key).address") }.map(IPAddress.v6)
                                             : f["address"].flatMap { unicastAddress($0, key: "\(key).address") }.map(IPAddress.v4)
            let interface = f["interface"].flatMap { interfaceName($0, key: "\(key).interface") }
            var mac: MACAddress?
            // `auto` (what `check` prints for a value left out) is the default: the interface's own MAC.
            if let macNode = f["mac"], let text = scalar(macNode, key: "\(key).mac"), text != "auto" {
                mac = MACAddress(text)
                if mac == nil {
                    incomplete = true
                    error(macNode, key: "\(key).mac", "`\(text)` is not a MAC address (aa:bb:cc:dd:ee:ff), or `auto`")
                } else if mac!.isMulticast || mac == .zero {
                    error(macNode, key: "\(key).mac", "\(text) is not a unicast MAC address")
                }
            }
            if let address, let interface {
                ghosts.append(GatewayConfig.GhostHost(address: address, interface: interface, mac: mac))
                locations.ghostIndex.append(index)
            } else {
                incomplete = true
            }
        }
        return ghosts
    }
}

/// The allowed key nearest to a typo (edit distance ≤ 2), for "did you mean" hints.
func closest(to word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let scored = candidates.map { ($0, distance(Array(word), Array($0))) }.filter { $0.1 <= 2 }
    return scored.min { $0.1 < $1.1 }?.0
}
