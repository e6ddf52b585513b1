import Foundation

/// A real `redis-server` (or `redis-sentinel`) on a free port for one test, stopped when the test ends.
/// Missing redis-server is a failure under CI (scripts/setup-env installs it) and a skip elsewhere.
public final class RedisTestServer {
    public let port: Int
    private let process: Process
    private let directory: String

    public static var available: Bool { path != nil }
    public static let path: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    public static var sentinelAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-sentinel")
    }
    public static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A server; `password` sets requirepass, `replicaOf` makes it a replica of that port.
    public convenience init(password: String? = nil, replicaOf: Int? = nil) throws {
        // Without the delay a master waits 5 s for more replicas before it sends the first one its data, as
        // long as a test waits for that replica.
        var arguments = ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        arguments += ["--repl-diskless-sync-delay", "0"]
        if let password { arguments += ["--requirepass", password, "--masterauth", password] }
        if let replicaOf { arguments += ["--replicaof", "127.0.0.1", "\(replicaOf)"] }
        try self.init(binary: Self.path, arguments: arguments, config: nil)
    }

    /// A sentinel watching `masterPort` as `masterName` (quorum 1), quick to declare it down.
    public static func sentinel(masterName: String, masterPort: Int, password: String?) throws -> RedisTestServer {
        var config = """
            sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 1
            sentinel down-after-milliseconds \(masterName) 1000
            sentinel failover-timeout \(masterName) 3000
            sentinel parallel-syncs \(masterName) 1

            """
        if let password { config += "sentinel auth-pass \(masterName) \(password)\n" }
        return try RedisTestServer(
            binary: sentinelAvailable ? "/usr/bin/redis-sentinel" : nil, arguments: ["--loglevel", "warning"],
            config: config)
    }

    private init(binary: String?, arguments: [String], config: String?) throws {
        guard let binary else { throw Missing() }
        port = Int.random(in: 20_000...29_999)
        directory = NSTemporaryDirectory() + "sparkgate-redis-\(port)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var argv = arguments
        if let config {
            // Sentinel rewrites its config file, so it must be a file of its own.
            let file = directory + "/sentinel.conf"
            try (config + "port \(port)\nbind 127.0.0.1\ndir \(directory)\n").write(
                toFile: file, atomically: true, encoding: .utf8)
            argv = [file] + argv
        } else {
            argv = ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory] + argv
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = argv
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
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Freezes it (SIGSTOP): it accepts TCP connections into the backlog and answers nothing.
    public func pause() { kill(process.processIdentifier, SIGSTOP) }
    public func resume() { kill(process.processIdentifier, SIGCONT) }

    deinit {
        resume()
        stop()
    }

    public struct Missing: Error {}

    private static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
