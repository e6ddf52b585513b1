import NIOCore
import ServiceLifecycle

/// Follows Redis Sentinel's failovers: subscribed on a sentinel to `+switch-master`, it points the client at
/// the new master as soon as one is promoted, and the client's connections to the old one close. A missed
/// announcement costs only time: a connection to a dead or demoted master fails (refused, or ROLE and
/// READONLY say it is a replica), and the next connection asks the sentinels again.
public final class SentinelWatcher: Service, Sendable {
    let client: RedisClient
    let group: any EventLoopGroup

    public init(client: RedisClient, group: any EventLoopGroup) {
        self.client = client
        self.group = group
    }

    public func run() async throws {
        guard let sentinel = client.endpoints.sentinel else { return }
        let client = self.client
        let subscriber = RedisSubscriber(
            channels: ["+switch-master"], group: group, logger: client.logger,
            connect: { client.connectToSentinel(on: $0) }
        ) { _, payload in
            guard
                let master = SentinelAnnouncement.switchedMaster(
                    String(decoding: payload, as: UTF8.self), masterName: sentinel.masterName)
            else { return }
            client.masterChanged(host: master.host, port: master.port)
        }
        try await subscriber.run()
    }
}

/// Sentinel's pub/sub announcements.
public enum SentinelAnnouncement {
    /// The new master in a `+switch-master` message (`<name> <old ip> <old port> <new ip> <new port>`), when it
    /// is about `masterName`.
    public static func switchedMaster(_ message: String, masterName: String) -> (host: String, port: Int)? {
        let parts = message.split(separator: " ")
        guard parts.count == 5, parts[0] == masterName, let port = Int(parts[4]), (1...65_535).contains(port) else {
            return nil
        }
        return (String(parts[3]), port)
    }
}
