/// Limits checked on a config file's text before the YAML parser sees it, so that no file — however it
/// came to be — can keep `check` or a reload (which holds the reload lock) busy for minutes or crash it:
///
/// - aliases: the parser expands each `*alias` into a copy of what its anchor names, and hashes mapping
///   keys whole, so a few dozen aliases nested in one another ("billion laughs") make a document of
///   billions of nodes. At most `maximumAliases` (32 aliases bound the expansion to about 10⁵ nodes);
/// - nesting: the parser recurses once per level, so `[[[[…` a million deep overflows the stack. At most
///   `maximumDepth` levels of flow collections, and of block collections opened on one line (`- - -`);
///   block nesting across lines is bounded by `maximumIndentation`;
/// - size: at most `maximumBytes` (a hub with 10,000 peers and 100,000 prefixes needs about 3 MiB).
///
/// The scan knows just enough YAML to skip quoted scalars, comments and block scalars, where `*`, `[` or
/// `-` are text. Each finding names the line and column.
public enum YAMLLimits {
    public static let maximumBytes = 16 << 20
    public static let maximumAliases = 32
    public static let maximumDepth = 64
    public static let maximumIndentation = 256

    public static func check(_ text: String, file: String) -> [ConfigDiagnostic] {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumBytes else {
            return [ConfigDiagnostic(file: file, line: nil, key: "",
                                     message: "the file is \(bytes.count) bytes; a config may have at most \(maximumBytes) (16 MiB)")]
        }
        var scanner = Scanner(bytes: bytes, file: file)
        scanner.run()
        return scanner.diagnostics
    }

    private struct Scanner {
        let bytes: [UInt8]
        let file: String
        var diagnostics: [ConfigDiagnostic] = []
        var aliases = 0
        var flowDepth = 0
        var quote: UInt8?                 // inside a quoted scalar, which may span lines
        var blockScalarIndentation: Int?  // inside a block scalar (`|`, `>`) opened at this indentation

        init(bytes: [UInt8], file: String) {
            self.bytes = bytes
            self.file = file
        }

        mutating func report(_ line: Int, _ column: Int, _ message: String) {
            diagnostics.append(ConfigDiagnostic(file: file, line: line, column: column, key: "", message: message))
        }

        mutating func run() {
            var lineNumber = 1, start = 0
            while start <= bytes.count && diagnostics.isEmpty {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
                scanLine(bytes[start..<end], number: lineNumber)
                start = end + 1
                lineNumber += 1
            }
        }

        mutating func scanLine(_ line: ArraySlice<UInt8>, number: Int) {
            let space = UInt8(ascii: " ")
            var index = line.startIndex
            while index < line.endIndex && line[index] == space { index += 1 }
            let indentation = index - line.startIndex
            let blank = index == line.endIndex || line[index] == UInt8(ascii: "\r")
            if let opened = blockScalarIndentation {
                if blank || indentation > opened { return }   // the block scalar's text
                blockScalarIndentation = nil
            }
            if indentation > maximumIndentation {
                report(number, indentation + 1, "indented \(indentation) columns; at most \(maximumIndentation) (nested too deep)")
                return
            }
            var blockDepth = 0, previous = space
            while index < line.endIndex {
                let byte = line[index]
                let column = index - line.startIndex + 1
                if let open = quote {
                    if byte == UInt8(ascii: "\\") && open == UInt8(ascii: "\"") {
                        index += 2
                        continue
                    }
                    if byte == open {
                        // '' inside a single-quoted scalar is an escaped quote.
                        if open == UInt8(ascii: "'") && index + 1 < line.endIndex && line[index + 1] == open {
                            index += 2
                            continue
                        }
                        quote = nil
                    }
                    previous = byte
                    index += 1
                    continue
                }
                let atTokenStart = previous == space || previous == UInt8(ascii: "\t") || index == line.startIndex
                    || previous == UInt8(ascii: "[") || previous == UInt8(ascii: "{") || previous == UInt8(ascii: ",")
                switch byte {
                case UInt8(ascii: "#") where atTokenStart:
                    return   // a comment to the end of the line
                case UInt8(ascii: "'") where atTokenStart, UInt8(ascii: "\"") where atTokenStart:
                    quote = byte
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flowDepth += 1
                    if flowDepth > maximumDepth {
                        report(number, column, "collections nested more than \(maximumDepth) deep")
                        return
                    }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flowDepth = max(0, flowDepth - 1)
                case UInt8(ascii: "-") where atTokenStart && flowDepth == 0:
                    // `- - -`: block sequences opened on one line.
                    if index + 1 == line.endIndex || line[index + 1] == space {
                        blockDepth += 1
                        if blockDepth > maximumDepth {
                            report(number, column, "collections nested more than \(maximumDepth) deep")
                            return
                        }
                    }
                case UInt8(ascii: "*") where atTokenStart && index + 1 < line.endIndex && line[index + 1] != space:
                    aliases += 1
                    if aliases > maximumAliases {
                        report(number, column, "more than \(maximumAliases) aliases (`*name`); each copies what its anchor names, so that many could make the file expand without bound")
                        return
                    }
                default:
                    break
                }
                previous = byte
                index += 1
            }
            // `key: |` or `- >-`: the lines that follow, more indented, are text.
            if quote == nil {
                let trimmed = line.reversed().drop { $0 == space || $0 == UInt8(ascii: "\r") }
                if let indicator = trimmed.drop(while: { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }).first,
                   indicator == UInt8(ascii: "|") || indicator == UInt8(ascii: ">") {
                    blockScalarIndentation = indentation
                }
            }
        }
    }
}
