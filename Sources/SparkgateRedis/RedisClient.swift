import Crypto
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Where and how to reach Redis.
public struct RedisEndpoints: Sendable {
    public var addresses: [(host: String, port: Int)]
    public var password: String?
    /// TLS toward Redis (`rediss`), with the system's trust roots unless the context says otherwise.
    public var tls: NIOSSLContext?
    /// Every command's reply deadline.
    public var timeout: TimeAmount

    public init(addresses: [(host: String, port: Int)], password: String? = nil, tls: NIOSSLContext? = nil, timeout: TimeAmount = .milliseconds(200)) {
        self.addresses = addresses
        self.password = password
        self.tls = tls
        self.timeout = timeout
    }
}

/// A small Redis client: one pipelined connection per event loop, made on first use, with the addresses tried
/// in order; after a failure the loop waits out a backoff (100 ms doubling to 5 s) and commands fail at once
/// meanwhile, so callers apply their failure policy instead of queueing behind a dead server. A command
/// without a reply in `timeout` fails, and its connection is closed (a stalled server stalls the whole
/// pipeline).
public final class RedisClient: Sendable {
    let endpoints: RedisEndpoints
    let logger: Logger
    private let connections = Mutex<[ObjectIdentifier: LoopConnection]>([:])

    public init(endpoints: RedisEndpoints, logger: Logger) {
        self.endpoints = endpoints
        self.logger = logger
    }

    /// Sends one command on `loop`'s connection; the future completes on `loop`.
    public func send(_ arguments: [[UInt8]], on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        connection(for: loop).send(arguments)
    }

    public func send(_ parts: String..., on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        send(RESPCommand.arguments(parts), on: loop)
    }

    /// Runs a Lua script: by its SHA-1 once this connection has sent it in full, so commands keep their
    /// order (a NOSCRIPT retry would overtake commands sent in between); a server that lost its scripts
    /// (restarted, flushed) gets it in full again.
    public func run(_ script: RedisScript, keys: [String], arguments: [String], on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        let tail = RESPCommand.arguments([String(keys.count)] + keys + arguments)
        let connection = connection(for: loop)
        return connection.run(script, tail).flatMapError { error in
            guard case .server(let message) = error as? RedisError, message.hasPrefix("NOSCRIPT") else {
                return loop.makeFailedFuture(error)
            }
            return connection.send([Array("EVAL".utf8), Array(script.source.utf8)] + tail)
        }
    }

    /// Closes every connection.
    public func shutdown() {
        let all = connections.withLock { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        for connection in all { connection.close() }
    }

    private func connection(for loop: any EventLoop) -> LoopConnection {
        let id = ObjectIdentifier(loop)
        return connections.withLock { table in
            if let existing = table[id] { return existing }
            let made = LoopConnection(loop: loop, client: self)
            table[id] = made
            return made
        }
    }

    /// Connects to the first address that answers, authenticating when a password is configured.
    func connect(on loop: any EventLoop) -> EventLoopFuture<any Channel> {
        let endpoints = self.endpoints
        @Sendable func attempt(_ index: Int, lastError: (any Error)?) -> EventLoopFuture<any Channel> {
            guard index < endpoints.addresses.count else {
                return loop.makeFailedFuture(lastError ?? RedisError.connection("no redis address configured"))
            }
            let (host, port) = endpoints.addresses[index]
            let tls = endpoints.tls
            return ClientBootstrap(group: loop)
                .connectTimeout(.nanoseconds(max(endpoints.timeout.nanoseconds * 5, 1_000_000_000)))
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: host)) }
                        try channel.pipeline.syncOperations.addHandler(RedisConnectionHandler())
                    }
                }
                .connect(host: host, port: port)
                .flatMap { channel in
                    guard let password = endpoints.password else { return loop.makeSucceededFuture(channel) }
                    let promise = loop.makePromise(of: RESPValue.self)
                    channel.writeAndFlush(RedisRequest(arguments: RESPCommand.arguments(["AUTH", password]), promise: promise), promise: nil)
                    return promise.futureResult.map { _ in channel }.flatMapErrorThrowing { error in
                        channel.close(promise: nil)
                        throw error
                    }
                }
                .flatMapError { error in attempt(index + 1, lastError: error) }
        }
        return attempt(0, lastError: nil)
    }
}

