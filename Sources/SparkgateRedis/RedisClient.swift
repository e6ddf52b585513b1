import Crypto
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SparkgateRESP
import Synchronization

/// A small Redis client: one pipelined connection per event loop, made on first use, to the first of the
/// configured addresses that answers or to the master Redis Sentinel names.
///
/// Every step has the configured deadline: connecting, TLS with AUTH, SELECT, the master's ROLE check, each
/// command. A connection-level failure (a deadline passed, a refused or lost connection, a demoted master)
/// opens a breaker shared by every loop: commands then fail at once, so callers apply their failure policy
/// instead of each waiting out a deadline, while a probe retries in the background every `probeInterval`
/// and closes the breaker at the first answer.
public final class RedisClient: Sendable {
    let endpoints: RedisEndpoints
    let logger: Logger
    private let connections = Mutex<[ObjectIdentifier: LoopConnection]>([:])
    private let breaker = Mutex(RedisBreaker())
    /// The master Sentinel named last; cleared when it fails, so the next connection asks again.
    private let master = Mutex<(host: String, port: Int)?>(nil)
    private let recoveryHooks = Mutex<[@Sendable () -> Void]>([])
    private let closed = Atomic<Bool>(false)

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
    public func run(
        _ script: RedisScript, keys: [String], arguments: [String], on loop: any EventLoop
    ) -> EventLoopFuture<RESPValue> {
        let tail = RESPCommand.arguments([String(keys.count)] + keys + arguments)
        let connection = connection(for: loop)
        return connection.run(script, tail).flatMapError { error in
            guard case .server(let message) = error as? RedisError, message.hasPrefix("NOSCRIPT") else {
                return loop.makeFailedFuture(error)
            }
            return connection.send([Array("EVAL".utf8), Array(script.source.utf8)] + tail)
        }
    }

    /// Whether commands fail fast now (the breaker is open), and why.
    public var failure: String? { breaker.withLock { $0.refusal(now: Self.now()) } }

    /// Runs `hook` every time Redis answers again after failing (the breaker closed): what Redis lost while
    /// it failed (a restart, a failover to a replica behind) can then be written back at once.
    public func onRecovery(_ hook: @escaping @Sendable () -> Void) {
        recoveryHooks.withLock { $0.append(hook) }
    }

    /// Closes every connection and stops probing.
    public func shutdown() {
        closed.store(true, ordering: .relaxed)
        closeConnections()
    }

    /// Sentinel announced a new master: connections to the old one close, and the next commands go to it.
    public func masterChanged(host: String, port: Int) {
        let changed = master.withLock { current in
            defer { current = (host, port) }
            return current.map { $0.host != host || $0.port != port } ?? true
        }
        guard changed else { return }
        logger.notice("redis sentinel: the master changed", metadata: ["redis.master": "\(host):\(port)"])
        closeConnections()
    }

