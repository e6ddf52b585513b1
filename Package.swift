// swift-tools-version:6.2
import Foundation
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // The server specializes Core's generic call state machine for its own message types; without this it
    // would run unspecialized across the module boundary (measured: a few microseconds per call).
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
    // Dynamic exclusivity checks (every access to a class's stored property, recorded in a thread-local set)
    // cost about 6% of a unary call's CPU in the release build; debug builds (scripts/test's default) keep them.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "sparkgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sparkgate", targets: ["sparkgate"]),
        .executable(name: "SyntheticSparkConnect", targets: ["SyntheticSparkConnect"]),
        .executable(name: "AuthCost", targets: ["AuthCost"]),
        .executable(name: "AllocationBudget", targets: ["AllocationBudget"]),
        .executable(name: "MinimalForwarder", targets: ["MinimalForwarder"]),
        .library(name: "SparkgateCore", targets: ["SparkgateCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter would build grpc-swift for nothing.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Benchmark-only: counts heap allocations for the allocation budget.
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
    ],
    targets: [
        // Pure decisions: wire envelope, policies, session table, quota ledger, configuration model.
        .target(
            name: "SparkgateCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // gRPC framing over NIO buffers: messages out of DATA frames, edited messages as zero-copy segments.
        .target(
            name: "SparkgateFraming",
            dependencies: ["SparkgateCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // JWT verification (jwt-kit), key sets from PEM/JWKS files and URLs, token issuing.
        .target(
            name: "SparkgateAuth",
            dependencies: [
                "SparkgateCore",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Redis wire format (RESP): commands out, replies in, bounded; nothing but byte buffers, so the
        // fuzzer builds it without the network stack.
        .target(
            name: "SparkgateRESP",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // A small Redis client on SwiftNIO (Sentinel, deadlines, a breaker): no Redis client is among the
        // packages available here.
        .target(
            name: "SparkgateRedis",
            dependencies: [
                "SparkgateRESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Metric handles, audit log, admin HTTP endpoint.
        .target(
            name: "SparkgateObservability",
            dependencies: [
                "SparkgateCore",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP/2 plumbing with no gateway state: frame writing and flushing per event loop, the connection
        // lifecycle driver, backend connections and their pool, Sparkgate's own unary calls, endpoint health.
        .target(
            name: "SparkgateTransport",
            dependencies: [
                "CNGHTTP2",
                "SparkgateCore",
                "SparkgateFraming",
                "SparkgateObservability",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // What replicas share through Redis (quotas, ownership, placement, launch pools) and this replica's
        // own ledger behind its lock.
        .target(
            name: "SparkgateSharedState",
            dependencies: [
                "SparkgateCore",
                "SparkgateRESP",
                "SparkgateRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The system calls Swift cannot import (variadic prctl), as small C functions.
        .target(name: "CSparkgateSystem"),
        // libnghttp2 from the system (Debian's libnghttp2-dev): HTTP/2 framing, HPACK and flow control in C.
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        // Engines on demand: launching (as the tenant's OS user), proving ports, probing, watching and
        // stopping engines, and sharing the pool with other replicas.
        .target(
            name: "SparkgateEngines",
            dependencies: [
                "CSparkgateSystem",
                "SparkgateCore",
                "SparkgateTransport",
                "SparkgateSharedState",
                "SparkgateObservability",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The gateway composed: the TLS listener, the per-RPC executor, the runtime and its services (reaper,
        // health checks, shared-state heartbeats, reload, drain), the admin routes, traces.
        .target(
            name: "SparkgateServer",
            dependencies: [
                "SparkgateCore",
                "SparkgateFraming",
                "SparkgateAuth",
                "SparkgateObservability",
                "SparkgateRedis",
                "SparkgateTransport",
                "SparkgateSharedState",
                "SparkgateEngines",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sparkgate",
            dependencies: [
                "CSparkgateSystem",
                "SparkgateCore",
                "SparkgateAuth",
                "SparkgateObservability",
                "SparkgateServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmark-only: a synthetic Spark Connect backend that streams Arrow batches at memory speed.
        .executableTarget(
            name: "SyntheticSparkConnect",
            dependencies: [
                "SparkgateCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            path: "Benchmarks/SyntheticSparkConnect"
        ),
        // Benchmark-only: the floor of the HTTP/2 stack, a TLS forwarder of the same pieces with no gateway work.
        .executableTarget(
            name: "MinimalForwarder",
            dependencies: [
                "SparkgateCore", "SparkgateTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Benchmarks/MinimalForwarder",
            swiftSettings: swiftSettings
        ),
        // Benchmark-only: the cost of token verification per RPC, with and without the cache.
        .executableTarget(
            name: "AuthCost",
            dependencies: [
                "SparkgateCore", "SparkgateAuth",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            path: "Benchmarks/AuthCost"
        ),
        // Benchmark-only: heap allocations per call through the in-memory gateway, against a budget.
        .executableTarget(
            name: "AllocationBudget",
            dependencies: [
                "SparkgateTestSupport",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Benchmarks/AllocationBudget",
            swiftSettings: swiftSettings
        ),
        // What several test targets share: a seeded random generator whose seed a failing test prints, and the
        // whole gateway in memory (real HTTP/2 client and pipelines, scripted backends, no sockets).
        .target(
            name: "SparkgateTestSupport",
            dependencies: [
                "SparkgateCore", "SparkgateFraming", "SparkgateObservability", "SparkgateServer", "SparkgateTransport",
                "SparkgateSharedState",
                "SparkgateEngines",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SparkgateTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateCoreTests", dependencies: ["SparkgateCore", "SparkgateTestSupport"],
            resources: [.copy("Fixtures")], swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateAuthTests",
            dependencies: [
                "SparkgateAuth", "SparkgateCore", .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateTransportTests",
            dependencies: [
                "SparkgateTransport", "SparkgateCore", "SparkgateTestSupport", "CNGHTTP2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SparkgateFramingTests",
            dependencies: [
                "SparkgateCore", "SparkgateFraming", "SparkgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SparkgateRedisTests",
            dependencies: [
                "SparkgateRESP", "SparkgateRedis", "SparkgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SparkgateObservabilityTests", dependencies: ["SparkgateObservability"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateRESPTests",
            dependencies: ["SparkgateRESP", "SparkgateTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateSharedStateTests",
            dependencies: [
                "SparkgateSharedState", "SparkgateCore", "SparkgateRESP", "SparkgateRedis", "SparkgateTransport",
                "SparkgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateEnginesTests", dependencies: ["SparkgateEngines", "SparkgateCore"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SparkgateServerTests",
            dependencies: [
                "SparkgateServer", "SparkgateCore", "SparkgateFraming", "SparkgateObservability", "SparkgateRESP",
                "SparkgateRedis", "SparkgateTestSupport",
                "SparkgateTransport", "SparkgateSharedState", "SparkgateEngines",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer targets, built only for fuzzing (scripts/fuzz): they have no main of their own, libFuzzer
// provides it, so an ordinary build must not see them.
if ProcessInfo.processInfo.environment["SPARKGATE_FUZZ"] == "1" {
    for name in ["FuzzWire", "FuzzJWT", "FuzzConfig"] {
        package.targets.append(.executableTarget(name: name, dependencies: ["SparkgateCore"], path: "Fuzz/\(name)"))
    }
    package.targets.append(
        .executableTarget(
            name: "FuzzRESP", dependencies: ["SparkgateRESP", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/FuzzRESP"))
    package.targets.append(
        .executableTarget(
            name: "FuzzMessageReader",
            dependencies: ["SparkgateFraming", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/FuzzMessageReader"))
    package.targets.append(
        .executableTarget(
            name: "FuzzHTTP2",
            dependencies: [
                "SparkgateTransport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            path: "Fuzz/FuzzHTTP2"))
}
