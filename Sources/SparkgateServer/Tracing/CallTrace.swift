import NIOHPACK
import SparkgateCore
import Tracing

/// One RPC's spans: a server span from the request's headers to its last action, continuing the client's
/// W3C `traceparent`, with child spans for authentication, admission, the backend stream's opening and the
/// wait for the first response. It watches the call's events and actions; it changes none of them.
final class CallTrace {
    private let tracer: any Tracer
    private let root: any Span
    /// An unsampled call still passes its context on, but records nothing: no children, no attributes.
    private let recording: Bool
    private var identity: (user: String, team: String)?
    private var backend: String?
    private var authenticating: (any Span)?
    private var admitting: (any Span)?
    private var connecting: (any Span)?
    private var awaitingResponse: (any Span)?

    init(tracer: any Tracer, headers: HPACKHeaders, method: String) {
        self.tracer = tracer
        var parent = ServiceContext.topLevel
        tracer.extract(headers, into: &parent, using: HeaderExtractor())
        root = tracer.startSpan("spark.connect.SparkConnectService/\(method)", context: parent, ofKind: .server)
        recording = root.isRecording
        self.method = method
    }

    private let method: String

    private func child(_ name: String) -> (any Span)? {
        recording ? tracer.startSpan(name, context: root.context, ofKind: .internal) : nil
    }

    /// The backend request carries this call's context (the client's own `traceparent` is replaced), so a
    /// trace runs from the notebook through Sparkgate to Spark.
    func inject(into headers: inout HPACKHeaders) {
        headers.remove(name: "traceparent")
        headers.remove(name: "tracestate")
        tracer.inject(root.context, into: &headers, using: HeaderInjector())
    }

    func observe<Metadata>(_ action: CallAction<Metadata>) {
        switch action {
        case .authenticate:
            if authenticating == nil { authenticating = child("sparkgate.authenticate") }
        case .admit:
            admitting = child("sparkgate.admit")
        case .openBackend(let route):
            backend = route.backend
            connecting = child("sparkgate.backend.connect")
        case .sendResponseHead, .sendResponse, .forwardTrailers, .answerLocally:
            end(&awaitingResponse)
        case .finish(let outcome):
            finish(outcome)
        default:
            break
        }
    }

    func observe<Metadata>(_ event: CallEvent<Metadata>) {
        switch event {
        case .authenticated(let token, _):
            identity = (token.identity.user, token.identity.team)
            end(&authenticating)
        case .authenticationFailed(let failure):
            authenticating?.attributes["sparkgate.auth_failure"] = failure.reason.rawValue
            end(&authenticating)
        case .admissionDecided:
            end(&admitting)
        case .backendOpened:
            end(&connecting)
            awaitingResponse = child("sparkgate.backend.first_response")
        case .backendOpenFailed, .backendSessionLost:
            end(&connecting)
        default:
            break
        }
    }

    private func finish(_ outcome: CallOutcome) {
        for open in [authenticating, admitting, connecting, awaitingResponse] { open?.end() }
        authenticating = nil
        admitting = nil
        connecting = nil
        awaitingResponse = nil
        guard recording else { return root.end() }
        let s = outcome.summary
        // One update: each attribute set on its own would take the span's lock again.
        root.updateAttributes { a in
            a["rpc.system"] = "grpc"
            a["rpc.service"] = "spark.connect.SparkConnectService"
            a["rpc.method"] = method
            a["rpc.grpc.status_code"] = Int(outcome.code.rawValue)
            if let v = s.user ?? identity?.user { a["enduser.id"] = v }
            if let v = s.team ?? identity?.team { a["sparkgate.team"] = v }
            if let v = s.sessionID { a["spark.session_id"] = v }
            if let v = s.backendSessionID { a["spark.backend_session_id"] = v }
            if let v = s.operationID { a["spark.operation_id"] = v }
            if let v = s.backend ?? backend { a["sparkgate.backend"] = v }
            if let v = s.reason { a["sparkgate.reason"] = v }
            if let v = s.errorClass { a["spark.error_class"] = v }
            a["sparkgate.request_bytes"] = s.requestBytes
            a["sparkgate.response_bytes"] = s.responseBytes
            a["sparkgate.result_bytes"] = s.resultBytes
            a["sparkgate.result_rows"] = Int(s.rows)
        }
        if outcome.code != .ok {
            root.setStatus(SpanStatus(code: .error, message: outcome.code.name))
        }
        root.end()
    }

    private func end(_ span: inout (any Span)?) {
        span?.end()
        span = nil
    }
}

private struct HeaderExtractor: Extractor {
    func extract(key: String, from carrier: HPACKHeaders) -> String? {
        carrier.first(name: key)
    }
}

private struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HPACKHeaders) {
        carrier.add(name: key, value: value)
    }
}