    private func closeConnections() {
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

    // MARK: Breaker

    /// Why commands must fail at once, or nil when they may go.
    package func refusal() -> String? {
        breaker.withLock { $0.allowsCommands ? nil : $0.refusal(now: Self.now()) }
    }

    /// A command or connection failed; opens the breaker when the failure is the connection's, not the
    /// command's (a script error leaves Redis healthy).
    func observe(_ error: any Error, on loop: any EventLoop) {
        guard let reason = Self.connectionFailure(error) else { return }
        if case .server = error as? RedisError {
            // A replica (READONLY), a loading or unauthenticated server: this connection must not be used again.
            master.withLock { $0 = nil }
        }
        let (probe, opened) = breaker.withLock { breaker -> (Bool, Bool) in
            let wasClosed = breaker.allowsCommands
            return (breaker.failed(reason, now: Self.now()), wasClosed)
        }
        if opened { logger.warning("redis failing; failing fast while probing", metadata: ["error": "\(reason)"]) }
        if probe { scheduleProbe(on: loop) }
    }

    /// The failure's text when it is the connection's.
    static func connectionFailure(_ error: any Error) -> String? {
        switch error as? RedisError {
        case .timeout?, .connection?, .protocolViolation?:
            return "\(error)"
        case .server(let message)?:
            let code = message.prefix { $0 != " " }
            return ["READONLY", "LOADING", "MASTERDOWN", "NOAUTH", "WRONGPASS", "NOPERM"].contains(String(code))
                ? "\(error)" : nil
        case nil:
            return "\(error)"
        }
    }

    private func scheduleProbe(on loop: any EventLoop) {
        guard !closed.load(ordering: .relaxed) else { return }
        loop.scheduleTask(in: endpoints.probeInterval) { [self] in
            connect(on: loop).flatMap { channel in
                let promise = loop.makePromise(of: RESPValue.self)
                channel.writeAndFlush(
                    RedisRequest(arguments: RESPCommand.arguments(["PING"]), promise: promise), promise: nil)
                return promise.futureResult.always { _ in channel.close(promise: nil) }
            }.whenComplete { [self] result in
                switch result {
                case .success:
                    guard breaker.withLock({ $0.probeSucceeded() }) else { return }
                    logger.notice("redis answers again")
                    for hook in recoveryHooks.withLock({ $0 }) { hook() }
                case .failure(let error):
                    if breaker.withLock({ $0.probeFailed("\(error)", now: Self.now()) }) { scheduleProbe(on: loop) }
                }
            }
        }
    }

    static func now() -> Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }

    // MARK: Connecting

    /// A connection ready for commands: to the master Sentinel names (checked with ROLE), or to the first
    /// configured address that answers; authenticated and on the configured database.
    public func connect(on loop: any EventLoop) -> EventLoopFuture<any Channel> {
        guard let sentinel = endpoints.sentinel else {
            return firstAnswering(endpoints.addresses, on: loop) { address in
                self.open(
                    address, username: self.endpoints.username, password: self.endpoints.password,
                    database: self.endpoints.database, requireMaster: false, on: loop)
            }
        }
        let known = master.withLock { $0 }
        let address = known.map { loop.makeSucceededFuture($0) } ?? resolveMaster(sentinel, on: loop)
        return address.flatMap { address in
            self.open(
                address, username: self.endpoints.username, password: self.endpoints.password,
                database: self.endpoints.database, requireMaster: true, on: loop)
        }.flatMapErrorThrowing { error in
            self.master.withLock { $0 = nil }
            throw error
        }
    }

    /// A connection to one of the sentinels (the first that answers), for its announcements.
    public func connectToSentinel(on loop: any EventLoop) -> EventLoopFuture<any Channel> {
        guard let sentinel = endpoints.sentinel else {
            return loop.makeFailedFuture(RedisError.connection("no sentinel configured"))
        }
        return firstAnswering(sentinel.addresses, on: loop) { address in
            self.open(address, password: sentinel.password, database: 0, requireMaster: false, on: loop)
        }
    }

    /// Asks the sentinels, in order, where the master is.
    private func resolveMaster(
        _ sentinel: RedisEndpoints.Sentinel, on loop: any EventLoop
    ) -> EventLoopFuture<(host: String, port: Int)> {
        firstAnswering(sentinel.addresses, on: loop) { address in
            self.open(address, password: sentinel.password, database: 0, requireMaster: false, on: loop).flatMap {
                channel in
                let promise = loop.makePromise(of: RESPValue.self)
                channel.writeAndFlush(
                    RedisRequest(
                        arguments: RESPCommand.arguments(["SENTINEL", "get-master-addr-by-name", sentinel.masterName]),
                        promise: promise), promise: nil)
                return promise.futureResult.always { _ in channel.close(promise: nil) }.flatMapThrowing { reply in
                    guard let parts = reply.array, parts.count == 2, let host = parts[0].string,
                        let port = parts[1].int.map(Int.init)
                    else {
                        throw RedisError.connection(
                            "sentinel \(address.host):\(address.port) does not know master '\(sentinel.masterName)'")
                    }
                    return (host, port)
                }
            }
        }.map { address in
            self.master.withLock { $0 = address }
            return address
        }
    }

