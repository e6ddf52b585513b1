import ArgumentParser

@main
enum SparkgateMain {
    static func main() async {
        // An engine about to become another OS user: nothing of the gateway runs first.
        if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == EngineExec.command {
            EngineExec.run(CommandLine.arguments)
        }
        await Sparkgate.main()
    }
}

struct Sparkgate: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sparkgate",
        abstract: "An authenticating, multi-tenant gateway for Apache Spark Connect.",
        discussion: """
            Clients connect with sc://HOST:15443/;use_ssl=true;token=<JWT>.

            Quick start:
              sparkgate certs generate --out config/dev --host localhost --host 127.0.0.1
              sparkgate keys generate --algorithm ES256 --kid dev-es256 --out config/dev
              sparkgate serve --config config/sparkgate.yaml
              sparkgate token issue --config config/sparkgate.yaml --user alice --team analytics
            """,
        version: version,
        subcommands: [Serve.self, ConfigCommand.self, Certs.self, Keys.self, Token.self, JWKS.self]
    )
}
