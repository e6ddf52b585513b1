import Foundation
import SparkgateEngines
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The work directory as a tenant's code would attack it: links planted where the gateway reads or removes,
/// a base made by someone else, a parent anyone can write.
@Suite("Engine workspace: nothing a tenant plants changes what the gateway reads or removes")
struct EngineWorkspaceTests {
    /// A fresh directory for one test, removed after it.
    final class Scratch {
        let path: String

        init() {
            var template = Array((NSTemporaryDirectory() + "sg-workspace-XXXXXX").utf8CString)
            path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
            chmod(path, 0o755)
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }

        func file(_ name: String, _ text: String, mode: mode_t = 0o600) -> String {
            let full = path + "/" + name
            _ = FileManager.default.createFile(atPath: full, contents: Data(text.utf8))
            chmod(full, mode)
            return full
        }
    }

    static func mode(_ path: String) -> (mode: mode_t, uid: uid_t, type: mode_t)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_mode & 0o7777, info.st_uid, info.st_mode & S_IFMT)
    }

    @Test(
        "the base is created 0711 and the gateway's; an engine's directory 0700 with its token 0600; its log beside it")
    func layout() throws {
        let scratch = Scratch()
        let workspace = try EngineWorkspace.prepare(scratch.path + "/engines")
        #expect(Self.mode(workspace.base)?.mode == 0o711)
        #expect(Self.mode(workspace.base)?.uid == geteuid())
        try workspace.createDirectory("e1", token: "secret-token", owner: nil)
        #expect(Self.mode(workspace.directory("e1"))?.mode == 0o700)
        #expect(Self.mode(workspace.directory("e1") + "/token")?.mode == 0o600)
        #expect(try String(contentsOfFile: workspace.directory("e1") + "/token", encoding: .utf8) == "secret-token")
        let log = try workspace.openLog("e1")
        let line = Array("starting\nlistening on 20001\n".utf8)
        #expect(line.withUnsafeBytes { write(log, $0.baseAddress, $0.count) } == line.count)
        close(log)
        #expect(Self.mode(workspace.log("e1"))?.mode == 0o600)
        #expect(!workspace.log("e1").hasPrefix(workspace.directory("e1") + "/"))
        #expect(workspace.tail("e1.log") == "starting | listening on 20001")
    }

    @Test("a base that is a link, or that another user made, is refused by name")
    func foreignBase() throws {
        let scratch = Scratch()
        let real = scratch.path + "/real"
        mkdir(real, 0o711)
        symlink(real, scratch.path + "/link")
        #expect(throws: EngineWorkspace.Failure.self) { try EngineWorkspace.prepare(scratch.path + "/link") }
        guard geteuid() == 0 else { return }
        let theirs = scratch.path + "/theirs"
        mkdir(theirs, 0o711)
        chown(theirs, 65534, 65534)
        do {
            _ = try EngineWorkspace.prepare(theirs)
            Issue.record("a base owned by uid 65534 was accepted")
        } catch {
            #expect(error.description.contains("belongs to uid 65534"))
        }
    }

    @Test("a base under a directory others can write (and that is not sticky) is refused")
    func writableParent() {
        let scratch = Scratch()
        let open = scratch.path + "/open"
        mkdir(open, 0o777)
        chmod(open, 0o777)
        #expect(EngineWorkspace.inspect(open + "/engines") != nil)
        #expect(throws: EngineWorkspace.Failure.self) { try EngineWorkspace.prepare(open + "/engines") }
        // Sticky, like /tmp: others cannot replace what is not theirs.
        chmod(open, 0o1777)
        #expect(EngineWorkspace.inspect(open + "/engines") == nil)
    }

    @Test("a link where a log is read is not followed: the gateway reads nothing through it")
    func linkedLogIsNotRead() throws {
        let scratch = Scratch()
        let secret = scratch.file("admin.token", "the-admin-token")
        let workspace = try EngineWorkspace.prepare(scratch.path + "/engines")
        symlink(secret, workspace.log("e2"))
        #expect(workspace.tail("e2.log") == "")
        // Nor is a new log opened through it.
        #expect(throws: EngineWorkspace.Failure.self) { try workspace.openLog("e2") }
        #expect(try String(contentsOfFile: secret, encoding: .utf8) == "the-admin-token")
    }

    @Test("retiring an engine removes what its tenant left, links as links: nothing outside is touched")
    func retireDoesNotFollowLinks() throws {
        let scratch = Scratch()
        let outside = scratch.path + "/outside"
        mkdir(outside, 0o755)
        let precious = outside + "/precious"
        _ = FileManager.default.createFile(atPath: precious, contents: Data("keep".utf8))
        let workspace = try EngineWorkspace.prepare(scratch.path + "/engines")
        try workspace.createDirectory("e3", token: "t", owner: nil)
        let dir = workspace.directory("e3")
        try FileManager.default.createDirectory(atPath: dir + "/a/b/c", withIntermediateDirectories: true)
        symlink(outside, dir + "/a/b/escape")
        symlink(precious, dir + "/a/file-link")
        close(try workspace.openLog("e3"))
        workspace.retire("e3", backend: "spark", keepLog: true)
        #expect(Self.mode(dir) == nil)
        #expect(Self.mode(workspace.log("e3")) == nil)
        #expect(Self.mode(workspace.lastFailureLog("spark"))?.type == S_IFREG)
        #expect(try String(contentsOfFile: precious, encoding: .utf8) == "keep")
    }
}
