/// The response side of a call (backend → client): what the backend sent, what the client was given, and
/// what the call learned from the responses (the operation's completion, the operations an interrupt ended).
struct ResponseFlow<Message> {
    /// The backend's response head was forwarded.
    var started = false
    /// The backend ended its stream with DATA, not trailers.
    var endedWithData = false
    var messageLength = 0
    var credit: FlowCredit
    var firstResponseSeconds: Double?
    /// `result_complete` was forwarded.
    var sawResultComplete = false
    /// Interrupt: the operations the backend reports it interrupted.
    var interruptedIDs: [String] = []
    /// Response messages read and not yet written toward the client, oldest first: one waits while its
    /// result bytes are charged, and those behind it wait for it.
    var awaitingCharge: [Pending] = []
    /// A result charge was asked for and not answered yet.
    var charging = false

    struct Pending {
        var message: Message
        var edits: [ByteEdit]
        var sent: CallAudit.Unflushed
        var completes: Bool
        var interruptedIDs: [String] = []
        var needsCharge = false
    }

    init(window: Int) {
        credit = FlowCredit(highWatermark: window, lowWatermark: window / 4)
    }
}
