import NIOCore
import NIOPosix

/// Short, operator-readable descriptions of connection failures, for UNAVAILABLE messages.
package enum BackendErrors {
    /// The connection stopped taking streams between being chosen and used (GOAWAY, or closed).
    package struct Draining: Error, CustomStringConvertible {
        package var description: String { "the connection is closing; retry" }
    }

    package static func describe(_ error: any Error) -> String {
        switch error {
        case let e as NIOConnectionError:
            if let first = e.connectionErrors.first { return describe(first.error) }
            return "no address to connect to"
        case let e as IOError:
            switch e.errnoCode {
            case 111: return "connection refused"
            case 110: return "connection timed out"
            case 113: return "no route to host"
            default: return "\(e)"
            }
        case is ChannelError:
            if case ChannelError.connectTimeout = error { return "connection timed out" }
            return "\(error)"
        default:
            return "\(error)"
        }
    }
}
