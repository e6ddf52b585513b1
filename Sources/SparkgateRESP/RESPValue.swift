import NIOCore

/// A reply from Redis, in RESP2 (the protocol every Redis since 2.0 speaks by default).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8]?)
    case array([RESPValue]?)

    /// The reply as text: simple and bulk strings, and integers.
    public var string: String? {
        switch self {
        case .simpleString(let s): s
        case .bulkString(let b?): String(decoding: b, as: UTF8.self)
        case .integer(let i): String(i)
        default: nil
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let i): i
        case .bulkString(let b?): Int64(String(decoding: b, as: UTF8.self))
        case .simpleString(let s): Int64(s)
        default: nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let a?) = self { return a }
        return nil
    }

    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): true
        default: false
        }
    }
}

/// What Redis or the connection to it did wrong.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Redis answered with an error reply (`ERR ...`, `NOSCRIPT ...`, `WRONGPASS ...`).
    case server(String)
    /// No reply within the configured timeout.
    case timeout(milliseconds: Int)
    /// The connection failed or closed with the command unanswered.
    case connection(String)
    /// The reply broke the protocol (or passed a size bound).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .server(let m): "redis error: \(m)"
        case .timeout(let ms): "no reply within \(ms) ms"
        case .connection(let m): "connection: \(m)"
        case .protocolViolation(let m): "protocol: \(m)"
        }
    }
}
