import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore

extension ProxyCall: BackendStreamOwner {
    /// The backend's response HEADERS: the head, or trailers once the head has been sent.
    func backendHeaders(_ headers: HPACKHeaders, endStream: Bool) {
        guard phase == .forwarding else { return }
        if endStream { backendEnded = true }
        if !responseStarted {
            if let status = headers.first(name: ":status"), status != "200" {
                runtime.metrics.backendError(backendName)
                return refuse(.unavailable("backend '\(backendName)' answered HTTP \(status) instead of gRPC"), reason: "backend_http_\(status)")
            }
            if endStream {
                // Trailers-only: the backend's status is the whole response.
                return finishWithBackendTrailers(headers, includeStatus: true)
            }
            var h = HPACKHeaders()
            h.reserveCapacity(headers.count)
            h.add(name: ":status", value: "200")
            for (name, value, indexing) in headers where MetadataPolicy.forwardsResponseHeader(name) {
                h.add(name: name, value: value, indexing: indexing)
            }
            responseStarted = true
            writeToClient(.headers(.init(headers: h)))
        } else if endStream {
            finishWithBackendTrailers(headers, includeStatus: false)
        }
    }

    func backendData(_ buffer: ByteBuffer, endStream: Bool, flowControlled: Int) {
        guard phase == .forwarding else { return }
        if endStream { backendEnded = true } else { responseCredit.received(flowControlled) }
        responses.append(buffer)
        while phase == .forwarding {
            let message: GRPCMessage
            do {
                guard let next = try responses.next() else { break }
                message = next
            } catch {
                guard case .tooLarge(let size) = error else { return }
                return refuse(.resourceExhausted("the backend sent a \(size)-byte message, larger than max_message_bytes (\(state.config.maxMessageBytes))"), reason: "message_too_large")
            }
            forwardResponse(message)
        }
        if endStream && phase == .forwarding {
            // DATA with END_STREAM and no trailers is not gRPC.
            refuse(SparkgateError(.internal, "backend '\(backendName)' ended the response without a status"), reason: "backend_no_status")
        }
        returnResponseCredit()
    }

    private func forwardResponse(_ message: GRPCMessage) {
        summary.responseBytes += message.framed.readableBytes
        if !firstResponseSeen {
            firstResponseSeen = true
            if method == .executePlan { runtime.metrics.firstResponse(seconds: secondsSinceStart) }
        }
        // Responses are never compressed: Sparkgate drops grpc-accept-encoding on the way in.
        guard !message.compressed, method.isServerStreaming || !responseRewrite.isIdentity || method == .interrupt else {
            return writeMessageToClient([message.framed])
        }
        let envelope: ResponseEnvelope
        do {
            envelope = try message.withPayload { try ResponseEnvelope.read($0, method: method) }
        } catch {
            runtime.logger.debug("backend response is not a valid protobuf message; passing it through", metadata: ["rpc.method": "\(method.name)"])
            return writeMessageToClient([message.framed])
        }
        if envelope.resultComplete { sawResultComplete = true }
        if envelope.arrow.bytes > 0 || envelope.arrow.rows > 0 {
            summary.resultBytes += envelope.arrow.bytes
            summary.rows += envelope.arrow.rows
            if resultLimitActive, let op = operationKey,
                let refusal = runtime.ledger.withLock({ $0.resultReceived(op, bytes: envelope.arrow.bytes, rows: envelope.arrow.rows) })
            {
                runtime.metrics.quotaRejection(team: state.teamLabel(op.session.owner.team), limit: refusal.limit)
                interruptOnBackend(op)
                runtime.calls.terminate(operation: op, with: refusal.error, now: WallClock.now())
                return refuse(refusal.error, reason: refusal.limit.rawValue)
            }
        }
        if method == .interrupt { interruptedIDs += envelope.interruptedIDs }
        let edits = responseRewrite.edits(for: envelope, method: method)
        if edits.isEmpty {
            writeMessageToClient([message.framed])
        } else {
            writeMessageToClient(EditedMessage.segments(of: message, applying: edits, allocator: allocator))
        }
    }

    private func finishWithBackendTrailers(_ trailers: HPACKHeaders, includeStatus: Bool) {
        var h = HPACKHeaders()
        h.reserveCapacity(trailers.count + 1)
        if includeStatus { h.add(name: ":status", value: "200") }
        for (name, value, indexing) in trailers where MetadataPolicy.forwardsResponseHeader(name) {
            h.add(name: name, value: value, indexing: indexing)
        }
        let status = trailers.first(name: "grpc-status") ?? "2"
        let message = trailers.first(name: "grpc-message").map(GRPCStatusMessage.decode) ?? ""
        complete(status: Int(status).flatMap(GRPCStatusCode.init(rawValue:)) ?? .unknown, statusMessage: message, reason: nil)
        writeToClient(.headers(.init(headers: h, endStream: true)))
        closeClientIfOpen()
    }

    /// The backend stream ended without trailers (reset, or the connection was lost).
    func backendStreamClosed(reset resetCode: HTTP2ErrorCode?) {
        backend = nil
        guard phase == .forwarding || phase == .connecting, !backendEnded else { return }
        runtime.metrics.backendError(backendName)
        let error: SparkgateError
        switch resetCode {
        case .refusedStream?:
            error = .unavailable("backend '\(backendName)' refused the stream; retry shortly")
        case .cancel?:
            error = SparkgateError(.cancelled, "backend '\(backendName)' cancelled the call")
        case .enhanceYourCalm?:
            error = .resourceExhausted("backend '\(backendName)' is overloaded (ENHANCE_YOUR_CALM)")
        case let code?:
            error = SparkgateError(.internal, "backend '\(backendName)' reset the stream (\(code))")
        case nil:
            error = .unavailable("lost the connection to backend '\(backendName)' during the call; retry")
        }
        refuse(error, reason: "backend_closed")
    }

    /// Asks the backend to stop an operation Sparkgate is ending (result quota, time limit).
    func interruptOnBackend(_ op: OperationKey) {
        guard let backendSessionID = summary.backendSessionID else { return }
        runtime.interruptOnBackend(operation: op, backendSessionID: backendSessionID, backend: backendName, on: eventLoop)
    }
}
