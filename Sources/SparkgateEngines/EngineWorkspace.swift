import Foundation
import SparkgateCore

#if canImport(Glibc)
    import Glibc
#endif

/// Where engines' files live, handled as a tenant's code would attack them. The base directory belongs to
/// the gateway (0711: tenants pass through to their own directory, never list it); each engine gets a
/// directory there that belongs to its OS user, with its token file. The engine's log lies beside it, in the
/// gateway's part: opened by the gateway and handed to the engine as its stdout and stderr, so nothing a
/// tenant does in its own directory changes what the gateway reads. Every operation starts from a
/// descriptor of the base, checked to be the gateway's, and never follows a symbolic link.
package struct EngineWorkspace: Sendable, Equatable {
    package let base: String

    package struct Failure: Error, CustomStringConvertible, Equatable {
        package var description: String
    }

    package init(verifiedBase base: String) {
        self.base = base
    }

    // MARK: The base directory

    /// Creates or checks the base directory `configured` (`launch.work_dir`); nil takes a fresh directory
    /// under the system's temporary directory, made once per process with an unpredictable name.
    package static func prepare(_ configured: String?) throws(Failure) -> EngineWorkspace {
        guard let configured else { return try defaultBase.get() }
        var info = stat()
        if lstat(configured, &info) != 0 {
            guard errno == ENOENT else {
                throw Failure(description: "cannot inspect work_dir \(configured): \(Self.errorText())")
            }
            try createParents(of: configured)
            if mkdir(configured, 0o711) != 0 && errno != EEXIST {
                throw Failure(description: "cannot create work_dir \(configured): \(Self.errorText())")
            }
            guard lstat(configured, &info) == 0 else {
                throw Failure(description: "cannot inspect work_dir \(configured): \(Self.errorText())")
            }
        }
        try checkOwned(info, path: configured)
        try checkAncestors(of: configured)
        let workspace = EngineWorkspace(verifiedBase: configured)
        let fd = try workspace.openBase()
        defer { close(fd) }
        // Tenants' engines reach their own directory through it; none may list it or add to it.
        guard fchmod(fd, 0o711) == 0 else {
            throw Failure(description: "cannot set the mode of work_dir \(configured): \(Self.errorText())")
        }
        return workspace
    }

    /// Why `configured` cannot be the base, without creating anything (for `sparkgate config check`): it
    /// exists and is not the gateway's own directory, or a directory above it lets another user replace it.
    package static func inspect(_ configured: String) -> Failure? {
        var info = stat()
        do {
            if lstat(configured, &info) == 0 { try checkOwned(info, path: configured) }
            try checkAncestors(of: configured, skipMissing: true)
            return nil
        } catch {
            return error
        }
    }

    private static let defaultBase: Result<EngineWorkspace, Failure> = {
        let root = (NSTemporaryDirectory() as NSString).appendingPathComponent("sparkgate-engines-XXXXXX")
        var template = Array(root.utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            return .failure(
                Failure(description: "cannot create a work directory under \(NSTemporaryDirectory()): \(errorText())"))
        }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        guard chmod(path, 0o711) == 0 else {
            return .failure(Failure(description: "cannot set the mode of \(path): \(errorText())"))
        }
        return .success(EngineWorkspace(verifiedBase: path))
    }()

    /// The base, opened without following a link and checked to be the gateway's directory.
    package func openBase() throws(Failure) -> Int32 {
        let fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open work_dir \(base): \(Self.errorText())") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw Failure(description: "cannot inspect work_dir \(base): \(Self.errorText())")
        }
        do {
            try Self.checkOwned(info, path: base)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    private static func checkOwned(_ info: stat, path: String) throws(Failure) {
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw Failure(
                description:
                    "work_dir \(path) is not a directory (a symbolic link is refused); remove it or name another")
        }
        guard info.st_uid == geteuid() else {
            throw Failure(
                description:
                    "work_dir \(path) belongs to uid \(info.st_uid), not to Sparkgate (uid \(geteuid())): whoever made it could change what Sparkgate reads there; remove it or name another"
            )
        }
    }

    /// Every directory above the base must be one that no other user can rename or replace entries of:
    /// owned by root or the gateway, and writable by no one else unless sticky (like /tmp).
    private static func checkAncestors(of path: String, skipMissing: Bool = false) throws(Failure) {
        var current = (path as NSString).deletingLastPathComponent
        while !current.isEmpty {
            var info = stat()
            if stat(current, &info) != 0 {
                guard skipMissing && errno == ENOENT else {
                    throw Failure(description: "cannot inspect \(current), above work_dir \(path): \(errorText())")
                }
                current = (current as NSString).deletingLastPathComponent
                continue
            }
            let writableByOthers = info.st_mode & (S_IWGRP | S_IWOTH) != 0
            let sticky = info.st_mode & S_ISVTX != 0
            if info.st_uid != 0 && info.st_uid != geteuid() {
                throw Failure(
                    description:
                        "\(current), above work_dir \(path), belongs to uid \(info.st_uid): that user could replace the work directory; choose a work_dir under directories of root or Sparkgate"
                )
            }
            if writableByOthers && !sticky {
                throw Failure(
                    description:
                        "\(current), above work_dir \(path), is writable by other users: they could replace the work directory; choose another work_dir"
                )
            }
            if current == "/" { break }
            current = (current as NSString).deletingLastPathComponent
        }
    }

    private static func createParents(of path: String) throws(Failure) {
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != "/" else { return }
        var info = stat()
        if stat(parent, &info) == 0 { return }
        try createParents(of: parent)
        if mkdir(parent, 0o755) != 0 && errno != EEXIST {
            throw Failure(description: "cannot create \(parent): \(errorText())")
        }
    }

    // MARK: One engine's files

    /// The engine's own directory (its `{work_dir}` and working directory).
    package func directory(_ id: String) -> String { (base as NSString).appendingPathComponent(id) }

    /// The engine's log, in the gateway's part of the base.
    package func log(_ id: String) -> String { (base as NSString).appendingPathComponent("\(id).log") }

    /// Where the log of a backend's last engine that failed or died is kept.
    package func lastFailureLog(_ backend: String) -> String {
        (base as NSString).appendingPathComponent("\(backend)-last-failure.log")
    }

    /// Creates the engine's directory (0700) with its token file (0600), both given to `owner` last.
    package func createDirectory(_ id: String, token: String, owner: EngineCredentials?) throws(Failure) {
        let baseFD = try openBase()
        defer { close(baseFD) }
        guard mkdirat(baseFD, id, 0o700) == 0 else {
            throw Failure(description: "cannot create \(directory(id)): \(Self.errorText())")
        }
        let dirFD = openat(baseFD, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirFD >= 0 else { throw Failure(description: "cannot open \(directory(id)): \(Self.errorText())") }
        defer { close(dirFD) }
        let tokenFD = openat(dirFD, "token", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard tokenFD >= 0 else {
            throw Failure(description: "cannot create the token file in \(directory(id)): \(Self.errorText())")
        }
        defer { close(tokenFD) }
        let bytes = Array(token.utf8)
        guard bytes.withUnsafeBytes({ write(tokenFD, $0.baseAddress, $0.count) }) == bytes.count else {
            throw Failure(description: "cannot write the token file in \(directory(id)): \(Self.errorText())")
        }
        if let owner {
            guard fchown(tokenFD, owner.uid, owner.gid) == 0, fchown(dirFD, owner.uid, owner.gid) == 0 else {
                throw Failure(description: "cannot give \(directory(id)) to user \(owner.name): \(Self.errorText())")
            }
        }
    }

    /// Opens a new log for the engine (0600, the gateway's), to become its stdout and stderr; the caller
    /// closes it once the engine is spawned.
    package func openLog(_ id: String) throws(Failure) -> Int32 {
        let baseFD = try openBase()
        defer { close(baseFD) }
        let fd = openat(baseFD, "\(id).log", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(log(id)): \(Self.errorText())") }
        return fd
    }

    /// The last `lines` lines of a log in the gateway's part of the base (`name` is `<id>.log` or a kept
    /// failure log): a regular file of the gateway's, never a link.
    package func tail(_ name: String, lines: Int = 8, maxBytes: Int = 4096) -> String {
        guard let baseFD = try? openBase() else { return "" }
        defer { close(baseFD) }
        let fd = openat(baseFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() else { return "" }
        let size = Int(info.st_size)
        let start = max(0, size - maxBytes)
        var buffer = [UInt8](repeating: 0, count: size - start)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard n > 0 else { return "" }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: " | ")
    }

    /// Removes the engine's token file (before its directory goes, or when a launch ends).
    package func removeToken(_ id: String) {
        guard let baseFD = try? openBase() else { return }
        defer { close(baseFD) }
        let dirFD = openat(baseFD, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirFD >= 0 else { return }
        defer { close(dirFD) }
        _ = unlinkat(dirFD, "token", 0)
    }

    /// Removes the engine's directory with everything its tenant left there (links are removed, never
    /// followed), and its log, or keeps the log as the backend's last failure.
    package func retire(_ id: String, backend: String, keepLog: Bool) {
        guard let baseFD = try? openBase() else { return }
        defer { close(baseFD) }
        _ = Self.removeTree(parent: baseFD, name: id, depth: 0)
        if keepLog {
            _ = renameat(baseFD, "\(id).log", baseFD, "\(backend)-last-failure.log")
        } else {
            _ = unlinkat(baseFD, "\(id).log", 0)
        }
    }

    /// Removes `name` under the directory `parent` and, if it is a directory, everything in it: through
    /// descriptors only, so a link a tenant planted anywhere below is removed as a link. A tree deeper than
    /// `maxDepth` is left in place rather than exhausting descriptors.
    static func removeTree(parent: Int32, name: String, depth: Int, maxDepth: Int = 64) -> Bool {
        if unlinkat(parent, name, 0) == 0 { return true }
        guard errno == EISDIR || errno == EPERM, depth < maxDepth else { return errno == ENOENT }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        guard let stream = fdopendir(fd) else {
            close(fd)
            return false
        }
        var names: [String] = []
        while let entry = readdir(stream) {
            let entryName = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if entryName != "." && entryName != ".." { names.append(entryName) }
        }
        for entryName in names {
            _ = removeTree(parent: dirfd(stream), name: entryName, depth: depth + 1, maxDepth: maxDepth)
        }
        closedir(stream)
        return unlinkat(parent, name, AT_REMOVEDIR) == 0
    }

    static func errorText() -> String { String(cString: strerror(errno)) }
}
