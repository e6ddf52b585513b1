import ArgumentParser
import CSparkgateSystem
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SparkgateCore
import SparkgateObservability
import SparkgateServer
import Tracing

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Example:
              sparkgate serve --config config/sparkgate.yaml

            SIGHUP (or POST /v1/reload on the admin listener) reloads the configuration; SIGTERM drains
            in-flight calls for up to shutdown_grace_seconds and exits 0. Logs go to stderr; the audit log
            goes where audit_log says (stdout by default).
            """)

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config = "config/sparkgate.yaml"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int?

    func run() async throws {
        // Before anything allocates. An operator's own GLIBC_TUNABLES for malloc win.
        let tunables = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] ?? ""
        if !tunables.contains("glibc.malloc.") { _ = csparkgate_keep_large_buffers(32 << 20) }
        Bootstrap.logging(level: logLevel)
        let logger = Logger(label: "sparkgate")
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1),
            .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)

        let config: SparkgateConfig
        do {
            config = try Bootstrap.config(self.config)
        } catch { throw ExitCode.failure }
        let state: GatewayGeneration
        do {
            state = try await Bootstrap.state(config, logger: logger)
        } catch { throw ExitCode.failure }

        // Daemons a tenant's engine leaves behind become this process's children (reaped, and killed with
        // their engine), whether or not it is PID 1 in a container.
        GatewayRuntime.adoptOrphans()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads ?? System.coreCount)
        let audit = AuditLog(target: auditTarget(config.auditLog), logger: logger)
        let tracing: (tracer: any Tracer, service: any Service)?
        do {
            tracing = try TracingBackend.make(config.tracing, logger: logger)
        } catch {
            logger.critical("tracing could not start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        let runtime = GatewayRuntime(
            state: state, group: group, metrics: GatewayMetrics(version: Sparkgate.version), audit: audit,
            logger: logger, tracer: tracing?.tracer)
        let reloader = Reloader(runtime: runtime, file: self.config)
        let routes = AdminRoutes(runtime: runtime, reloader: reloader) { MetricHelp.annotate(registry.emitToBuffer()) }
        let admin = AdminHTTPServer(
            host: config.admin.listen.host, port: config.admin.listen.port, group: group, logger: logger,
            maxConnections: config.admin.maxConnections
        ) { await routes.handle($0) }
        // Started in this order, stopped in reverse: the listener drains first, launched engines stop once no
        // call needs them, the audit log flushes last.
        let services: [any Service] =
            [tracing?.service].compactMap { $0 } + [
                audit, admin, runtime.keyRefresher, SessionReaper(runtime: runtime), runtime.engines,
                SharedStateService(runtime: runtime), HealthChecker(runtime: runtime),
                ReloadOnSignal(reloader: reloader), GatewayListener(runtime: runtime),
            ]
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await serviceGroup.run()
        } catch {
            logger.critical("Sparkgate stopped", metadata: ["error": "\(error)"])
            try? await group.shutdownGracefully()
            throw ExitCode.failure
        }
        try? await group.shutdownGracefully()
        logger.info("Sparkgate stopped")
    }

    private func auditTarget(_ target: SparkgateConfig.AuditLog) -> AuditLog.Target {
        switch target {
        case .stdout: .stdout
        case .off: .off
        case .file(let path): .file(path)
        }
    }
}
