import SparkgateCore
import Testing

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

    static let withoutBackends = ConfigTests.minimal.replacingOccurrences(
        of: "backends:\n  local:\n    endpoints: [\"127.0.0.1:15002\"]", with: "")
    func parse(_ yaml: String) throws(ConfigError) -> SparkgateConfig {
        try ConfigTests().parse(Self.withoutBackends + "\n" + yaml)
    }
    func issues(_ yaml: String) -> [ConfigIssue] { ConfigTests().issues(Self.withoutBackends + "\n" + yaml) }

    @Test("run_as names a user per tenant; templates follow the share level")
    func runAs() throws {
        let c = try parse(launch("      share: team\n      run_as: \"sg-{team}\""))
        let settings = try #require(c.backends["engines"]?.launch)
        #expect(
            settings.runAsUser(for: EngineShareKey(backend: "engines", team: "analytics", user: nil)) == "sg-analytics")
        #expect(!settings.runAsIsFixed)
        let fixed = try parse(launch("      share: server\n      run_as: spark\n      warm_engines: 2"))
        #expect(fixed.backends["engines"]?.launch?.runAsIsFixed == true)
        #expect(fixed.backends["engines"]?.launch?.warmEngines == 2)
    }

    @Test("run_as and warm_engines mistakes are named at their key")
    func mistakes() {
        #expect(
            issues(launch("      run_as: \"sg-{tenant}\"")).contains {
                $0.key == "backends.engines.launch.run_as" && $0.message.contains("{tenant}")
            })
        #expect(
            issues(launch("      share: team\n      run_as: \"sg-{user}\"")).contains {
                $0.key == "backends.engines.launch.run_as" && $0.message.contains("serves several users")
            })
        #expect(
            issues(launch("      share: server\n      run_as: \"sg-{team}\"")).contains {
                $0.key == "backends.engines.launch.run_as"
            })
        #expect(issues(launch("      run_as: \"a b\"")).contains { $0.key == "backends.engines.launch.run_as" })
        #expect(
            issues(launch("      share: team\n      run_as: \"sg-{team}\"\n      warm_engines: 1")).contains {
                $0.key == "backends.engines.launch.warm_engines" && $0.message.contains("warm_engines_per_team")
            })
        #expect(
            issues(launch("      max_engines: 2\n      warm_engines: 3")).contains {
                $0.key == "backends.engines.launch.warm_engines"
            })
        #expect(
            issues(launch("      warm_engines: 1\n      environment:\n        TEAM: \"{team}\"")).contains {
                $0.key == "backends.engines.launch.warm_engines" && $0.message.contains("uses {team}")
            })
    }

    @Test("a run_as that can give two tenants one OS user, or root, is refused unless the operator accepts sharing")
    func sharedIdentities() throws {
        func runAsIssue(_ yaml: String) -> String? {
            issues(launch(yaml)).first { $0.key == "backends.engines.launch.run_as" }?.message
        }
        // Every team's engine as one user.
        #expect(runAsIssue("      share: team\n      run_as: spark")?.contains("same OS user") == true)
        // sg-{user} across teams: alice of analytics and alice of data-eng would meet.
        #expect(
            runAsIssue("      share: user\n      run_as: \"sg-{user}\"")?.contains("two tenants one OS user") == true)
        // One team's users under one user.
        #expect(
            runAsIssue("      share: user\n      run_as: \"sg-{team}\"")?.contains("two tenants one OS user") == true)
        // {team}{user} side by side: "ab" + "c" and "a" + "bc" meet.
        #expect(runAsIssue("      share: user\n      run_as: \"sg-{team}{user}\"")?.contains("side by side") == true)
        #expect(runAsIssue("      share: server\n      run_as: root")?.contains("root") == true)
        // Accepted: one user per tenant by construction, or sharing the operator asked for.
        #expect(runAsIssue("      share: user\n      run_as: \"sg-{team}_{user}\"") == nil)
        #expect(runAsIssue("      share: team\n      run_as: spark\n      allow_shared_run_as: true") == nil)
        #expect(runAsIssue("      share: server\n      run_as: spark") == nil)
        let settings = try #require(
            try parse(launch("      share: user\n      run_as: \"sg-{team}_{user}\"")).backends["engines"]?.launch)
        // At run time, a team whose name holds the separator could meet another tenant's user.
        #expect(
            settings.runAsRefusal(for: EngineShareKey(backend: "engines", team: "data_eng", user: "x"))?.contains(
                "contains '_'") == true)
        #expect(settings.runAsRefusal(for: EngineShareKey(backend: "engines", team: "data-eng", user: "x_y")) == nil)
        #expect(
            settings.runAsUser(for: EngineShareKey(backend: "engines", team: "data-eng", user: "x_y"))
                == "sg-data-eng_x_y")
    }

    @Test("warm engines per team start as the team's user: share team or user, no {user} anywhere")
    func warmPerTeam() throws {
        let c = try parse(launch("      share: team\n      run_as: \"sg-{team}\"\n      warm_engines_per_team: 1"))
        #expect(c.backends["engines"]?.launch?.warmEnginesPerTeam == 1)
        func warmIssue(_ yaml: String) -> String? {
            issues(launch(yaml)).first { $0.key == "backends.engines.launch.warm_engines_per_team" }?.message
        }
        #expect(warmIssue("      share: server\n      warm_engines_per_team: 1")?.contains("share: server") == true)
        #expect(
            warmIssue("      share: user\n      run_as: \"sg-{team}_{user}\"\n      warm_engines_per_team: 1")?
                .contains("{user}") == true)
        #expect(warmIssue("      max_engines: 1\n      warm_engines_per_team: 2")?.contains("max_engines") == true)
    }
}
