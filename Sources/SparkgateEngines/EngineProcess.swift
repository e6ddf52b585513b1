#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SparkgateCore
import SparkgateTransport
import SparkgateSharedState

/// A launched engine's process: spawned without a shell in a session of its own (so a stop reaches every
/// process it starts), with default signal handling, stdin from /dev/null and its output in a log file.
package struct EngineProcess: Sendable {
    package let pid: pid_t
    package let log: String

    package struct SpawnError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Signals the engine's whole process group.
    package func signal(_ sig: Int32) {
        _ = kill(-pid, sig)
        _ = kill(pid, sig)
    }

    /// The exit status once the process ended (nil while it runs); reaps it.
    package func exited() -> Int32? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return nil }
        if r < 0 { return errno == ECHILD ? -1 : nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand: the macros are not imported into Swift.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// The gateway's own binary, which runs `engine-exec` to become an engine's OS user before executing it.
    package static let launcher: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }()

    /// Spawns the engine; with `credentials`, through the gateway's `engine-exec` step, which takes that
    /// user's groups, gid and uid before it executes the engine.
    package static func spawn(_ command: LaunchCommand, directory: String, log: String, credentials: EngineCredentials? = nil) throws -> EngineProcess {
        guard let program = command.argv.first else { throw SpawnError(description: "the command is empty") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The gateway ignores or handles several signals itself; the engine must get the defaults back, or a
        // SIGTERM would never stop it.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | setsid))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc's extensions are not in Swift's Glibc module (they need _GNU_SOURCE): found at run time.
        guard let chdir = GlibcExtensions.addChdir else { throw SpawnError(description: "this C library lacks posix_spawn_file_actions_addchdir_np") }
        _ = chdir(&actions, directory)
        // Nothing of the gateway's (its listening sockets, client connections) reaches the engine.
        _ = GlibcExtensions.addClosefrom?(&actions, 3)

        // A bare program name is looked up in the engine's PATH, not the gateway's.
        let resolved = program.contains("/") ? program : Self.lookUp(program, path: command.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
        guard let resolved else { throw SpawnError(description: "\(program) is not in the engine's PATH") }
        var arguments = command.argv
        var executable = resolved
        if let credentials {
            guard let launcher = Self.launcher else { throw SpawnError(description: "cannot find the gateway's own binary to switch to user \(credentials.name)") }
            executable = launcher
            arguments = [launcher, "engine-exec", String(credentials.uid), String(credentials.gid), credentials.groups.map(String.init).joined(separator: ","), resolved]
                + command.argv.dropFirst()
        }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = command.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard r == 0 else { throw SpawnError(description: "cannot start \(resolved): \(String(cString: strerror(r)))") }
        return EngineProcess(pid: pid, log: log)
    }

    package static func lookUp(_ program: String, path: String) -> String? {
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Whether nothing listens on `port` of the loopback address now.
    package static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }

    /// The last `lines` lines of the engine's log, for an error message.
    package static func tail(_ path: String, lines: Int = 8, maxBytes: Int = 4096) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: " | ")
    }
}

/// posix_spawn extensions of glibc (2.29 and 2.34), looked up once.
private enum GlibcExtensions {
    package typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    package typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    package static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
    package static let addClosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np")

    private static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: T.self)
    }
}
