/// Every configured backend as a call's routing reads it: its settings and the token Sparkgate presents to it.
/// Built once per configuration generation, so a call looks its backend up once.
public struct BackendDirectory: Sendable {
    /// A class: every call's backend opening holds its entry, and a reference is one retain where the settings
    /// as a value would be one per string and array they hold.
    public final class Entry: Sendable {
        public let settings: SparkgateConfig.Backend
        /// The token Sparkgate presents to the backend's endpoints (a launched engine has its own).
        public let token: String?

        public init(settings: SparkgateConfig.Backend, token: String?) {
            self.settings = settings
            self.token = token
        }
    }

    private let entries: [String: Entry]

    public init(backends: [String: SparkgateConfig.Backend], tokens: [String: String]) {
        entries = backends.mapValues { Entry(settings: $0, token: tokens[$0.name]) }
    }

    public subscript(name: String) -> Entry? { entries[name] }
}
