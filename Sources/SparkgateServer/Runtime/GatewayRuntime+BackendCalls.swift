import NIOCore
import NIOHPACK
import SparkgateCore

extension GatewayRuntime {
    /// Makes a unary call to the backend that serves `backendSessionID`.
    func unaryCall(backend name: String, backendSessionID: String, method: String, message: [UInt8], on loop: any EventLoop) -> EventLoopFuture<(GRPCStatusCode, String)> {
        let state = self.state
        guard let backend = state.config.backends[name], !backend.endpoints.isEmpty else {
            return loop.makeFailedFuture(SparkgateError.unavailable("backend '\(name)' is not configured"))
        }
        let address = BackendEndpoint.choose(backend.endpoints, for: backendSessionID)
        let endpoint = BackendEndpoint(backend: name, address: address, tls: backend.tls)
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: backend.tls ? "https" : "http")
        headers.add(name: ":path", value: SparkConnectMethod.servicePrefix + method)
        headers.add(name: ":authority", value: address.description)
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "te", value: "trailers")
        headers.add(name: "grpc-timeout", value: "30S")
        if let token = state.backendTokens[name] { headers.add(name: "authorization", value: "Bearer \(token)", indexing: .neverIndexed) }
        let promise = loop.makePromise(of: (GRPCStatusCode, String).self)
        let timeout = TimeAmount.nanoseconds(Int64(backend.connectTimeoutSeconds * 1e9))
        let pool = self.pool
        let tls = state.backendTLS[name]
        // Sparkgate's own calls start in tasks: build the call on its event loop.
        loop.execute {
            let call = BackendUnaryCall(promise: promise)
            pool.openStream(to: endpoint, on: loop, tls: tls, connectTimeout: timeout, owner: call, headers: headers).whenComplete { result in
                switch result {
                case .success((let handler, let id)):
                    handler.write(.data(.init(data: .byteBuffer(BackendUnaryCall.framed(message)), endStream: true)), on: id, promise: nil)
                    handler.flushNow()
                case .failure(let error):
                    promise.fail(error)
                }
            }
        }
        return promise.futureResult
    }

    /// Interrupts an operation on its backend (past its result or time limit); failures are logged.
    func interruptOnBackend(operation: OperationKey, backendSessionID: String, backend: String, on loop: any EventLoop) {
        let message = GatewayRequests.interrupt(backendSessionID: backendSessionID, user: operation.session.owner.user, operationID: operation.operationID)
        let logger = self.logger
        unaryCall(backend: backend, backendSessionID: backendSessionID, method: "Interrupt", message: message, on: loop).whenComplete { result in
            switch result {
            case .success((.ok, _)):
                logger.info("interrupted an operation on the backend", metadata: ["operation.id": "\(operation.operationID)", "team": "\(operation.session.owner.team)"])
            case .success((let code, let text)):
                logger.warning("the backend refused to interrupt an operation", metadata: ["operation.id": "\(operation.operationID)", "grpc.status": "\(code.name)", "grpc.message": "\(text)"])
            case .failure(let error):
                logger.warning("could not interrupt an operation on the backend", metadata: ["operation.id": "\(operation.operationID)", "error": "\(error)"])
            }
        }
    }

    /// Releases a session on its backend, as its owner.
    func releaseOnBackend(_ session: SessionRecord, on loop: any EventLoop) -> EventLoopFuture<(GRPCStatusCode, String)> {
        let message = GatewayRequests.releaseSession(backendSessionID: session.backendSessionID, user: session.owner.user)
        return unaryCall(backend: session.backend, backendSessionID: session.backendSessionID, method: "ReleaseSession", message: message, on: loop)
    }
}
