import Foundation
import Testing

/// A real `redis-server` on a free port for one test, stopped when the test ends. Missing redis-server is a
/// failure under CI (scripts/setup-env installs it) and a skip elsewhere.
final class RedisTestServer {
    let port: Int
    private let process: Process

    static var available: Bool { path != nil }
    static let path: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    init() throws {
        guard let path = Self.path else { throw Missing() }
        port = Int.random(in: 20_000...29_999)
        process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        // Neither stream may be the test's own: `swift test` waits for its pipes to close, and a child holding
        // them open would hang the run.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it accepts a connection.
        for _ in 0..<100 {
            if Self.accepts(port) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop()
        throw Missing()
    }

    /// Stops the server at once. Not waitUntilExit: it spins a run loop that never turns on a test's thread.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit {
        stop()
    }

    struct Missing: Error {}

    private static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
