import Foundation
import Logging
import ServiceLifecycle
import SparkgateCore
import Synchronization

/// One JSON line per RPC, to stdout or a file. The event loops append each call's summary under a lock; a
/// background service formats and writes them, so the event loops never format JSON or block on the disk.
public final class AuditLog: Service, Sendable {
    public enum Target: Sendable, Equatable {
        case stdout
        case file(String)
        case off
    }

    private let target: Target
    /// Summaries waiting to be written: the event loops only append; the writer formats and writes.
    private let pendingSummaries = Mutex<[CallSummary]>([])
    private let logger: Logger

    public init(target: Target, logger: Logger) {
        self.target = target
        self.logger = logger
    }

    public func record(_ summary: CallSummary) {
        guard target != .off else { return }
        pendingSummaries.withLock { $0.append(summary) }
    }

    /// Writes what is buffered now.
    public func flush() {
        let summaries = pendingSummaries.withLock { list -> [CallSummary] in
            let out = list
            list.removeAll(keepingCapacity: true)
            return out
        }
        guard !summaries.isEmpty else { return }
        var pending: [UInt8] = []
        pending.reserveCapacity(summaries.count * 400)
        for summary in summaries { summary.appendJSONLine(to: &pending) }
        switch target {
        case .off:
            return
        case .stdout:
            pending.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Foundation.write(1, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        case .file(let path):
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640])
            }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                logger.error("cannot open the audit log for writing", metadata: ["audit.file": "\(path)"])
                return
            }
            defer { try? handle.close() }
            do {
                try handle.seekToEnd()
                try handle.write(contentsOf: pending)
            } catch {
                logger.error("cannot write the audit log", metadata: ["audit.file": "\(path)", "error": "\(error)"])
            }
        }
    }

    public func run() async throws {
        guard target != .off else {
            // A service that returns stops the whole group: wait for shutdown like the others.
            try? await gracefulShutdown()
            return
        }
        // Flush every 100 ms until shutdown, then once more so no line is lost.
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                flush()
            }
        } onGracefulShutdown: {
        }
        flush()
    }
}
