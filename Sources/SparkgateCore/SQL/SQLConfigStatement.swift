/// A statement in SQL text that touches Spark configuration, as Sparkgate reads it.
public enum SQLConfigStatement: Sendable, Equatable {
    /// `SET key=value` or `SET key` (which shows the value).
    case set(key: String)
    /// `RESET key`.
    case reset(key: String)
    /// `EXECUTE IMMEDIATE`: SQL built at run time, which Sparkgate cannot see.
    case executeImmediate
    /// A SET or RESET Sparkgate cannot read unambiguously (comments or quotes inside, a key Spark's grammar
    /// would not take as written).
    case unreadable(String)
}

/// Finds configuration statements in SQL text at the byte level: `SET`, `RESET` and `EXECUTE IMMEDIATE` at the
/// start of a statement (the text's start, after `;`, or after the SQL-scripting keywords that open one).
/// String literals, quoted identifiers and comments are skipped. Keys follow Spark's own grammar
/// (`[a-zA-Z_0-9\.:]+`, or backtick-quoted); anything else after SET is reported as unreadable rather than
/// guessed, so the gateway and Spark cannot read one statement two ways.
public enum SQLConfigScan {
    public static func statements(in text: some Collection<UInt8>) -> [SQLConfigStatement] {
        let b = Array(text)
        var out: [SQLConfigStatement] = []
        var i = 0
        var atStart = true
        while true {
            i = skipSpaceAndComments(b, i)
            guard i < b.count else { break }
            let c = b[i]
            if isWordByte(c) {
                let (word, end) = readWord(b, i)
                if atStart {
                    switch word {
                    case "SET": if let s = parseSet(b, end) { out.append(s) }
                    case "RESET": if let s = parseReset(b, end) { out.append(s) }
                    case "EXECUTE":
                        let (next, _) = readWord(b, skipSpaceAndComments(b, end))
                        if next == "IMMEDIATE" { out.append(.executeImmediate) }
                    default: break
                    }
                }
                atStart = statementOpeners.contains(word)
                i = end
            } else if c == UInt8(ascii: ";") {
                atStart = true
                i += 1
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "`") {
                i = skipQuoted(b, i)
                atStart = false
            } else {
                atStart = false
                i += 1
            }
        }
        return out
    }

    /// Keywords of SQL scripting after which a new statement starts.
    static let statementOpeners: Set<String> = ["BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT"]

    // MARK: SET and RESET

    private static func parseSet(_ b: [UInt8], _ from: Int) -> SQLConfigStatement? {
        // The forms with keywords of their own come first: their arguments may be quoted.
        let (first, afterFirst) = readWord(b, skipSpaceAndComments(b, from))
        if first == "TIME" {
            let (second, _) = readWord(b, skipSpaceAndComments(b, afterFirst))
            if second == "ZONE" { return .set(key: "spark.sql.session.timeZone") }
        }
        // SET VAR / SET VARIABLE sets a session variable, not configuration.
        if first == "VAR" || first == "VARIABLE" { return nil }
        let rest = statementRest(b, from)
        guard let text = rest.text else { return .unreadable(rest.reason) }
        if text.isEmpty || text == Array("-v".utf8) { return nil }
        guard let (key, after) = readKey(text, 0) else { return .unreadable("SET \(printable(text))") }
        let tail = skipSpace(text, after)
        guard tail == text.count || text[tail] == UInt8(ascii: "=") else {
            return .unreadable("SET \(printable(text))")
        }
        return .set(key: key)
    }

    private static func parseReset(_ b: [UInt8], _ from: Int) -> SQLConfigStatement? {
        let rest = statementRest(b, from)
        guard let text = rest.text else { return .unreadable(rest.reason) }
        if text.isEmpty { return nil }
        guard let (key, after) = readKey(text, 0), skipSpace(text, after) == text.count else {
            return .unreadable("RESET \(printable(text))")
        }
        return .reset(key: key)
    }

