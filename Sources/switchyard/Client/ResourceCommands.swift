import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "Upload input files for file parameters.", subcommands: [Upload.self])

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file straight to the object store and print its file_key (the value of a file parameter).")
        @Argument(help: "The file.") var path: String
        @Option(name: .long, help: "Its content type (default: from the extension, e.g. image/png).") var contentType: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let bar = ProgressBar("uploading", enabled: !options.json)
                let key = try await options.client().uploadFile(at: path, contentType: contentType, progress: bar.bytes)
                bar.finish()
                Terminal.out(options.json ? try SwitchyardClient.json(["file_key": key]) : key)
            }
        }
    }
}

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Upload, list, enable, disable and delete the team's models (synced to its agents).",
        subcommands: [List.self, Upload.self, Enable.self, Disable.self, Delete.self])

    static func id(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw CLIError.usage("\"\(text)\" is not a model id (a UUID)") }
        return id
    }

    static func setStatus(_ model: String, _ status: String, _ options: ClientOptions) async throws {
        try await clientCommand {
            let updated = try await options.client().setModelStatus(id: try id(model), status: status)
            Terminal.out(options.json ? try SwitchyardClient.json(updated) : "\(updated.displayName): \(updated.status)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's models.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let page = try await options.client().models(perPage: 100)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(
                    ["ID", "NAME", "TYPE", "PATH", "SIZE", "STATUS"],
                    page.items.map {
                        [$0.id.lowercased, $0.displayName, $0.modelType, $0.modelPath ?? "-", Terminal.bytes(Int64($0.fileSize)), $0.status]
                    })
            }
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a model file (multipart when large, parts retried) and register it with its SHA-256.")
        @Argument(help: "The model file.") var path: String
        @Option(name: .long, help: "ComfyUI's model folder it belongs in: checkpoints, loras, vae, …") var type: String
        @Option(name: .long, help: "Its name in lists (default: the file name).") var name: String?
        @Option(name: .long, help: "Its path below the folder on the agents (default: the file name).") var modelPath: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let file = (path as NSString).lastPathComponent
                let bar = ProgressBar("uploading \(file)", enabled: !options.json)
                let model = try await options.client().uploadModel(
                    at: path, displayName: name ?? file, modelType: type, modelPath: modelPath, progress: bar.bytes)
                bar.finish()
                Terminal.out(
                    options.json ? try SwitchyardClient.json(model) : "registered \(model.displayName) (\(model.id.lowercased)), \(model.status)")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a model back into the agents' sync set.")
        @Argument(help: "The model id.") var model: String
        @OptionGroup var options: ClientOptions

        func run() async throws { try await ModelsCommand.setStatus(model, "active", options) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a model out of the agents' sync set (they remove it after a grace period).")
        @Argument(help: "The model id.") var model: String
        @OptionGroup var options: ClientOptions

        func run() async throws { try await ModelsCommand.setStatus(model, "disabled", options) }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a model and its file.")
        @Argument(help: "The model id.") var model: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                try await options.client().deleteModel(id: try ModelsCommand.id(model))
                Terminal.out(options.json ? try SwitchyardClient.json(["deleted": model]) : "deleted \(model)")
            }
        }
    }
}

struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "The team's agents.", subcommands: [List.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's agents: status, labels, running tasks, model sync.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let page = try await options.client().agents(perPage: 100)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(
                    ["AGENT", "STATUS", "RUNNING", "LABELS", "COMFYUI", "SYNC"],
                    page.items.map {
                        [
                            $0.agentId, $0.status, "\($0.runningCount)/\($0.capacity)", $0.labels.joined(separator: ","), $0.toolVersion ?? "-",
                            $0.syncDetail ?? $0.syncPhase ?? "-",
                        ]
                    })
            }
        }
    }
}

struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks", abstract: "Be told when tasks end.", subcommands: [List.self, Create.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's webhooks.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let page = try await options.client().webhooks(perPage: 100)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(
                    ["ID", "NAME", "STATUS", "EVENTS", "URL"],
                    page.items.map { [$0.id.lowercased, $0.displayName, $0.status, $0.events.joined(separator: ","), $0.url] })
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a webhook; its signing secret is printed once.")
        @Option(name: .long, help: "Its name.") var name: String
        @Option(name: .long, help: "The https:// URL that receives the POSTs.") var url: String
        @Option(name: .long, help: "Comma-separated: task.completed, task.failed, task.cancelled.")
        var events = "task.completed,task.failed"
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let webhook = try await options.client().createWebhook(
                    displayName: name, url: url, events: events.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                Terminal.out(
                    options.json
                        ? try SwitchyardClient.json(webhook)
                        : "created \(webhook.id.lowercased); signing secret (shown once): \(webhook.secret ?? "")")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a webhook.")
        @Argument(help: "The webhook id.") var webhook: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                guard let id = UUID(uuidString: webhook) else { throw CLIError.usage("\"\(webhook)\" is not a webhook id (a UUID)") }
                try await options.client().deleteWebhook(id: id)
                Terminal.out(options.json ? try SwitchyardClient.json(["deleted": webhook]) : "deleted \(webhook)")
            }
        }
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke the team's API keys (sk- integration, ak- agent).",
        discussion: """
            The keys endpoints take a session, not a key: these commands work with a local server's bootstrap.json \
            (the owner account), and refuse with 403 under an sk- or dk- key.
            """,
        subcommands: [List.self, Create.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's keys (prefixes, never secrets).")
        @Option(name: .long, help: "Only this kind: integration, agent or device.") var kind: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let page = try await options.client().credentials(kind: kind)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(
                    ["ID", "KIND", "NAME", "PREFIX", "STATUS", "EXPIRES"],
                    page.items.map {
                        [$0.id.lowercased, $0.kind, $0.displayName, $0.keyPrefix, $0.status ?? "-", $0.expiresAt.map(RFC3339.format) ?? "never"]
                    })
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; its secret is printed once.")
        @Option(name: .long, help: "integration (sk-, for callers) or agent (ak-, for switchyard agent).") var kind = "integration"
        @Option(name: .long, help: "Its name in lists.") var name: String
        @Option(name: .long, help: "Days until it expires (1–365; default: never).") var expiresInDays: Int?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let created = try await options.client().createCredential(kind: kind, displayName: name, expiresInDays: expiresInDays)
                Terminal.out(options.json ? try SwitchyardClient.json(created) : created.rawKey ?? "")
                if !options.json { Terminal.note("created \(created.id.lowercased) (\(created.kind)); the key above is shown this once") }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: it fails on the next request (agents using it are disconnected).")
        @Argument(help: "The key's id.") var key: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                guard let id = UUID(uuidString: key) else { throw CLIError.usage("\"\(key)\" is not a key id (a UUID)") }
                try await options.client().revokeCredential(id: id)
                Terminal.out(options.json ? try SwitchyardClient.json(["revoked": key]) : "revoked \(key)")
            }
        }
    }
}
