import SparkgateCore
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#endif

/// The OS identity an engine runs as (`launch.run_as`): its user's uid, primary gid, supplementary groups and
/// home directory, looked up in the system's user database.
package struct EngineCredentials: Sendable, Equatable {
    package var name: String
    package var uid: uid_t
    package var gid: gid_t
    package var groups: [gid_t]
    package var home: String

    /// The user named `name`, or nil when the system has none.
    package static func lookUp(_ name: String) -> EngineCredentials? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, let found = result?.pointee else {
            return nil
        }
        let uid = found.pw_uid
        let gid = found.pw_gid
        let home = String(cString: found.pw_dir)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, gid, &groups, &count)
        }
        return EngineCredentials(
            name: name, uid: uid, gid: gid, groups: Array(groups.prefix(Int(max(0, count)))), home: home)
    }

    /// Whether this process may switch to another user: root, or CAP_SETUID and CAP_SETGID in its
    /// effective capabilities.
    package static var processCanSwitchUser: Bool {
        if geteuid() == 0 { return true }
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let caps = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        let setgid: UInt64 = 1 << 6
        let setuid: UInt64 = 1 << 7
        return caps & setgid != 0 && caps & setuid != 0
    }
}
