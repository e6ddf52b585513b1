import Testing
import SparkgateCore

@Suite("Engines: OS identity and warm pools in the configuration")
struct LaunchIdentityTests {
    func launch(_ extra: String) -> String {
        """
        backends:
          engines:
            launch:
              command: ["sail", "spark", "server", "--port", "{port}"]
        \(extra)
        defaults:
          backend: engines
        """
    }

    static let withoutBackends = ConfigTests.minimal.replacingOccurrences(of: "backends:\n  local:\n    endpoints: [\"127.0.0.1:15002\"]", with: "")
    func parse(_ yaml: String) throws(ConfigError) -> SparkgateConfig { try ConfigTests().parse(Self.withoutBackends + "\n" + yaml) }
    func issues(_ yaml: String) -> [ConfigIssue] { ConfigTests().issues(Self.withoutBackends + "\n" + yaml) }

    @Test("run_as names a user per tenant; templates follow the share level")
    func runAs() throws {
        let c = try parse(launch("      share: team\n      run_as: \"sg-{team}\""))
        let settings = try #require(c.backends["engines"]?.launch)
        #expect(settings.runAsUser(for: EngineShareKey(backend: "engines", team: "analytics", user: nil)) == "sg-analytics")
        #expect(!settings.runAsIsFixed)
        let fixed = try parse(launch("      share: server\n      run_as: spark\n      warm_engines: 2"))
        #expect(fixed.backends["engines"]?.launch?.runAsIsFixed == true)
        #expect(fixed.backends["engines"]?.launch?.warmEngines == 2)
    }

    @Test("run_as and warm_engines mistakes are named at their key")
    func mistakes() {
        #expect(issues(launch("      run_as: \"sg-{tenant}\"")).contains { $0.key == "backends.engines.launch.run_as" && $0.message.contains("{tenant}") })
        #expect(issues(launch("      share: team\n      run_as: \"sg-{user}\"")).contains { $0.key == "backends.engines.launch.run_as" && $0.message.contains("serves several users") })
        #expect(issues(launch("      share: server\n      run_as: \"sg-{team}\"")).contains { $0.key == "backends.engines.launch.run_as" })
        #expect(issues(launch("      run_as: \"a b\"")).contains { $0.key == "backends.engines.launch.run_as" })
        #expect(issues(launch("      share: team\n      run_as: \"sg-{team}\"\n      warm_engines: 1")).contains {
            $0.key == "backends.engines.launch.warm_engines" && $0.message.contains("fixed run_as")
        })
        #expect(issues(launch("      max_engines: 2\n      warm_engines: 3")).contains { $0.key == "backends.engines.launch.warm_engines" })
        #expect(issues(launch("      warm_engines: 1\n      environment:\n        TEAM: \"{team}\"")).contains {
            $0.key == "backends.engines.launch.warm_engines" && $0.message.contains("uses {team}")
        })
    }
}
