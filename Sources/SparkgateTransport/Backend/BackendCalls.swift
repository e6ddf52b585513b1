import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import SparkgateCore
import SparkgateFraming

/// The unary calls Sparkgate makes to backends on its own behalf: interrupting an operation it ends,
/// releasing a session it reaps or an operator kills.
package struct BackendCalls: Sendable {
    package static let clientType = "sparkgate"

    package let pool: BackendPool
    package let engines: any EngineLookup
    package let logger: Logger

    package init(pool: BackendPool, engines: any EngineLookup, logger: Logger) {
        self.pool = pool
        self.engines = engines
        self.logger = logger
    }

    /// Calls `method` with `message` on the backend that serves `backendSessionID`, where the session lives
    /// (its endpoint, or its engine for a launch pool; the first endpoint in rendezvous order when it was
    /// never placed); completes with its status.
    package func call(
        backend name: String, backendSessionID: String, method: String, message: [UInt8], access: BackendAccess,
        on loop: any EventLoop,
        placement: SessionPlacement = SessionPlacement(), timeoutSeconds: Int = 30
    ) -> EventLoopFuture<BackendStatus> {
        let address = placement.endpoint
        let engine = placement.engine
        guard let backend = access.config.backends[name] else {
            return loop.makeFailedFuture(SparkgateError.unavailable("backend '\(name)' is not configured"))
        }
        let endpoint: BackendEndpoint
        let token: String?
        if backend.launch != nil {
            guard let engine, let target = engines.target(engine) else {
                return loop.makeFailedFuture(
                    SparkgateError.unavailable("backend '\(name)': the session's engine is not running"))
            }
            endpoint = BackendEndpoint(backend: name, address: target.address, tls: false)
            token = target.token
        } else {
            guard !backend.endpoints.isEmpty else {
                return loop.makeFailedFuture(SparkgateError.unavailable("backend '\(name)' is not configured"))
            }
            // A recorded placement is only ever one of the backend's endpoints: the token goes nowhere else.
            if let address, !backend.endpoints.contains(address) {
                return loop.makeFailedFuture(
                    SparkgateError.unavailable(
                        "backend '\(name)': the session's recorded endpoint \(address) is not one of its endpoints; nothing was sent"
                    ))
            }
            endpoint = BackendEndpoint(
                backend: name, address: address ?? EndpointSelection.rank(backend.endpoints, for: backendSessionID)[0],
                tls: backend.tls)
            token = access.tokens[name]
        }
        return call(
            endpoint, token: token, method: method, message: message, tls: access.tls[name],
            connectTimeoutSeconds: backend.connectTimeoutSeconds,
            limits: access.config.limits, on: loop, timeoutSeconds: timeoutSeconds)
    }

    /// Calls `method` with `message` on one endpoint with `token`.
    package func call(
        _ endpoint: BackendEndpoint, token: String?, method: String, message: [UInt8], tls: NIOSSLContext?,
        connectTimeoutSeconds: Double, limits: ConnectionLimits,
        on loop: any EventLoop, timeoutSeconds: Int
    ) -> EventLoopFuture<BackendStatus> {
        let headers = BackendRequestHeaders.make(
            path: SparkConnectMethod.servicePrefix + method, endpoint: endpoint, token: token,
            extra: [("grpc-timeout", "\(timeoutSeconds)S")])
        let promise = loop.makePromise(of: BackendStatus.self)
        let timeout = TimeAmount.nanoseconds(Int64(connectTimeoutSeconds * 1e9))
        let pool = self.pool
        // Sparkgate's own calls start in tasks: build the call on its event loop.
        loop.execute {
            let call = UnaryBackendCall(promise: promise)
            pool.openStream(
                to: endpoint, on: loop, tls: tls, connectTimeout: timeout, limits: limits, owner: call, headers: headers
            ).assumeIsolated().whenComplete { result in
                switch result {
                case .success((let handler, let id)):
                    handler.writer.write(
                        .data(.init(data: .byteBuffer(GRPCMessage.frame(payload: message).framed), endStream: true)),
                        on: id, promise: nil)
                    handler.writer.flushNow()
                case .failure(let error):
                    promise.fail(error)
                }
            }
        }
        return promise.futureResult
    }

    /// Interrupts an operation on its backend (past its result or time limit); failures are logged.
    package func interrupt(
        _ operation: OperationKey, backendSessionID: String, backend: String, placement: SessionPlacement,
        access: BackendAccess, on loop: any EventLoop
    ) {
        let message = GatewayRequests.interrupt(
            backendSessionID: backendSessionID, user: operation.session.owner.user, operationID: operation.operationID)
        let logger = self.logger
        call(
            backend: backend, backendSessionID: backendSessionID, method: "Interrupt", message: message, access: access,
            on: loop, placement: placement
        ).whenComplete { result in
            switch result {
            case .success(let status) where status.code == .ok:
                logger.info(
                    "interrupted an operation on the backend",
                    metadata: ["operation.id": "\(operation.operationID)", "team": "\(operation.session.owner.team)"])
            case .success(let status):
                logger.warning(
                    "the backend refused to interrupt an operation",
                    metadata: ["operation.id": "\(operation.operationID)", "grpc.status": "\(status.code.name)"])
            case .failure(let error):
                logger.warning(
                    "could not interrupt an operation on the backend",
                    metadata: ["operation.id": "\(operation.operationID)", "error": "\(error)"])
            }
        }
    }

    /// Releases a session on its backend, as its owner.
    package func release(
        _ session: SessionRecord, access: BackendAccess, on loop: any EventLoop
    ) -> EventLoopFuture<BackendStatus> {
        let message = GatewayRequests.releaseSession(
            backendSessionID: session.backendSessionID, user: session.owner.user)
        return call(
            backend: session.backend, backendSessionID: session.backendSessionID, method: "ReleaseSession",
            message: message, access: access, on: loop,
            placement: session.placement)
    }

    /// A health check: a Config call (the value of `spark.app.name`) on one endpoint, with the backend's
    /// token, in a session of its own that every check reuses.
    package func check(
        backend: String, address: HostPort, access: BackendAccess, timeoutSeconds: Double, on loop: any EventLoop
    ) -> EventLoopFuture<BackendStatus> {
        let message = GatewayRequests.healthCheck(sessionID: Self.healthSessionID)
        let status = call(
            backend: backend, backendSessionID: Self.healthSessionID, method: "Config", message: message,
            access: access, on: loop,
            placement: SessionPlacement(endpoint: address),
            timeoutSeconds: max(1, Int(timeoutSeconds.rounded(.up))))
        return Self.bounded(status, seconds: timeoutSeconds, on: loop)
    }

    /// A launched engine's readiness probe: the health check's Config call, with the engine's own token.
    package func probe(
        _ target: EngineTarget, backend: String, limits: ConnectionLimits, timeoutSeconds: Double,
        on loop: any EventLoop
    ) -> EventLoopFuture<BackendStatus> {
        let status = call(
            BackendEndpoint(backend: backend, address: target.address, tls: false), token: target.token,
            method: "Config",
            message: GatewayRequests.healthCheck(sessionID: Self.healthSessionID), tls: nil,
            connectTimeoutSeconds: timeoutSeconds, limits: limits, on: loop,
            timeoutSeconds: max(1, Int(timeoutSeconds.rounded(.up))))
        return Self.bounded(status, seconds: timeoutSeconds, on: loop)
    }

    private static func bounded(
        _ status: EventLoopFuture<BackendStatus>, seconds timeoutSeconds: Double, on loop: any EventLoop
    ) -> EventLoopFuture<BackendStatus> {
        // The first of the answer and the timeout decides (a connect can hang longer than grpc-timeout).
        let decided = loop.makePromise(of: BackendStatus.self)
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(timeoutSeconds * 1e9))) {
            decided.fail(SparkgateError.unavailable("no answer within \(timeoutSeconds) s"))
        }
        status.whenComplete { result in
            timer.cancel()
            decided.completeWith(result)
        }
        return decided.futureResult
    }

    package static let healthSessionID = UUIDText.random()
}

