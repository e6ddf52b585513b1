import NIOSSL
import SparkgateCore

/// One address of a backend, with how to reach it.
package struct BackendEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var backend: String
    package var address: HostPort
    package var tls: Bool

    package init(backend: String, address: HostPort, tls: Bool) {
        self.backend = backend
        self.address = address
        self.tls = tls
    }

    /// `host:port` as sent in `:authority`.
    package var authority: String { address.authority }

    package var description: String { authority }
}
