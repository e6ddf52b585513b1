#if canImport(Glibc)
import Glibc
#endif

/// The step between the gateway and an engine that runs as another OS user (`launch.run_as`): the gateway
/// spawns its own binary with `engine-exec`, which takes the engine user's groups, gid and uid and then
/// executes the engine. posix_spawn cannot change credentials, and a fork of the multithreaded gateway may
/// only call async-signal-safe functions; this runs in a fresh single-threaded process instead, before any
/// of the gateway's code.
///
///     sparkgate engine-exec <uid> <gid> <group,group,...> <program> [argument ...]
enum EngineExec {
    static let command = "engine-exec"

    /// Never returns: the engine replaces this process, or it exits with 126 saying why it could not.
    static func run(_ arguments: [String]) -> Never {
        guard arguments.count >= 6, let uid = uid_t(arguments[2]), let gid = gid_t(arguments[3]) else {
            fail("usage: sparkgate engine-exec <uid> <gid> <groups> <program> [argument ...]")
        }
        let groups = arguments[4].split(separator: ",").compactMap { gid_t($0) }
        let program = arguments[5]
        // Groups, then the group, then the user: once the user is dropped, nothing else may be changed.
        if groups.withUnsafeBufferPointer({ setgroups($0.count, $0.baseAddress) }) != 0 { fail("setgroups: \(String(cString: strerror(errno)))") }
        if setgid(gid) != 0 { fail("setgid(\(gid)): \(String(cString: strerror(errno)))") }
        if setuid(uid) != 0 { fail("setuid(\(uid)): \(String(cString: strerror(errno)))") }
        // A process that could get its old identity back has not really dropped it.
        if uid != 0 && (setuid(0) == 0 || geteuid() != uid || getegid() != gid) { fail("the engine's identity did not stick") }
        let argv = arguments[5...].map { strdup($0) } + [nil]
        execv(program, argv)
        fail("cannot execute \(program): \(String(cString: strerror(errno)))")
    }

    private static func fail(_ message: String) -> Never {
        let line = "sparkgate engine-exec: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(126)
    }
}
