import NIOCore
import NIOSSL

/// Where and how to reach Redis: fixed addresses tried in order, or the master that Redis Sentinel names.
public struct RedisEndpoints: Sendable {
    /// Sentinels that name the master of `masterName` and announce its failovers.
    public struct Sentinel: Sendable {
        public var addresses: [(host: String, port: Int)]
        public var masterName: String
        public var password: String?

        public init(addresses: [(host: String, port: Int)], masterName: String, password: String? = nil) {
            self.addresses = addresses
            self.masterName = masterName
            self.password = password
        }
    }

    public var addresses: [(host: String, port: Int)]
    public var sentinel: Sentinel?
    public var password: String?
    /// An ACL user for `AUTH <username> <password>`; Redis's default user when nil.
    public var username: String?
    /// The logical database (SELECT); 0 is Redis's default and needs no command.
    public var database: Int
    /// TLS toward Redis (`rediss`), with the system's trust roots unless the context says otherwise.
    public var tls: NIOSSLContext?
    /// The deadline of every step: connecting, TLS with AUTH, SELECT, each command.
    public var timeout: TimeAmount
    /// How often an open breaker probes Redis.
    public var probeInterval: TimeAmount

    public init(
        addresses: [(host: String, port: Int)], sentinel: Sentinel? = nil, password: String? = nil,
        username: String? = nil, database: Int = 0,
        tls: NIOSSLContext? = nil, timeout: TimeAmount = .milliseconds(200),
        probeInterval: TimeAmount = .milliseconds(250)
    ) {
        self.username = username
        self.addresses = addresses
        self.sentinel = sentinel
        self.password = password
        self.database = database
        self.tls = tls
        self.timeout = timeout
        self.probeInterval = probeInterval
    }

    var timeoutMilliseconds: Int { Int(timeout.nanoseconds / 1_000_000) }
}
