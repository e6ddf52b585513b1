import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#endif

/// The files that hold the gateway's secrets, and which of them other OS users can read: an engine's code
/// (a Python UDF) runs as some user on this host, and must find nothing of the gateway's there.
enum SecretFiles {
    /// Each secret the configuration names, with the key that names it.
    static func named(by config: SparkgateConfig) -> [(key: String, path: String)] {
        var files: [(String, String)] = []
        if let tls = config.tls { files.append(("tls.private_key", tls.privateKey)) }
        for (i, key) in config.auth.keys.enumerated() {
            if let p = key.privateKey { files.append(("auth.keys[\(i)].private_key", p)) }
            if let p = key.secretFile { files.append(("auth.keys[\(i)].secret_file", p)) }
        }
        for (name, backend) in config.backends.sorted(by: { $0.key < $1.key }) {
            if let p = backend.tokenFile { files.append(("backends.\(name).token_file", p)) }
        }
        if let p = config.admin.tokenFile { files.append(("admin.token_file", p)) }
        if let p = config.admin.readTokenFile { files.append(("admin.read_token_file", p)) }
        if config.state.kind == .redis {
            if let p = config.state.redis.passwordFile { files.append(("state.redis.password_file", p)) }
            if let p = config.state.redis.secretFile { files.append(("state.redis.secret_file", p)) }
            if let p = config.state.redis.sentinel?.passwordFile {
                files.append(("state.redis.sentinel.password_file", p))
            }
        }
        return files
    }

    /// Why `path` is readable by someone other than this process's user, or nil when it is not.
    static func exposure(of path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let mode = info.st_mode & 0o777
        if info.st_uid != geteuid() {
            return "it belongs to uid \(info.st_uid), not the gateway's user (uid \(geteuid()))"
        }
        if mode & 0o044 != 0 {
            return
                "its mode is \(String(mode, radix: 8)): \(mode & 0o004 != 0 ? "every user" : "its group") can read it (chmod 600 \(path))"
        }
        return nil
    }

    /// A warning per secret file other users can read.
    static func warnings(for config: SparkgateConfig) -> [ConfigIssue] {
        named(by: config).compactMap { key, path in
            exposure(of: path).map {
                ConfigIssue(file: config.file, key: key, message: "\(path) holds a secret and \($0)")
            }
        }
    }
}