/// The connection of one event loop; touched only on that loop.
final class LoopConnection: @unchecked Sendable {
    private enum State {
        case idle
        case connecting(EventLoopFuture<any Channel>)
        case connected(any Channel)
        case backingOff(until: NIODeadline, reason: String)
    }

    let loop: any EventLoop
    unowned let client: RedisClient
    private var state = State.idle
    private var backoff = TimeAmount.milliseconds(100)
    /// Scripts sent in full on the current connection.
    private var loadedScripts: Set<String> = []

    init(loop: any EventLoop, client: RedisClient) {
        self.loop = loop
        self.client = client
    }

    func send(_ arguments: [[UInt8]]) -> EventLoopFuture<RESPValue> {
        guard loop.inEventLoop else {
            return loop.flatSubmit { self.send(arguments) }
        }
        switch state {
        case .connected(let channel) where channel.isActive:
            return write(arguments, on: channel)
        case .connecting(let future):
            return future.flatMap { self.write(arguments, on: $0) }
        case .backingOff(let until, let reason) where NIODeadline.now() < until:
            return loop.makeFailedFuture(RedisError.connection("\(reason); reconnecting"))
        case .idle, .connected, .backingOff:
            let future = client.connect(on: loop)
            state = .connecting(future)
            future.whenComplete { result in
                switch result {
                case .success(let channel):
                    self.state = .connected(channel)
                    self.loadedScripts = []
                    self.backoff = .milliseconds(100)
                    channel.closeFuture.whenComplete { _ in
                        if case .connected(let current) = self.state, current === channel { self.state = .idle }
                    }
                case .failure(let error):
                    self.state = .backingOff(until: .now() + self.backoff, reason: "\(error)")
                    self.client.logger.warning("cannot reach redis", metadata: ["error": "\(error)", "retry.ms": "\(self.backoff.nanoseconds / 1_000_000)"])
                    self.backoff = min(self.backoff * 2, .seconds(5))
                }
            }
            return future.flatMap { self.write(arguments, on: $0) }
        }
    }

    func run(_ script: RedisScript, _ tail: [[UInt8]]) -> EventLoopFuture<RESPValue> {
        guard loop.inEventLoop else {
            return loop.flatSubmit { self.run(script, tail) }
        }
        if case .connected(let channel) = state, channel.isActive, loadedScripts.contains(script.sha1) {
            return send([Array("EVALSHA".utf8), Array(script.sha1.utf8)] + tail)
        }
        let sent = send([Array("EVAL".utf8), Array(script.source.utf8)] + tail)
        if case .connected(let channel) = state, channel.isActive { loadedScripts.insert(script.sha1) }
        return sent
    }

    private func write(_ arguments: [[UInt8]], on channel: any Channel) -> EventLoopFuture<RESPValue> {
        let promise = loop.makePromise(of: RESPValue.self)
        let timeout = client.endpoints.timeout
        let timer = loop.scheduleTask(in: timeout) {
            // The pipeline is stuck behind this reply: close it, which fails everything pending on it.
            channel.pipeline.fireErrorCaught(RedisError.timeout(milliseconds: Int(timeout.nanoseconds / 1_000_000)))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        channel.writeAndFlush(RedisRequest(arguments: arguments, promise: promise), promise: nil)
        return promise.futureResult
    }

    func close() {
        loop.execute {
            if case .connected(let channel) = self.state { channel.close(promise: nil) }
            self.state = .idle
        }
    }
}

/// A Lua script with its SHA-1, for EVALSHA.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
