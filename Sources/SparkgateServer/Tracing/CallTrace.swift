import NIOHPACK
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import Tracing

/// One RPC's spans: a server span from the request's headers to its last action, with child spans for
/// authentication, admission, the backend stream's opening and the wait for the first response. It
/// watches the call's events and actions; it changes none of them.
///
/// The spans start once the token is decided, back-dated to the request's arrival: a verified caller's
/// W3C `traceparent` is continued (its sampling decision followed), while a call that never authenticated
/// gets a trace of its own under the sample ratio, so a flood of bad tokens with `sampled` set cannot make
/// the gateway record and export spans for every refusal.
final class CallTrace {
    private let tracer: any Tracer
    private let method: String
    private let arrived: DefaultTracerClock.Instant
    private var clientContext: ServiceContext
    private var authenticationStarted: DefaultTracerClock.Instant?
    private var root: (any Span)?
    /// An unsampled call still passes its context on, but records nothing: no children, no attributes.
    private var recording = false
    private var identity: (user: String, team: String)?
    private var backend: String?
    private var admitting: (any Span)?
    private var connecting: (any Span)?
    private var awaitingResponse: (any Span)?

    init(tracer: any Tracer, headers: HPACKHeaders, method: String) {
        self.tracer = tracer
        self.method = method
        self.arrived = DefaultTracerClock.now
        var parent = ServiceContext.topLevel
        tracer.extract(headers, into: &parent, using: HeaderExtractor())
        clientContext = parent
    }

    /// Starts the server span, back-dated to the request's arrival, with the authentication as its first child.
    private func begin(trusted: Bool, failure: AuthFailure.Reason? = nil) {
        guard root == nil else { return }
        let span = tracer.startSpan(
            "spark.connect.SparkConnectService/\(method)", context: trusted ? clientContext : .topLevel,
            ofKind: .server, at: arrived)
        root = span
        recording = span.isRecording
        guard recording, let started = authenticationStarted else { return }
        let auth = tracer.startSpan("sparkgate.authenticate", context: span.context, ofKind: .internal, at: started)
        if let failure { auth.attributes["sparkgate.auth_failure"] = failure.rawValue }
        auth.end()
    }

    private func child(_ name: String) -> (any Span)? {
        guard recording, let root else { return nil }
        return tracer.startSpan(name, context: root.context, ofKind: .internal)
    }

    /// The backend request carries this call's context (the client's own `traceparent` is replaced), so a
    /// trace runs from the notebook through Sparkgate to Spark.
    func inject(into headers: inout HPACKHeaders) {
        guard let root else { return }
        headers.remove(name: "traceparent")
        headers.remove(name: "tracestate")
        tracer.inject(root.context, into: &headers, using: HeaderInjector())
    }

    func observe<Metadata, Message>(_ action: CallAction<Metadata, Message>) {
        switch action {
        case .authenticate:
            if authenticationStarted == nil { authenticationStarted = DefaultTracerClock.now }
        case .admit:
            admitting = child("sparkgate.admit")
        case .readBackendHealth(let name, _): connectingBegins(name)
        case .findEngine(let request): connectingBegins(request.key.backend)
        case .recordPlacement: connectingBegins(nil)
        case .openStream(let request): connectingBegins(request.backend)
        case .sendResponseHead, .sendResponse, .forwardTrailers, .answerLocally:
            end(&awaitingResponse)
        case .finish(let outcome):
            finish(outcome)
        default:
            break
        }
    }

    /// The backend's opening began (with its first step): routing, an engine, a placement or the stream.
    private func connectingBegins(_ name: String?) {
        if backend == nil { backend = name }
        if connecting == nil { connecting = child("sparkgate.backend.connect") }
    }

    func observe<Metadata, Message>(_ event: CallEvent<Metadata, Message>) {
        switch event {
        case .authenticated(let token, _):
            identity = (token.identity.user, token.identity.team)
            begin(trusted: true)
        case .authenticationFailed(let failure):
            begin(trusted: false, failure: failure.reason)
        case .admissionDecided:
            end(&admitting)
        case .backendOpened:
            end(&connecting)
            awaitingResponse = child("sparkgate.backend.first_response")
        case .backendOpenFailed, .backendStreamFailed, .backendSessionLost:
            end(&connecting)
        default:
            break
        }
    }

    private func finish(_ outcome: CallOutcome) {
        // A call that ended before its token was decided (a client gone, a deadline) is not the client's to sample.
        begin(trusted: false)
        for open in [admitting, connecting, awaitingResponse] { open?.end() }
        admitting = nil
        connecting = nil
        awaitingResponse = nil
        guard let root else { return }
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
