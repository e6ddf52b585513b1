/// The request side of a call (client → backend): what arrived, what was returned as window, and the
/// messages read but not yet sent. Flow credit follows `FlowCredit`'s rules.
struct RequestFlow<Message> {
    /// The client ended its request (END_STREAM).
    var clientEnded = false
    /// The client ended the request and every whole message of it has been read.
    var complete = false
    var messages = 0
    /// Framed length of the message whose prefix was read last.
    var messageLength = 0
    var firstMessageLength: Int?
    var credit: FlowCredit
    var received = 0
    /// Window returned to the client so far, at the connection level.
    var returned = 0
    /// Messages read and not yet sent, oldest first: before the backend stream opens, and while an AddArtifacts
    /// message waits for its charge.
    var queued: [Queued] = []
    /// END_STREAM went out toward the backend.
    var sentEnd = false
    /// An AddArtifacts charge was asked for and not answered yet.
    var charging = false
    /// The last queued message carries END_STREAM when it goes.
    var endOnLastQueued = false

    struct Queued {
        var message: Message
        var envelope: RequestEnvelope
        var artifactBytes: Int
        var length: Int
        /// Its AddArtifacts bytes were charged (the first message's are, at admission).
        var charged: Bool
    }

    init(window: Int) {
        credit = FlowCredit(highWatermark: window, lowWatermark: window / 4)
    }

    /// Window owed to the client: everything received and not yet returned.
    var owed: Int { received - returned }
}
