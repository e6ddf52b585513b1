import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore

extension ProxyCall {
    /// Ends the call with Sparkgate's own status: to the client as trailers (or a trailers-only response),
    /// cancelling the backend stream if one is open.
    func refuse(_ error: SparkgateError, reason: String) {
        guard phase != .closed else { return }
        var h = HPACKHeaders()
        if !responseStarted {
            h.add(name: ":status", value: "200")
            h.add(name: "content-type", value: "application/grpc")
        }
        h.add(name: "grpc-status", value: String(error.code.rawValue))
        h.add(name: "grpc-message", value: GRPCStatusMessage.encode(error.message))
        if let details = GRPCStatusDetails.encode(error) {
            h.add(name: "grpc-status-details-bin", value: Data(details).base64EncodedString())
        }
        cancelBackend()
        complete(status: error.code, statusMessage: error.message, reason: reason)
        writeToClient(.headers(.init(headers: h, endStream: true)))
        closeClientIfOpen()
    }

    /// The client went away (RST_STREAM, or the connection closed).
    func clientCancelled() {
        guard phase != .closed else { return }
        cancelBackend()
        complete(status: .cancelled, statusMessage: "", reason: "client_cancelled")
    }

    /// Resets the backend stream, unless the backend already finished it.
    func cancelBackend() {
        if let backend, let backendStreamID, !backendEnded {
            backend.cancel(backendStreamID)
        }
        backend = nil
    }

    /// After the trailers, a client still sending is told to stop with RST_STREAM(NO_ERROR), which says the
    /// response is complete (RFC 9113 §8.1); CANCEL would make the client report CANCELLED instead.
    func closeClientIfOpen() {
        if !clientEnded && frontend.isActive {
            writeToClient(.rstStream(.noError))
        }
    }

    /// Accounts for the finished call, once: the ledger, metrics and the audit line.
    func complete(status: GRPCStatusCode, statusMessage: String, reason: String?) {
        guard phase != .closed else { return }
        phase = .closed
        deadline?.cancel()
        deadline = nil
        if let registration { runtime.calls.unregister(registration) }
        let now = WallClock.now()
        let duration = secondsSinceStart
        summary.durationSeconds = duration
        summary.status = status.name
        summary.reason = reason

        if admitted, let key = sessionKey {
            let method = self.method
            let operation = operationKey
            let reattachable = firstEnvelope?.reattachable ?? false
            let ended = sawResultComplete
            let envelope = firstEnvelope
            let interrupted = interruptedIDs
            let requestBytes = summary.requestBytes
            let responseBytes = summary.responseBytes
            let rows = summary.rows
            runtime.ledger.withLock { ledger in
                ledger.callEnded(key, bytesIn: requestBytes, bytesOut: responseBytes, rowsOut: rows, now: now)
                if let operation, method == .executePlan || method == .reattachExecute {
                    let end = StreamEnd.classify(reattachable: reattachable || method == .reattachExecute, sawResultComplete: ended, status: status, message: statusMessage)
                    ledger.streamEnded(operation, end, now: now)
                }
                switch method {
                case .releaseExecute where status == .ok && envelope?.releaseAll == true:
                    if let op = envelope?.operationID { ledger.operationsEnded([op], in: key) }
                case .interrupt where status == .ok:
                    ledger.operationsEnded(interrupted, in: key)
                case .releaseSession:
                    ledger.sessionReleased(key)
                default:
                    // The backend no longer has the session (released, killed, reaped): do not keep a record
                    // of it, or its slot would count against the user until it went idle.
                    if BackendVerdict.sessionIsGone(status: status, message: statusMessage) { ledger.sessionReleased(key) }
                }
            }
        }
        let teamLabel = verified.map { state.teamLabel($0.identity.team) } ?? "_unauthenticated"
        runtime.metrics.rpcFinished(method: method.label, team: teamLabel, code: status, durationSeconds: duration)
        if verified != nil {
            runtime.metrics.traffic(team: teamLabel, requestBytes: summary.requestBytes, resultBytes: summary.resultBytes, rows: summary.rows)
        }
        runtime.audit.record(summary)
    }
}
