import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Fetches the configured JWKS URLs: at start, every `jwks_refresh_seconds`, and on demand when a token
/// names an unknown key id (at most once per 30 s). A failed fetch, one that parses to no usable key, and a
/// redirect (which could lead anywhere, including to plaintext) all keep the last good keys and are logged.
public final class JWKSRefresher: Service, Sendable {
    public static let onDemandInterval = 30.0

    private struct Settings: Sendable {
        var urls: [String]
        var interval: Double
    }

    private let settings: Mutex<Settings>
    private let fetched = Mutex<[String: [VerificationKey]]>([:])
    private let lastOnDemand = Mutex<Double>(-.infinity)
    private let onUpdate: @Sendable ([VerificationKey]) -> Void
    private let logger: Logger
    private let timeout: TimeAmount
    /// Its own client, made at the first fetch: redirects off, which `HTTPClient.shared` cannot be told.
    private let client = Mutex<HTTPClient?>(nil)

    public init(
        urls: [String], interval: Double, timeout: TimeAmount = .seconds(10), logger: Logger,
        onUpdate: @escaping @Sendable ([VerificationKey]) -> Void
    ) {
        self.settings = Mutex(Settings(urls: urls, interval: interval))
        self.timeout = timeout
        self.logger = logger
        self.onUpdate = onUpdate
    }

    private var httpClient: HTTPClient {
        client.withLock { client in
            if let client { return client }
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.timeout = .init(connect: timeout, read: timeout)
            let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            client = made
            return made
        }
    }

    /// Closes the HTTP client, if a fetch made one. `run()` does this when the service stops.
    public func shutdown() async {
        guard
            let made = client.withLock({ client in
                defer { client = nil }
                return client
            })
        else { return }
        try? await made.shutdown()
    }

    /// Every key from the last good fetch of each URL.
    public var keys: [VerificationKey] {
        let urls = settings.withLock { $0.urls }
        return fetched.withLock { table in urls.flatMap { table[$0] ?? [] } }
    }

    public var hasURLs: Bool { settings.withLock { !$0.urls.isEmpty } }

    /// Applies a reloaded configuration.
    public func update(urls: [String], interval: Double) {
        settings.withLock { $0 = Settings(urls: urls, interval: interval) }
    }

    /// Whether an unknown key id may trigger a refresh now; claims the slot when it may.
    public func mayRefresh(now: Double) -> Bool {
        guard hasURLs else { return false }
        return lastOnDemand.withLock { last in
            guard now - last >= Self.onDemandInterval else { return false }
            last = now
            return true
        }
    }

    /// Fetches every URL once and publishes the merged keys.
    public func refreshNow() async {
        let urls = settings.withLock { $0.urls }
        for url in urls {
            do {
                let keys = try await fetch(url)
                guard !keys.isEmpty else {
                    logger.warning(
                        "JWKS document has no usable key; keeping the last good keys", metadata: ["jwks.url": "\(url)"])
                    continue
                }
                fetched.withLock { $0[url] = keys }
                logger.debug("fetched JWKS", metadata: ["jwks.url": "\(url)", "jwks.keys": "\(keys.count)"])
            } catch {
                logger.warning(
                    "JWKS fetch failed; keeping the last good keys",
                    metadata: ["jwks.url": "\(url)", "error": "\(error)"])
            }
        }
        onUpdate(keys)
    }

    private func fetch(_ url: String) async throws -> [VerificationKey] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "accept", value: "application/json")
        let response = try await httpClient.execute(request, timeout: timeout)
        guard response.status == .ok else {
            let redirect =
                (300..<400).contains(response.status.code)
                ? " (redirects are not followed: configure the final URL)" : ""
            throw KeyLoader.Failure(key: url, message: "HTTP \(response.status.code)\(redirect)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let document = try await JWKSDocument.parse(Data(body.readableBytesView), origin: url)
        for reason in document.skipped {
            logger.warning("skipping a JWKS key", metadata: ["jwks.url": "\(url)", "reason": "\(reason)"])
        }
        return document.keys
    }

    public func run() async throws {
        guard hasURLs else {
            try? await gracefulShutdown()
            return
        }
        await refreshNow()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let interval = self.settings.withLock { $0.interval }
                try? await Task.sleep(for: .seconds(interval))
                if Task.isCancelled { break }
                await self.refreshNow()
            }
        }
        await shutdown()
    }
}