/// One unary call Sparkgate makes: completes with the backend's status.
private final class UnaryBackendCall: BackendStreamOwner {
    package let promise: EventLoopPromise<BackendStatus>

    package init(promise: EventLoopPromise<BackendStatus>) {
        self.promise = promise
    }

    package func backendHeaders(_ headers: HPACKHeaders, endStream: Bool) {
        guard endStream else { return }
        promise.succeed(ResponseHeaders.backendStatus(headers))
    }

    package func backendData(_ data: ByteBuffer, endStream: Bool, windowBytes: Int) {}

    package func backendStreamClosed(reset: HTTP2ErrorCode?) {
        promise.fail(SparkgateError.unavailable("the backend closed the stream without a status"))
    }
}

/// The request messages Sparkgate sends on its own behalf.
package enum GatewayRequests {
    /// `InterruptRequest` for one operation (interrupt_type = OPERATION_ID).
    package static func interrupt(backendSessionID: String, user: String, operationID: String) -> [UInt8] {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, backendSessionID, to: &m)
        m += UserContextField.encode(user: user)
        WireEncoding.appendString(field: 3, BackendCalls.clientType, to: &m)
        WireEncoding.appendTag(field: 4, wireType: .varint, to: &m)
        WireEncoding.appendVarint(3, to: &m)
        WireEncoding.appendString(field: 6, operationID, to: &m)
        return m
    }

    /// `ConfigRequest` with `get_option { keys: "spark.app.name" }`.
    package static func healthCheck(sessionID: String) -> [UInt8] {
        var getOption: [UInt8] = []
        WireEncoding.appendString(field: 1, "spark.app.name", to: &getOption)
        var operation: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 4, getOption, to: &operation)
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, sessionID, to: &m)
        m += UserContextField.encode(user: "sparkgate-health")
        WireEncoding.appendLengthDelimited(field: 3, operation, to: &m)
        WireEncoding.appendString(field: 4, BackendCalls.clientType, to: &m)
        return m
    }

    /// `ReleaseSessionRequest`.
    package static func releaseSession(backendSessionID: String, user: String) -> [UInt8] {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, backendSessionID, to: &m)
        m += UserContextField.encode(user: user)
        WireEncoding.appendString(field: 3, BackendCalls.clientType, to: &m)
        return m
    }
}
