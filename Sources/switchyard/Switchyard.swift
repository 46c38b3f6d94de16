import ArgumentParser

@main
struct Switchyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Self-hosted control plane and GPU agent for ComfyUI workflows.",
        subcommands: [
            ServeCommand.self, AgentCommand.self, LoginCommand.self, LogoutCommand.self, MigrateCommand.self, SecretsCommand.self,
            VersionCommand.self,
        ]
    )
}
