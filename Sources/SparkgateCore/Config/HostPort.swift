import Foundation

/// A `host:port` listen or connect address (`[::1]:15443` for IPv6).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// `host:port` (brackets around an IPv6 host), formatted once: every call to the address sends it as
    /// `:authority`.
    public let authority: String

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        self.authority = Self.format(host, port)
    }

    public init?(parsing text: String) {
        let s = text.trimmingCharacters(in: .whitespaces)
        let hostPart: Substring
        let portPart: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = s[s.index(after: s.startIndex)..<close]
            portPart = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
            hostPart = s[..<colon]
            portPart = s[s.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        self.init(host: String(hostPart), port: port)
    }

    private static func format(_ host: String, _ port: Int) -> String {
        host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public var description: String { authority }

    public static func == (a: HostPort, b: HostPort) -> Bool { a.port == b.port && a.host == b.host }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(port)
    }

    /// Whether only this machine can reach the address.
    public var isLoopback: Bool { Self.isLoopback(host) }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Whether `host` names no machine in particular (every address of this one), so another machine that
    /// connects there reaches itself.
    public static func isUnspecified(_ host: String) -> Bool {
        host.isEmpty || host == "0.0.0.0" || host == "::" || host == "[::]" || host == "0:0:0:0:0:0:0:0"
    }
}