    /// Tries `attempt` on each address in order; the first success wins, the last failure is reported.
    private func firstAnswering<T: Sendable>(
        _ addresses: [(host: String, port: Int)], on loop: any EventLoop,
        _ attempt: @escaping @Sendable ((host: String, port: Int)) -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        @Sendable func from(_ index: Int, lastError: (any Error)?) -> EventLoopFuture<T> {
            guard index < addresses.count else {
                return loop.makeFailedFuture(lastError ?? RedisError.connection("no redis address configured"))
            }
            return attempt(addresses[index]).flatMapError { from(index + 1, lastError: $0) }
        }
        return from(0, lastError: nil)
    }

    /// Connects to one address and runs the handshake (AUTH, SELECT, ROLE), every step under the deadline.
    private func open(
        _ address: (host: String, port: Int), username: String? = nil, password: String?, database: Int,
        requireMaster: Bool, on loop: any EventLoop
    ) -> EventLoopFuture<any Channel> {
        let tls = endpoints.tls
        let timeout = endpoints.timeout
        let host = address.host
        return ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: host))
                    }
                    try channel.pipeline.syncOperations.addHandler(RedisConnectionHandler(timeout: timeout))
                }
            }
            .connect(host: address.host, port: address.port)
            .flatMapError { error in
                loop.makeFailedFuture(RedisError.connection("\(address.host):\(address.port): \(error)"))
            }
            .flatMap { channel in
                var steps: [[String]] = []
                if let password { steps.append(["AUTH"] + (username.map { [$0] } ?? []) + [password]) }
                if database != 0 { steps.append(["SELECT", String(database)]) }
                if requireMaster { steps.append(["ROLE"]) }
                guard !steps.isEmpty else { return loop.makeSucceededFuture(channel) }
                // Sent together: each has its own deadline, and the TLS handshake happens within the first's.
                let replies = steps.map { step in
                    let promise = loop.makePromise(of: RESPValue.self)
                    channel.write(RedisRequest(arguments: RESPCommand.arguments(step), promise: promise), promise: nil)
                    return promise.futureResult
                }
                channel.flush()
                return EventLoopFuture.whenAllSucceed(replies, on: loop).flatMapThrowing { values in
                    if requireMaster, let role = values.last?.array?.first?.string, role != "master" {
                        throw RedisError.connection("\(address.host):\(address.port) is a \(role), not the master")
                    }
                    return channel
                }.flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }
            }
    }
}

/// The connection of one event loop; touched only on that loop.
final class LoopConnection: @unchecked Sendable {
    private enum State {
        case idle
        case connecting(EventLoopFuture<any Channel>)
        case connected(any Channel)
    }

    let loop: any EventLoop
    unowned let client: RedisClient
    private var state = State.idle
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
        if let refusal = client.refusal() {
            return loop.makeFailedFuture(RedisError.connection(refusal))
        }
        let sent: EventLoopFuture<RESPValue>
        switch state {
        case .connected(let channel) where channel.isActive:
            sent = write(arguments, on: channel)
        case .connecting(let future):
            sent = future.flatMap { self.write(arguments, on: $0) }
        case .idle, .connected:
            let future = client.connect(on: loop)
            state = .connecting(future)
            future.whenComplete { result in
                guard case .connecting(let pending) = self.state, pending === future else {
                    // Closed (a master change, a shutdown) while connecting.
                    if case .success(let channel) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let channel):
                    self.state = .connected(channel)
                    self.loadedScripts = []
                    channel.closeFuture.whenComplete { _ in
                        if case .connected(let current) = self.state, current === channel { self.state = .idle }
                    }
                case .failure:
                    self.state = .idle
                }
            }
            sent = future.flatMap { self.write(arguments, on: $0) }
        }
        let client = self.client
        let loop = self.loop
        return sent.flatMapErrorThrowing { error in
            client.observe(error, on: loop)
            if RedisClient.connectionFailure(error) != nil, case .server = error as? RedisError { self.close() }
            throw error
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
