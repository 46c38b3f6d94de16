import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct WorkflowsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "Import, list and show workflows; list and restore their saved versions.",
        subcommands: [Import.self, List.self, Show.self, Snapshots.self, Restore.self]
    )

    /// A workflow id, or the id of the workflow with this slug.
    static func resolve(_ reference: String, _ client: SwitchyardClient) async throws -> UUID {
        if let id = UUID(uuidString: reference) { return id }
        return try await client.workflow(slug: reference).id
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a workflow from an import document, or save a new version of the one with its slug.",
            discussion: """
                The file is the body of POST /workflows/import: workflow_slug, display_name, workflow_json (a ComfyUI \
                API-format graph) and parameters. examples/workflows/invert.json is one that runs on any ComfyUI.
                """)
        @Argument(help: "The import document (JSON).") var file: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                guard let data = FileManager.default.contents(atPath: file) else { throw CLIError.usage("cannot read \(file)") }
                let document: JSONValue
                do { document = try JSONValue.parse(Array(data)) } catch { throw CLIError.usage("\(file) is not JSON: \(error)") }
                guard document["workflow_json"] != nil else {
                    throw CLIError.usage(
                        "\(file) has no workflow_json: a ComfyUI graph needs workflow_slug, display_name and parameters around it (see examples/workflows/invert.json)"
                    )
                }
                let (id, version) = try await options.client().importWorkflow(document)
                let slug = document["workflow_slug"]?.stringValue ?? ""
                Terminal.out(
                    options.json
                        ? try SwitchyardClient.json(["id": id.lowercased, "workflow_slug": slug, "version": "\(version)"])
                        : "imported \(slug) v\(version) (\(id.lowercased))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's workflows.")
        @Option(name: .long, help: "Page number.") var page = 1
        @Option(name: .long, help: "Workflows per page (1–100).") var perPage = 20
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let page = try await options.client().workflows(page: page, perPage: perPage)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(
                    ["SLUG", "VERSION", "STATUS", "PARAMETERS", "ID"],
                    page.items.map { [$0.slug, "\($0.version)", $0.status, $0.parameters.map(\.key).joined(separator: ","), $0.id.lowercased] })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workflow's parameters (by slug, slug@version or id).")
        @Argument(help: "Slug, slug@version, or id.") var workflow: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let client = try await options.client()
                let info: WorkflowInfo
                if let id = UUID(uuidString: workflow) {
                    info = try await client.workflow(id: id)
                } else {
                    info = try await client.workflow(slug: workflow)
                }
                if options.json { return Terminal.out(try SwitchyardClient.json(info)) }
                Terminal.out("\(info.displayName) — \(info.slug) v\(info.version) (\(info.status))")
                if let description = info.description, !description.isEmpty { Terminal.out(description) }
                if !info.requiredLabels.isEmpty { Terminal.out("runs on agents labelled \(info.requiredLabels.joined(separator: ", "))") }
                Terminal.table(
                    ["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "RULE"],
                    info.parameters.map { parameter in
                        var rule: [String] = []
                        if let min = parameter.min { rule.append("min \(min.jsonString)") }
                        if let max = parameter.max { rule.append("max \(max.jsonString)") }
                        if let options = parameter.options { rule.append("one of \(options.map(\.jsonString).joined(separator: ", "))") }
                        if let accept = parameter.accept { rule.append("accepts \(accept.joined(separator: ", "))") }
                        return [
                            parameter.key, parameter.type, parameter.required ? "yes" : "no", parameter.defaultValue?.jsonString ?? "-",
                            rule.joined(separator: "; "),
                        ]
                    })
            }
        }
    }

    struct Snapshots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workflow's saved versions.")
        @Argument(help: "Slug or id.") var workflow: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let client = try await options.client()
                let page = try await client.snapshots(workflowId: try await WorkflowsCommand.resolve(workflow, client), perPage: 100)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(["VERSION", "SAVED", "NOTE"], page.items.map { ["\($0.version)", RFC3339.format($0.createdAt), $0.note ?? ""] })
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Save an older version as the newest (so a restore can be undone).")
        @Argument(help: "Slug or id.") var workflow: String
        @Argument(help: "The version to restore.") var version: Int
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let client = try await options.client()
                let saved = try await client.restore(workflowId: try await WorkflowsCommand.resolve(workflow, client), version: version)
                Terminal.out(options.json ? try SwitchyardClient.json(["version": saved]) : "restored version \(version) as version \(saved)")
            }
        }
    }
}
