import NIOSSL
import SparkgateCore

/// What reaching a backend takes, from one configuration generation: its settings, the token Sparkgate
/// presents to it and its TLS context.
package struct BackendAccess: Sendable {
    package let config: SparkgateConfig
    /// Backend name → the token Sparkgate presents to it.
    package let tokens: [String: String]
    package let tls: [String: NIOSSLContext]

    package init(config: SparkgateConfig, tokens: [String: String], tls: [String: NIOSSLContext]) {
        self.config = config
        self.tokens = tokens
        self.tls = tls
    }
}
