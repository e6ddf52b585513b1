import Foundation
import SparkgateCore
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A launched engine's process: spawned without a shell in a session of its own (so a stop reaches every
/// process it starts), through the gateway's `engine-exec` step (umask 077, its cgroup, its OS user), with
/// default signal handling, stdin from /dev/null and its output in a log the gateway opened.
package struct EngineProcess: Sendable {
    package let pid: pid_t
    /// Where its output goes (`EngineWorkspace.log`).
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
        return Self.exitStatus(status)
    }

    /// A wait status as a shell reports it: the exit code, or 128 + the signal that ended the process.
    package static func exitStatus(_ status: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand: the macros are not imported into Swift.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// The gateway's own binary, which runs `engine-exec` to prepare an engine's process before executing it.
    package static let launcher: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }()

    /// Spawns the engine through the gateway's `engine-exec` step, which sets umask 077, joins `cgroup`,
    /// takes `credentials`' groups, gid and uid (when given), then executes the engine. `log` is a descriptor
    /// of its log, which becomes its stdout and stderr.
    package static func spawn(
        _ command: LaunchCommand, directory: String, log: (fd: Int32, path: String),
        credentials: EngineCredentials? = nil, cgroup: EngineCgroup? = nil,
        launcher: String? = EngineProcess.launcher
    ) throws -> EngineProcess {
        guard let program = command.argv.first else { throw SpawnError(description: "the command is empty") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The gateway ignores or handles several signals itself; the engine must get the defaults back, or a
        // SIGTERM would never stop it.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
            sigaddset(&defaults, s)
        }
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
        posix_spawn_file_actions_adddup2(&actions, log.fd, 1)
        posix_spawn_file_actions_adddup2(&actions, log.fd, 2)
        // glibc's extensions are not in Swift's Glibc module (they need _GNU_SOURCE): found at run time.
        guard let chdir = GlibcExtensions.addChdir else {
            throw SpawnError(description: "this C library lacks posix_spawn_file_actions_addchdir_np")
        }
        _ = chdir(&actions, directory)
        // Nothing of the gateway's (its listening sockets, client connections, the log's own descriptor)
        // reaches the engine.
        _ = GlibcExtensions.addClosefrom?(&actions, 3)

        // A bare program name is looked up in the engine's PATH, not the gateway's.
        let resolved =
            program.contains("/")
            ? program : Self.lookUp(program, path: command.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
        guard let resolved else { throw SpawnError(description: "\(program) is not in the engine's PATH") }
        // Said here, where the gateway can name it; engine-exec could only exit with 126.
        guard access(resolved, X_OK) == 0 else {
            throw SpawnError(description: "cannot start \(resolved): \(String(cString: strerror(errno)))")
        }
        guard let launcher else {
            throw SpawnError(description: "cannot find the gateway's own binary, which prepares each engine's process")
        }
        let identity =
            credentials.map { [String($0.uid), String($0.gid), $0.groups.map(String.init).joined(separator: ",")] } ?? [
                "-", "-", "-",
            ]
        let arguments =
            [launcher, "engine-exec", cgroup?.path ?? "-"] + identity + [resolved] + command.argv.dropFirst()
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = command.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, launcher, &actions, &attributes, argv, envp)
        guard r == 0 else { throw SpawnError(description: "cannot start \(resolved): \(String(cString: strerror(r)))") }
        return EngineProcess(pid: pid, log: log.path)
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
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return bound == 0
    }
}

/// posix_spawn extensions of glibc (2.29 and 2.34), looked up once.
private enum GlibcExtensions {
    package typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    package typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    package static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
    package static let addClosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np")

    private static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: T.self)
    }
}
