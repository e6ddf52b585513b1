/// What Sparkgate needs from one response message: where its session ids are, and what it reports.
public struct ResponseEnvelope: Sendable, Equatable {
    /// A `KeyValue` pair of a ConfigResponse (field 2).
    public struct ConfigPair: Sendable, Equatable {
        public var key: String
        /// The whole `pairs` field.
        public var field: Range<Int>
        /// The whole `value` field inside it, when present.
        public var value: Range<Int>?
    }

    /// Whole-field ranges of the response's `session_id` occurrences.
    public var sessionIDFields: [Range<Int>] = []
    /// ExecutePlan/ReattachExecute: Arrow bytes and rows this response carries.
    public var arrow = ArrowBatchCount()
    /// ExecutePlan/ReattachExecute: the response ends the operation's results (`result_complete`, field 14).
    public var resultComplete = false
    /// Config: the returned pairs.
    public var configPairs: [ConfigPair] = []
    /// Interrupt: the operations the backend interrupted (field 2).
    public var interruptedIDs: [String] = []
    /// CloneSession: whole-field ranges of `new_session_id` (field 3).
    public var newSessionIDFields: [Range<Int>] = []

    public init() {}

    public static func read(
        _ bytes: UnsafeRawBufferPointer, method: SparkConnectMethod
    ) throws(WireError) -> ResponseEnvelope {
        var envelope = ResponseEnvelope()
        var cursor = WireCursor(bytes)
        let sessionField = method.responseSessionIDField
        while let field = try cursor.next() {
            let isBytes = field.wireType == .lengthDelimited
            if field.number == sessionField && isBytes {
                envelope.sessionIDFields.append(field.range)
                continue
            }
            switch (method, field.number) {
            case (.executePlan, 2) where isBytes, (.reattachExecute, 2) where isBytes:
                envelope.arrow = try ArrowBatchCount.read(cursor.nested(field))
            case (.executePlan, 14) where isBytes, (.reattachExecute, 14) where isBytes:
                envelope.resultComplete = true
            case (.config, 2) where isBytes:
                var pair = cursor.nested(field)
                var key = ""
                var value: Range<Int>?
                while let f = try pair.next() {
                    if f.number == 1 && f.wireType == .lengthDelimited { key = cursor.string(f) }
                    if f.number == 2 && f.wireType == .lengthDelimited { value = f.range }
                }
                envelope.configPairs.append(ConfigPair(key: key, field: field.range, value: value))
            case (.interrupt, 2) where isBytes:
                envelope.interruptedIDs.append(cursor.string(field))
            case (.cloneSession, 3) where isBytes:
                envelope.newSessionIDFields.append(field.range)
            default:
                break
            }
        }
        return envelope
    }
}
