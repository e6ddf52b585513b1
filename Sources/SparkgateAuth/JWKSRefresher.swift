import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Fetches the configured JWKS URLs: at start, every `jwks_refresh_seconds`, and on demand when a token
/// names an unknown key id (at most once per 30 s). A failed fetch keeps the last good keys and is logged.
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

    public init(urls: [String], interval: Double, timeout: TimeAmount = .seconds(10), logger: Logger, onUpdate: @escaping @Sendable ([VerificationKey]) -> Void) {
        self.settings = Mutex(Settings(urls: urls, interval: interval))
        self.timeout = timeout
        self.logger = logger
        self.onUpdate = onUpdate
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
                fetched.withLock { $0[url] = keys }
                logger.debug("fetched JWKS", metadata: ["jwks.url": "\(url)", "jwks.keys": "\(keys.count)"])
            } catch {
                logger.warning("JWKS fetch failed; keeping the last good keys", metadata: ["jwks.url": "\(url)", "error": "\(error)"])
            }
        }
        onUpdate(keys)
    }

    private func fetch(_ url: String) async throws -> [VerificationKey] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "accept", value: "application/json")
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        guard response.status == .ok else {
            throw KeyLoader.Failure(key: url, message: "HTTP \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let document = try await JWKSDocument.parse(Data(body.readableBytesView), origin: url)
        for reason in document.skipped { logger.warning("skipping a JWKS key", metadata: ["jwks.url": "\(url)", "reason": "\(reason)"]) }
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
    }
}
