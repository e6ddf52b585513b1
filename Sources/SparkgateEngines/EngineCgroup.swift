import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A cgroup (v2) per engine, where the host lets the gateway make them: the engine joins it before it runs
/// (`engine-exec`), so does everything it starts, daemons that left its session included, and when the
/// engine ends the whole cgroup is killed at once. Without cgroup v2, an engine's leftovers are found by
/// their OS user instead (`TenantProcesses`).
package struct EngineCgroup: Sendable, Equatable {
    package let path: String

    /// Where this gateway makes its engines' cgroups: a child of its own cgroup in the cgroup2 hierarchy;
    /// nil when there is none or it cannot be written (or `SPARKGATE_ENGINE_CGROUPS=off`).
    package static let parent: String? = {
        if ProcessInfo.processInfo.environment["SPARKGATE_ENGINE_CGROUPS"] == "off" { return nil }
        guard let mount = cgroup2Mount(), let own = ownCgroup() else { return nil }
        let home = (mount as NSString).appendingPathComponent(own)
        sweepStale(in: home)
        let path = (home as NSString).appendingPathComponent("sparkgate-\(getpid())")
        if mkdir(path, 0o755) != 0 && errno != EEXIST { return nil }
        // A cgroup that cannot be killed as a whole or listed is of no use here.
        guard access((path as NSString).appendingPathComponent("cgroup.procs"), W_OK) == 0 else {
            rmdir(path)
            return nil
        }
        return path
    }()

    /// Removes what gateways that are gone left in `home`: their engines (killed) and their cgroups. A
    /// gateway killed with SIGKILL cannot clean up after itself; its engines are orphans no replica serves.
    static func sweepStale(in home: String) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: home)) ?? [] {
            guard entry.hasPrefix("sparkgate-"), let pid = Int32(entry.dropFirst("sparkgate-".count)), pid != getpid(),
                kill(pid, 0) != 0 && errno == ESRCH
            else { continue }
            let stale = (home as NSString).appendingPathComponent(entry)
            let engines = ((try? FileManager.default.contentsOfDirectory(atPath: stale)) ?? []).map {
                EngineCgroup(path: (stale as NSString).appendingPathComponent($0))
            }
            removeAll(
                engines.filter {
                    FileManager.default.fileExists(atPath: ($0.path as NSString).appendingPathComponent("cgroup.procs"))
                })
            rmdir(stale)
        }
    }

    /// Kills every process in `cgroups` and removes them, waiting up to a second for the killed to leave.
    package static func removeAll(_ cgroups: [EngineCgroup]) {
        for cgroup in cgroups { cgroup.killAll() }
        var left = cgroups
        for _ in 0..<100 where !left.isEmpty {
            left.removeAll { $0.remove() }
            if !left.isEmpty { usleep(10_000) }
        }
    }

    /// Removes this gateway's cgroup of cgroups (at shutdown, once its engines' are gone).
    package static func removeParent() {
        if let parent { rmdir(parent) }
    }

    /// Makes the cgroup of engine `id`; nil without cgroup v2.
    package static func make(_ id: String) -> EngineCgroup? {
        guard let parent else { return nil }
        let path = (parent as NSString).appendingPathComponent(id)
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        return EngineCgroup(path: path)
    }

    /// The processes in it now.
    package var processes: [Int32] {
        let text =
            (try? String(contentsOfFile: (path as NSString).appendingPathComponent("cgroup.procs"), encoding: .utf8))
            ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Kills every process in it: at once with `cgroup.kill` (Linux 5.14), else one by one after freezing
    /// the cgroup, so none can start another meanwhile.
    package func killAll() {
        if write("1", to: "cgroup.kill") { return }
        _ = write("1", to: "cgroup.freeze")
        for _ in 0..<8 {
            let pids = processes
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
        }
        _ = write("0", to: "cgroup.freeze")
    }

    /// Removes it once empty; false while processes remain (they are still dying).
    @discardableResult
    package func remove() -> Bool {
        rmdir(path) == 0 || errno == ENOENT
    }

    private func write(_ value: String, to file: String) -> Bool {
        let fd = open((path as NSString).appendingPathComponent(file), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return value.withCString { Glibc.write(fd, $0, strlen($0)) } > 0
    }

    /// The mount point of the cgroup2 hierarchy, from /proc/self/mountinfo.
    static func cgroup2Mount() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            // "36 25 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw,..."
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// This process's cgroup in the cgroup2 hierarchy ("0::<path>" in /proc/self/cgroup).
    static func ownCgroup() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }
}

/// The processes of one OS user, for the end of its last engine where there are no cgroups: a tenant's code
/// may have left daemons in sessions of their own, out of the engine's process group.
package enum TenantProcesses {
    /// Every process whose real or effective uid is `uid`, from /proc.
    package static func of(uid: uid_t) -> [Int32] {
        var found: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
            else { continue }
            let ids = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) }
            if ids.prefix(2).contains(uid) { found.append(pid) }
        }
        return found
    }

    /// Stops every process of `uid` (so none can start another), then kills them all; repeats until none is
    /// left or `rounds` pass. Returns how many it killed.
    @discardableResult
    package static func killAll(uid: uid_t, rounds: Int = 10) -> Int {
        guard uid != 0 && uid != geteuid() else { return 0 }
        var killed: Set<Int32> = []
        for _ in 0..<rounds {
            let pids = of(uid: uid).filter { $0 != getpid() }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGSTOP) }
            for pid in pids { kill(pid, SIGKILL) }
            killed.formUnion(pids)
        }
        return killed.count
    }
}
