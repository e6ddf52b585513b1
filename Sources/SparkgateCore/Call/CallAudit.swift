/// A call's audit line as it stands, and the response messages written toward the client that have not
/// left the gateway yet: the line counts what the client received, so results count as they leave.
struct CallAudit {
    var summary: CallSummary
    private var unflushed: [Unflushed] = []
    private var head = 0

    struct Unflushed {
        var length: Int
        var resultBytes: Int
        var rows: Int64
    }

    init(start: Double, peer: String) {
        summary = CallSummary(start: start, method: "", peer: peer)
    }

    var allFlushed: Bool { head == unflushed.count }

    mutating func wrote(_ message: Unflushed) {
        unflushed.append(message)
    }

    /// The oldest message written left the gateway (flushes of one stream complete in write order).
    mutating func flushedOne() {
        guard head < unflushed.count else { return }
        count(unflushed[head])
        head += 1
        if head == unflushed.count {
            unflushed.removeAll(keepingCapacity: true)
            head = 0
        }
    }

    /// The call ended: messages still on their way leave ahead of the trailers, unless the client went away.
    mutating func close(clientGone: Bool) {
        if !clientGone { for out in unflushed[head...] { count(out) } }
        unflushed = []
        head = 0
    }

    private mutating func count(_ out: Unflushed) {
        summary.responseBytes += out.length
        summary.resultBytes += out.resultBytes
        summary.rows += out.rows
    }
}
