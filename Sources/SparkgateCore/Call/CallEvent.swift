/// Something that happened to one proxied RPC, as the I/O layer reports it to `CallStateMachine`.
///
/// `Metadata` is the I/O layer's header block and `Message` one whole gRPC message as it holds it: the machine
/// passes both back without looking inside. Each message read is handed to the machine with what was read of
/// it, and the machine keeps it, in order, until it says to send it (`sendRequest`, `sendResponse`) or the call
/// ends: one queue, so a message and its decision cannot part.
///
/// Cases with a large payload are `indirect` (an enum is as large as its largest case, and events are moved
/// several times each); the ones that come once per message stay inline.
public enum CallEvent<Metadata, Message> {
    // MARK: Client side

    /// The request's HEADERS. Always the first event. `bufferedBytes` is what all calls together hold in the
    /// gateway now (a new call is refused past `CallPolicy.maxBufferedBytes`).
    indirect case requestHead(RequestHead, endStream: Bool, bufferedBytes: Int)
    /// A later HEADERS frame from the client (gRPC clients send none; END_STREAM on it ends the request).
    case requestTrailers(endStream: Bool)
    /// A DATA frame: `bytes` is what it counts against flow control.
    case requestData(bytes: Int, endStream: Bool)
    /// The 5-byte prefix of the next request message arrived, before any of its payload is buffered.
    case requestPrefix(length: Int, compressed: Bool)
    /// The next whole request message was read: its routing fields (or why they could not be read).
    indirect case requestMessage(Message, Result<RequestEnvelope, WireError>)
    /// The reader holds no whole message any more; `partialBytes` of an unfinished one remain.
    case requestsDrained(partialBytes: Int)
    /// A request message written to the backend left the gateway.
    case requestFlushed(bytes: Int)
    /// The client reset the stream or its connection closed.
    case clientGone

    // MARK: Authentication and admission

    /// The token verified; `team` is the caller's team as configured, nil when the team is unknown.
    indirect case authenticated(VerifiedToken, team: SparkgateConfig.Team?)
    indirect case authenticationFailed(AuthFailure)
    /// The token names a key id nobody knows: it may be a key the identity provider just rotated in.
    /// `mayRefresh` says whether the key set may be fetched again now (refreshes are rate-limited).
    indirect case unknownKey(AuthFailure, mayRefresh: Bool)
    /// The key set was fetched again (`CallAction.refreshKeys`).
    case keysRefreshed
    /// The ledger's answer to `CallAction.admit`.
    indirect case admissionDecided(Result<AdmissionGrant, QuotaOrPolicyRefusal>)
    /// The ledger's answer to `CallAction.chargeArtifacts`: nil when the upload fits the session's quota.
    indirect case artifactsCharged(QuotaRefusal?)
    /// The ledger's answer to `CallAction.chargeResults`: nil when the result fits the operation's quota.
    indirect case resultsCharged(QuotaRefusal?)

    // MARK: Backend side

    /// The answer to `CallAction.recallOperationEnd`: why Sparkgate ended the operation, nil when it did not.
    indirect case operationEndRecalled(SparkgateError?)
    /// The answer to `CallAction.readBackendHealth`: the endpoints that take no new sessions now.
    indirect case backendHealthRead(unhealthy: [HostPort])
    /// The answer to `CallAction.recordPlacement`: where the session lives now as every replica reads it.
    indirect case placementRecorded(SessionPlacement)
    /// The answer to `CallAction.findEngine`.
    indirect case engineReady(ReadyEngine)
    case backendOpened
    /// No stream to open: the backend is not configured, or its engine could not be had.
    indirect case backendOpenFailed(SparkgateError)
    /// The stream of `CallAction.openStream` did not open (`reason` says why, for the client and the
    /// endpoint's health).
    indirect case backendStreamFailed(reason: String)
    /// The session's state is gone from the backend (the launched engine it lived on stopped): the call is
    /// refused with this error, except a ReleaseSession, which has nothing left to release and succeeds.
    indirect case backendSessionLost(SparkgateError)
    /// A HEADERS frame from the backend: its response head, its trailers (`status`, with END_STREAM), or a
    /// trailers-only response (both at once). The machine knows which.
    case responseHeaders(Metadata, httpStatus: String?, status: BackendStatus?)
    case responseData(bytes: Int, endStream: Bool)
    case responsePrefix(length: Int, compressed: Bool)
    /// The next whole response message was read; its envelope is nil when the machine did not ask for it or
    /// it did not parse.
    case responseMessage(Message, ResponseEnvelope?)
    case responsesDrained(partialBytes: Int)
    /// A response message written to the client left the gateway.
    case responseFlushed(bytes: Int)
    /// The backend stream ended without trailers.
    case backendReset(BackendReset)

    // MARK: The gateway

    /// The call's `grpc-timeout` passed.
    case deadlineExpired
    /// Sparkgate ends the call from outside: an operation past a limit, an operator's kill, the end of a drain.
    indirect case terminated(SparkgateError, reason: String)
    /// A graceful shutdown began: new operations are refused, running ones finish.
    case drain
}

/// How a backend stream ended without trailers.
public enum BackendReset: Sendable, Equatable {
    case refusedStream
    case cancel
    case enhanceYourCalm
    case other(String)
    /// The connection to the backend closed (or went away with GOAWAY before this stream was served).
    case connectionLost
}
