import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateFraming
import SparkgateSharedState
import SparkgateTransport

/// One client RPC glued to one backend stream on the same event loop: the I/O that carries out what its
/// `CallStateMachine` decides. It reads bytes into messages, reports events, and executes actions in the
/// order the machine produced them; it decides nothing itself.
final class ProxyCall {
    typealias Machine = CallStateMachine<HPACKHeaders, GRPCMessage>

    var machine: Machine
    let context: CallContext
    /// The configuration generation the call started under; a reload does not change it.
    let state: GatewayGeneration
    let frontend: FrontendConnectionHandler
    let streamID: HTTP2StreamID
    var head = RequestHead()
    var clientHeaders = HPACKHeaders()
    var requests = GRPCMessageReader()
    var responses = GRPCMessageReader(trustsLengths: true)
    var backend: BackendConnectionHandler?
    var backendStreamID: HTTP2StreamID?
    /// Its place in the loop's `DeadlineQueue` while it has a deadline.
    var deadlineSlot: Int?
    var registration: UInt64?
    /// A finished call's outcome, reported once its last frames are flushed.
    var finishedOutcome: CallOutcome?
    /// Spans of this call, when tracing is on.
    var trace: CallTrace?
    /// This call's share of `BufferedBytes`: received from one side, not yet written out to the other.
    private var heldBytes = 0
    private var released = false
    private var queue: [Machine.Action] = []
    private var executing = false

    init(
        context: CallContext, state: GatewayGeneration, frontend: FrontendConnectionHandler, streamID: HTTP2StreamID,
        peer: String, draining: Bool
    ) {
        self.context = context
        self.state = state
        self.frontend = frontend
        self.streamID = streamID
        self.machine = Machine(
            policy: state.callPolicy, now: frontend.writer.loop.now, peer: peer, draining: draining,
            backendIDs: frontend.backendIDs)
        queue.reserveCapacity(8)
    }

    var eventLoop: any EventLoop { frontend.writer.eventLoop }
    var operation: OperationKey? { machine.operation }
    var isClosed: Bool { machine.isClosed }

    /// Feeds an event to the machine and carries out its actions, in order. Events raised while actions run
    /// (an admission answered at once, a backend stream already open) queue their actions behind.
    func handle(_ event: Machine.Event) {
        trace?.observe(event)
        machine.handle(event, now: frontend.writer.loop.now, into: &queue)
        guard !executing else { return }
        executing = true
        var index = 0
        while index < queue.count {
            // Moved out, not copied: a copy would retain every payload once more, per action, per call.
            var action = Machine.Action.readRequests
            swap(&action, &queue[index])
            index += 1
            execute(action)
        }
        queue.removeAll(keepingCapacity: true)
        executing = false
    }

    /// An event from a timer, a promise or another loop: handled, then flushed (a read burst flushes
    /// everything else).
    func handleFromOutside(_ event: Machine.Event) {
        let nested = executing
        if !nested { frontend.writer.loop.tick() }
        handle(event)
        if !nested { frontend.writer.loop.flushDirty() }
    }

    // MARK: Client frames

    func start(_ headers: HPACKHeaders, endStream: Bool) {
        clientHeaders = headers
        for (name, value, _) in headers { head.add(name: name, value: value) }
        if let tracer = context.tracer {
            trace = CallTrace(
                tracer: tracer, headers: headers, method: String(head.path?.split(separator: "/").last ?? "unknown"))
        }
        handle(.requestHead(head, endStream: endStream, bufferedBytes: context.buffered.value))
    }

    /// Moves this call's share of the gateway's buffered bytes; once the call is accounted for, its share is
    /// gone and late flushes change nothing.
    func hold(_ delta: Int) {
        guard !released else { return }
        heldBytes += delta
        context.buffered.add(delta)
    }

    func releaseHeldBytes() {
        guard !released else { return }
        context.buffered.add(-heldBytes)
        heldBytes = 0
        released = true
    }

    func clientHeaders(endStream: Bool) {
        handle(.requestTrailers(endStream: endStream))
    }

    func clientData(_ buffer: ByteBuffer, endStream: Bool, windowBytes: Int) {
        if !isClosed {
            requests.append(buffer)
            hold(buffer.readableBytes)
        }
        handle(.requestData(bytes: windowBytes, endStream: endStream))
    }

    func clientGone() {
        handle(.clientGone)
    }

    func drain() {
        handle(.drain)
    }

    // MARK: Reading messages

    func readRequests() {
        while let item = requests.next() {
            switch item {
            case .prefix(let length, let compressed):
                handle(.requestPrefix(length: length, compressed: compressed))
            case .message(let message):
                let method = machine.method
                let inspect = state.callPolicy.inspectsPlans
                let envelope = message.withPayload { bytes in
                    Result<RequestEnvelope, WireError> { () throws(WireError) in
                        try RequestEnvelope.read(bytes, method: method, inspectingPlans: inspect)
                    }
                }
                handle(.requestMessage(message, envelope))
            }
            if isClosed { return }
        }
        handle(.requestsDrained(partialBytes: requests.bufferedBytes))
    }

    func readResponses(envelopes: Bool) {
        while let item = responses.next() {
            switch item {
            case .prefix(let length, let compressed):
                handle(.responsePrefix(length: length, compressed: compressed))
            case .message(let message):
                var envelope: ResponseEnvelope?
                if envelopes && !message.compressed {
                    let method = machine.method
                    envelope = try? message.withPayload { try ResponseEnvelope.read($0, method: method) }
                }
                handle(.responseMessage(message, envelope))
            }
            if isClosed { return }
        }
        handle(.responsesDrained(partialBytes: responses.bufferedBytes))
    }
}

extension ProxyCall: BackendStreamOwner {
    func backendHeaders(_ headers: HPACKHeaders, endStream: Bool) {
        handle(
            .responseHeaders(
                headers, httpStatus: headers.first(name: ":status"),
                status: endStream ? ResponseHeaders.backendStatus(headers) : nil))
    }

    func backendData(_ data: ByteBuffer, endStream: Bool, windowBytes: Int) {
        if !isClosed {
            responses.append(data)
            hold(data.readableBytes)
        }
        handle(.responseData(bytes: windowBytes, endStream: endStream))
    }

    func backendStreamClosed(reset: HTTP2ErrorCode?) {
        backend = nil
        backendStreamID = nil
        let reason: BackendReset
        switch reset {
        case nil: reason = .connectionLost
        case .refusedStream?: reason = .refusedStream
        case .cancel?: reason = .cancel
        case .enhanceYourCalm?: reason = .enhanceYourCalm
        case let code?: reason = .other("\(code)")
        }
        handle(.backendReset(reason))
    }
}
