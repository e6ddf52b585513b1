/// How Sparkgate changes one response message before the client sees it.
///
/// With namespacing, the backend's session ids are written back as the client's own, so the client's check
/// that `session_id` matches passes. `server_side_session_id` is never touched. Config pairs whose key the
/// policy denies lose their value (`get_all` drops them entirely), so no read returns a denied key's value.
public struct ResponseRewrite: Sendable {
    /// The client's session id, written over the response's `session_id` when namespacing is on.
    public var clientSessionID: String?
    /// CloneSession: the client's id for the new session.
    public var clientNewSessionID: String?
    /// Config: whether a key may be returned.
    public var configPolicy: ConfigPolicy?
    /// Config: the request was `get_all`, so denied pairs are removed rather than emptied.
    public var dropDeniedPairs = false
    /// Config: values the client is told for these keys, whatever the engine answered.
    public var overrides: [String: String] = [:]

    public init(
        clientSessionID: String? = nil, clientNewSessionID: String? = nil, configPolicy: ConfigPolicy? = nil,
        dropDeniedPairs: Bool = false
    ) {
        self.clientSessionID = clientSessionID
        self.clientNewSessionID = clientNewSessionID
        self.configPolicy = configPolicy
        self.dropDeniedPairs = dropDeniedPairs
    }

    public var isIdentity: Bool {
        clientSessionID == nil && clientNewSessionID == nil && configPolicy == nil && overrides.isEmpty
    }

    public func edits(for envelope: ResponseEnvelope, method: SparkConnectMethod) -> [ByteEdit] {
        var edits: [ByteEdit] = []
        if let clientSessionID {
            let field = WireEncoding.string(field: method.responseSessionIDField, clientSessionID)
            for range in envelope.sessionIDFields { edits.append(ByteEdit(range: range, replacement: field)) }
        }
        if let clientNewSessionID {
            let field = WireEncoding.string(field: 3, clientNewSessionID)
            for range in envelope.newSessionIDFields { edits.append(ByteEdit(range: range, replacement: field)) }
        }
        for pair in envelope.configPairs {
            guard let value = overrides[pair.key] else { continue }
            var inner: [UInt8] = []
            WireEncoding.appendString(field: 1, pair.key, to: &inner)
            WireEncoding.appendString(field: 2, value, to: &inner)
            let field = WireEncoding.lengthDelimited(field: 2, inner)
            edits.append(ByteEdit(range: pair.field, replacement: field))
        }
        if let configPolicy {
            for pair in envelope.configPairs where configPolicy.denies(pair.key) && overrides[pair.key] == nil {
                if dropDeniedPairs {
                    edits.append(ByteEdit(range: pair.field, replacement: []))
                } else if pair.value != nil {
                    // Re-encode the pair with its key only: the client sees the key as unset.
                    var inner: [UInt8] = []
                    WireEncoding.appendString(field: 1, pair.key, to: &inner)
                    let field = WireEncoding.lengthDelimited(field: 2, inner)
                    edits.append(ByteEdit(range: pair.field, replacement: field))
                }
            }
        }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }
        return edits
    }
}
