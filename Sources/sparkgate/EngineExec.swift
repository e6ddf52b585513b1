#if canImport(Glibc)
    import Glibc
#endif

/// The step between the gateway and every engine it launches: the gateway spawns its own binary with
/// `engine-exec`, which makes files private (umask 077), joins the engine's cgroup, takes the engine user's
/// groups, gid and uid (`launch.run_as`), and then executes the engine. posix_spawn cannot do these, and a
/// fork of the multithreaded gateway may only call async-signal-safe functions; this runs in a fresh
/// single-threaded process instead, before any of the gateway's code.
///
///     sparkgate engine-exec <cgroup|-> <uid|-> <gid|-> <group,group,...|-> <program> [argument ...]
///
/// It refuses to run unless the gateway started it, and refuses to become root.
enum EngineExec {
    static let command = "engine-exec"

    /// Never returns: the engine replaces this process, or it exits with 126 saying why it could not.
    static func run(_ arguments: [String]) -> Never {
        guard arguments.count >= 7 else {
            fail("usage: sparkgate engine-exec <cgroup|-> <uid|-> <gid|-> <groups|-> <program> [argument ...]")
        }
        guard startedByTheGateway() else {
            fail("refused: only a running sparkgate starts engine-exec, for an engine it launches")
        }
        let (cgroup, uidText, gidText, groupsText, program) = (
            arguments[2], arguments[3], arguments[4], arguments[5], arguments[6]
        )
        // The engine's files (Spark's local directories, its logs, a UDF's temporary files) are its own.
        umask(0o077)
        if cgroup != "-" { join(cgroup) }
        if uidText != "-" {
            guard let uid = uid_t(uidText), let gid = gid_t(gidText) else { fail("the uid and gid must be numbers") }
            guard uid != 0 else { fail("refused: an engine never runs as root (uid 0)") }
            let groups = groupsText.split(separator: ",").compactMap { gid_t($0) }
            // Groups, then the group, then the user: once the user is dropped, nothing else may be changed.
            if groups.withUnsafeBufferPointer({ setgroups($0.count, $0.baseAddress) }) != 0 {
                fail("setgroups: \(String(cString: strerror(errno)))")
            }
            if setgid(gid) != 0 { fail("setgid(\(gid)): \(String(cString: strerror(errno)))") }
            if setuid(uid) != 0 { fail("setuid(\(uid)): \(String(cString: strerror(errno)))") }
            // A process that could get its old identity back has not really dropped it.
            if setuid(0) == 0 || geteuid() != uid || getegid() != gid { fail("the engine's identity did not stick") }
        }
        let argv = arguments[6...].map { strdup($0) } + [nil]
        execv(program, argv)
        fail("cannot execute \(program): \(String(cString: strerror(errno)))")
    }

    /// Whether the parent process runs this very binary (the gateway); anything else (a tenant's shell) is
    /// refused.
    private static func startedByTheGateway() -> Bool {
        guard let own = link("/proc/self/exe"), let parent = link("/proc/\(getppid())/exe") else { return false }
        return own == parent
    }

    private static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Moves this process into the engine's cgroup, so everything the engine starts is in it too.
    private static func join(_ cgroup: String) {
        let fd = open(cgroup + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { fail("cannot join the engine's cgroup \(cgroup): \(String(cString: strerror(errno)))") }
        let written = "0".withCString { write(fd, $0, 1) }
        close(fd)
        if written != 1 { fail("cannot join the engine's cgroup \(cgroup): \(String(cString: strerror(errno)))") }
    }

    private static func fail(_ message: String) -> Never {
        let line = "sparkgate engine-exec: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(126)
    }
}
