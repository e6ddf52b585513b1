/// How Sparkgate changes one request message before the backend sees it.
///
/// The verified user replaces `user_context.user_id` and `user_name`; every other byte of the user context
/// (its extensions and unknown fields, from every occurrence) is kept. With session namespacing the client's
/// session ids are swapped for their backend ids. Everything else in the message passes through untouched.
public struct RequestRewrite: Sendable, Equatable {
    /// The verified user, written as `user_id` and `user_name`.
    public var userID: String
    /// The backend session id that replaces every `session_id`, when namespacing is on.
    public var backendSessionID: String?
    /// CloneSession: the backend id for `new_session_id` (replacing it, or inserted when the client sent none).
    public var backendNewSessionID: String?
    /// ExecutePlan without an `operation_id`: the id Sparkgate assigns so it can follow the operation.
    public var insertedOperationID: String?

    public init(
        userID: String, backendSessionID: String? = nil, backendNewSessionID: String? = nil,
        insertedOperationID: String? = nil
    ) {
        self.userID = userID
        self.backendSessionID = backendSessionID
        self.backendNewSessionID = backendNewSessionID
        self.insertedOperationID = insertedOperationID
    }

    /// The edits that turn the client's message into the backend's, in ascending order.
    public func edits(for envelope: RequestEnvelope, in bytes: UnsafeRawBufferPointer) -> [ByteEdit] {
        var edits: [ByteEdit] = []
        if let backendSessionID {
            let field = WireEncoding.string(field: 1, backendSessionID)
            for range in envelope.sessionIDRanges { edits.append(ByteEdit(range: range, replacement: field)) }
        }
        let userContext = UserContextField.encode(user: userID, keeping: envelope.userContextKeptFields, from: bytes)
        for (index, range) in envelope.userContextFields.enumerated() {
            edits.append(ByteEdit(range: range, replacement: index == 0 ? userContext : []))
        }
        if let backendNewSessionID, !envelope.newSessionIDRanges.isEmpty {
            let field = WireEncoding.string(field: 4, backendNewSessionID)
            for range in envelope.newSessionIDRanges { edits.append(ByteEdit(range: range, replacement: field)) }
        }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }

        // Insertions go at the end: protobuf fields may come in any order.
        var appended: [UInt8] = []
        appended.reserveCapacity(128)
        if envelope.userContextFields.isEmpty { appended += userContext }
        if let insertedOperationID, envelope.method == .executePlan, envelope.operationID == nil {
            WireEncoding.appendString(field: 6, insertedOperationID, to: &appended)
        }
        if let backendNewSessionID, envelope.method == .cloneSession, envelope.newSessionIDRanges.isEmpty {
            WireEncoding.appendString(field: 4, backendNewSessionID, to: &appended)
        }
        if !appended.isEmpty {
            edits.append(ByteEdit(range: envelope.length..<envelope.length, replacement: appended))
        }
        return edits
    }
}