    /// The statement's text after its keyword, trimmed, up to `;` or the end; nil (with why) when it holds a
    /// comment or a quote Spark might read differently.
    private static func statementRest(_ b: [UInt8], _ from: Int) -> (text: [UInt8]?, reason: String) {
        var i = from
        var leadingBacktick = true
        var out: [UInt8] = []
        while i < b.count, b[i] != UInt8(ascii: ";") {
            let c = b[i]
            if c == UInt8(ascii: "-"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "-") {
                return (nil, "a comment inside a SET or RESET")
            }
            if c == UInt8(ascii: "/"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "*") {
                return (nil, "a comment inside a SET or RESET")
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                // A value may be quoted; the key may not be: only what follows '=' may hold quotes.
                if !out.contains(UInt8(ascii: "=")) { return (nil, "a quote in a SET or RESET key") }
            }
            if c == UInt8(ascii: "`") {
                guard leadingBacktick, out.allSatisfy(isSpace) else {
                    if out.contains(UInt8(ascii: "=")) {
                        out.append(c)
                        i += 1
                        continue
                    }
                    return (nil, "a backtick inside a SET or RESET key")
                }
                let end = skipQuoted(b, i)
                out.append(contentsOf: b[i..<min(end, b.count)])
                i = end
                leadingBacktick = false
                continue
            }
            if !isSpace(c) { leadingBacktick = false }
            out.append(c)
            i += 1
        }
        let start = out.firstIndex { !isSpace($0) } ?? out.count
        let end = out.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
        return (Array(out[start..<max(start, end)]), "")
    }

    /// A configuration key at `i`: Spark's unquoted key characters, or a backtick-quoted identifier.
    private static func readKey(_ t: [UInt8], _ i: Int) -> (String, Int)? {
        guard i < t.count else { return nil }
        if t[i] == UInt8(ascii: "`") {
            var key: [UInt8] = []
            var j = i + 1
            while j < t.count {
                if t[j] == UInt8(ascii: "`") {
                    if j + 1 < t.count, t[j + 1] == UInt8(ascii: "`") {
                        key.append(t[j])
                        j += 2
                        continue
                    }
                    return key.isEmpty ? nil : (String(decoding: key, as: UTF8.self), j + 1)
                }
                key.append(t[j])
                j += 1
            }
            return nil
        }
        var j = i
        while j < t.count, isKeyByte(t[j]) { j += 1 }
        return j > i ? (String(decoding: t[i..<j], as: UTF8.self), j) : nil
    }

    // MARK: Bytes

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }
    private static func isWordByte(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c | 0x20) || c == UInt8(ascii: "_")
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }
    private static func isKeyByte(_ c: UInt8) -> Bool {
        isWordByte(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: ":") || c == UInt8(ascii: "\\")
    }

    /// An identifier-like word at `i`, upper-cased, and where it ends.
    private static func readWord(_ b: [UInt8], _ i: Int) -> (String, Int) {
        var j = i
        while j < b.count, isWordByte(b[j]) { j += 1 }
        return (String(decoding: b[i..<j].map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self), j)
    }

    private static func skipSpace(_ b: [UInt8], _ i: Int) -> Int {
        var j = i
        while j < b.count, isSpace(b[j]) { j += 1 }
        return j
    }

    /// Skips whitespace, `--` line comments and `/* */` comments (which Spark nests).
    private static func skipSpaceAndComments(_ b: [UInt8], _ i: Int) -> Int {
        var j = i
        while j < b.count {
            if isSpace(b[j]) {
                j += 1
            } else if b[j] == UInt8(ascii: "-"), j + 1 < b.count, b[j + 1] == UInt8(ascii: "-") {
                while j < b.count, b[j] != 0x0A { j += 1 }
            } else if b[j] == UInt8(ascii: "/"), j + 1 < b.count, b[j + 1] == UInt8(ascii: "*") {
                var depth = 0
                repeat {
                    if j + 1 < b.count, b[j] == UInt8(ascii: "/"), b[j + 1] == UInt8(ascii: "*") {
                        depth += 1
                        j += 2
                    } else if j + 1 < b.count, b[j] == UInt8(ascii: "*"), b[j + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        j += 2
                    } else {
                        j += 1
                    }
                } while depth > 0 && j < b.count
            } else {
                break
            }
        }
        return j
    }

    /// Skips a quoted string or identifier starting at `i` (a doubled quote or a backslash escapes).
    private static func skipQuoted(_ b: [UInt8], _ i: Int) -> Int {
        let q = b[i]
        var j = i + 1
        while j < b.count {
            if b[j] == UInt8(ascii: "\\"), q != UInt8(ascii: "`") {
                j += 2
                continue
            }
            if b[j] == q {
                if j + 1 < b.count, b[j + 1] == q {
                    j += 2
                    continue
                }
                return j + 1
            }
            j += 1
        }
        return b.count
    }

    private static func printable(_ t: [UInt8]) -> String {
        let s = String(decoding: t.prefix(80), as: UTF8.self)
        return t.count > 80 ? s + "..." : s
    }
}
