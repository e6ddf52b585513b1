/// The routing fields of one Spark Connect request message, with where they sit in its bytes.
///
/// Reading is schema-free: only the fields below are looked at, every other byte is left for the rewrite to
/// pass through untouched. Protobuf semantics are honoured for repeated singular fields (the last wins) and
/// for repeated embedded messages (they merge), so a client cannot hide a second `user_context` behind the first.
public struct RequestEnvelope: Sendable, Equatable {
    public var method: SparkConnectMethod
    /// The effective `session_id` (field 1), nil when absent.
    public var sessionID: String?
    /// The effective `user_context.user_id` as the client sent it (before Sparkgate overwrites it).
    public var clientUserID: String?
    public var clientType: String?
    public var operationID: String?
    /// ExecutePlan `tags` (field 7).
    public var tags: [String] = []
    /// ExecutePlan: whether the client asked for a reattachable execution.
    public var reattachable = false
    /// Interrupt: `interrupt_type` (field 4).
    public var interruptType: UInt64?
    /// ReleaseExecute: whether it releases the whole operation (`release_all`, field 5).
    public var releaseAll = false
    /// ReleaseSession: `allow_reconnect` (field 4).
    public var allowReconnect = false
    /// CloneSession: `new_session_id` (field 4).
    public var newSessionID: String?
    /// Config: the operation.
    public var config: ConfigOperation?
    /// AddArtifacts: the artifact bytes this message uploads (sum of every chunk's `data`).
    public var artifactBytes = 0
    /// ExecutePlan/AnalyzePlan, when asked for: configuration statements in the plan's SQL, and whether the
    /// plan could be read at all.
    public var plan: PlanInspection?
    /// The total length of the message.
    public var length = 0

    /// Whole-field ranges of every `session_id` occurrence.
    public var sessionIDRanges: [Range<Int>] = []
    /// Whole-field ranges of every `user_context` occurrence, in order.
    public var userContextFields: [Range<Int>] = []
    /// Ranges of the fields inside the user contexts other than user_id/user_name (extensions, unknown fields).
    public var userContextKeptFields: [Range<Int>] = []
    /// Whole-field ranges of CloneSession's `new_session_id`.
    public var newSessionIDRanges: [Range<Int>] = []

    public init(method: SparkConnectMethod) {
        self.method = method
    }

    /// Reads the routing fields of a request message of `method`; with `inspectingPlans`, also the SQL in an
    /// ExecutePlan or AnalyzePlan plan (`PlanInspection`).
    public static func read(
        _ bytes: UnsafeRawBufferPointer, method: SparkConnectMethod, inspectingPlans: Bool = false
    ) throws(WireError) -> RequestEnvelope {
        var envelope = RequestEnvelope(method: method)
        if inspectingPlans && (method == .executePlan || method == .analyzePlan) {
            envelope.plan = PlanInspection.inspect(bytes, method: method)
        }
        envelope.length = bytes.count
        var cursor = WireCursor(bytes)
        let clientTypeField = method.clientTypeField
        let operationIDField = method.operationIDField
        while let field = try cursor.next() {
            let isBytes = field.wireType == .lengthDelimited
            switch field.number {
            case 1 where isBytes:
                envelope.sessionID = cursor.string(field)
                envelope.sessionIDRanges.append(field.range)
            case 2 where isBytes:
                envelope.userContextFields.append(field.range)
                var inner = cursor.nested(field)
                while let f = try inner.next() {
                    if f.number == 1 && f.wireType == .lengthDelimited {
                        envelope.clientUserID = cursor.string(f)
                    } else if f.number != 2 {
                        envelope.userContextKeptFields.append(f.range)
                    }
                }
            case clientTypeField where isBytes:
                envelope.clientType = cursor.string(field)
            case operationIDField where isBytes:
                envelope.operationID = cursor.string(field)
            default:
                try envelope.readMethodField(field, cursor: cursor)
            }
        }
        return envelope
    }

    private mutating func readMethodField(_ field: WireField, cursor: WireCursor) throws(WireError) {
        let isBytes = field.wireType == .lengthDelimited
        switch (method, field.number) {
        case (.executePlan, 7) where isBytes:
            tags.append(cursor.string(field))
        case (.executePlan, 5) where isBytes:
            // RequestOption { reattach_options = 1 { reattachable = 1 } }
            var option = cursor.nested(field)
            while let o = try option.next() {
                guard o.number == 1 && o.wireType == .lengthDelimited else { continue }
                var reattach = cursor.nested(o)
                while let r = try reattach.next() {
                    guard r.number == 1 && r.wireType == .varint else { continue }
                    reattachable = r.varint != 0
                }
            }
        case (.interrupt, 4) where field.wireType == .varint:
            interruptType = field.varint
        case (.releaseExecute, 5) where isBytes:
            releaseAll = true
        case (.releaseExecute, 6) where isBytes:
            releaseAll = false
        case (.releaseSession, 4) where field.wireType == .varint:
            allowReconnect = field.varint != 0
        case (.cloneSession, 4) where isBytes:
            newSessionID = cursor.string(field)
            newSessionIDRanges.append(field.range)
        case (.config, 3) where isBytes:
            var operation = config ?? ConfigOperation(kind: nil, keys: [])
            try operation.merge(cursor.nested(field))
            config = operation
        case (.addArtifacts, 3...5) where isBytes:
            artifactBytes += try Self.artifactDataBytes(payloadField: field.number, cursor.nested(field))
        default:
            break
        }
    }

    /// Sums the `ArtifactChunk.data` lengths of an AddArtifacts payload (batch 3, begin_chunk 4, chunk 5).
    private static func artifactDataBytes(payloadField: Int, _ payload: WireCursor) throws(WireError) -> Int {
        var total = 0
        var fields = payload
        func chunkData(_ chunk: WireCursor) throws(WireError) -> Int {
            var c = chunk
            var size = 0
            while let f = try c.next() {
                guard f.number == 1 && f.wireType == .lengthDelimited else { continue }
                size += f.value.count
            }
            return size
        }
        while let f = try fields.next() {
            guard f.wireType == .lengthDelimited else { continue }
            switch (payloadField, f.number) {
            case (3, 1):  // Batch.artifacts: SingleChunkArtifact { name 1, data 2: ArtifactChunk }
                var artifact = payload.nested(f)
                while let a = try artifact.next() {
                    guard a.number == 2 && a.wireType == .lengthDelimited else { continue }
                    total += try chunkData(payload.nested(a))
                }
            case (4, 4):  // BeginChunkedArtifact.initial_chunk
                total += try chunkData(payload.nested(f))
            case (5, 1):  // ArtifactChunk.data
                total += f.value.count
            default:
                break
            }
        }
        return total
    }
}
