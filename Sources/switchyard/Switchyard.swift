import ArgumentParser
import Foundation
import SwitchyardServer

@main
struct Switchyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Self-hosted control plane and GPU agent for ComfyUI workflows.",
        discussion: "Client commands use the stored login (switchyard login), --key / SWITCHYARD_API_KEY, or a local server's bootstrap.json.",
        version: "switchyard \(SwitchyardVersion.current)",
        subcommands: [
            ServeCommand.self, AgentCommand.self, RunCommand.self, WorkflowsCommand.self, TasksCommand.self, FilesCommand.self,
            ModelsCommand.self, AgentsCommand.self, WebhooksCommand.self, KeysCommand.self, LoginCommand.self, LogoutCommand.self,
            MigrateCommand.self,
            SecretsCommand.self, VersionCommand.self,
        ]
    )

    /// ArgumentParser's own entry point, except that a usage error exits 2 (its default is 64), as every client
    /// command documents: 0 ok, 1 failed, 2 usage, 3 authentication, 4 not found.
    /// A command's own refusal (a ValidationError from `run`) is one line, without the usage text, which is for
    /// what the parser refused.
    static func main() async {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(2)
        } catch {
            exit(withError: error)
        }
    }
}
