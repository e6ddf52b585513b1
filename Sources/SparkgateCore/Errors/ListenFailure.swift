/// A listener that could not bind: which configuration key named the address, and why the host refused it,
/// said so that an operator knows what to change without reading an errno.
public struct ListenFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration key that names the address (`listen`, `admin.listen`).
    public var key: String
    public var address: HostPort
    public var reason: String

    /// `errno` is the bind's error number when there was one; `detail` is the error as the socket layer said it.
    public init(key: String, address: HostPort, errno: Int32?, detail: String) {
        self.key = key
        self.address = address
        self.reason = Self.reason(errno: errno) ?? detail
    }

    public var description: String {
        "cannot listen on \(address) (\(key)): \(reason)"
    }

    /// The common refusals in words (Linux numbers); any other keeps the socket layer's own text.
    static func reason(errno: Int32?) -> String? {
        switch errno {
        case 98?:
            return "the address is already in use: another process listens on it; stop it or choose another port"
        case 13?:
            return "permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE; choose a port above 1023"
        case 99?:
            return "no network interface of this host has that address; use 0.0.0.0, 127.0.0.1 or one of its own"
        default:
            return nil
        }
    }
}
