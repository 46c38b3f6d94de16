import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List, show, follow, cancel tasks and fetch their results.",
        subcommands: [List.self, Show.self, Watch.self, Cancel.self, Result.self]
    )

    static func id(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw CLIError.usage("\"\(text)\" is not a task id (a UUID)") }
        return id
    }

    static func row(_ task: TaskInfo) -> [String] {
        let status =
            task.status == .failed
            ? Terminal.red(task.status.rawValue) : task.status == .completed ? Terminal.green(task.status.rawValue) : task.status.rawValue
        return [task.id.lowercased, status, "v\(task.workflowVersion)", RFC3339.format(task.createdAt), task.agentId ?? "-"]
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's tasks, newest first.")
        @Option(name: .long, help: "Only tasks in this status (pending, waiting, queued, running, completed, failed, cancelled).")
        var status: String?
        @Option(name: .long, help: "Page number.")
        var page = 1
        @Option(name: .long, help: "Tasks per page (1–100).")
        var perPage = 20
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                var filter: TaskStatus?
                if let status {
                    guard let parsed = TaskStatus(rawValue: status) else {
                        throw CLIError.usage("--status: \"\(status)\" is not one of \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    filter = parsed
                }
                let page = try await options.client().tasks(status: filter, page: page, perPage: perPage)
                if options.json { return Terminal.out(try SwitchyardClient.json(page.items)) }
                Terminal.table(["TASK", "STATUS", "VERSION", "CREATED", "AGENT"], page.items.map(TasksCommand.row))
                if page.hasMore { Terminal.note("page \(page.currentPage) of \(page.totalCount) tasks; --page \(page.currentPage + 1) for more") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One task: status, error, parameters, where it waits.")
        @Argument(help: "The task id.") var task: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let task = try await options.client().task(id: try TasksCommand.id(task))
                if options.json { return Terminal.out(try SwitchyardClient.json(task)) }
                var lines = [
                    "task      \(task.id.lowercased)", "status    \(task.status.rawValue)",
                    "workflow  \(task.workflowId.lowercased) v\(task.workflowVersion)",
                    "created   \(RFC3339.format(task.createdAt))",
                ]
                if let agent = task.agentId { lines.append("agent     \(agent)") }
                if let position = task.queuePosition {
                    lines.append("queue     \(position)\(task.estimatedStartAt.map { ", starts ~\(RFC3339.format($0))" } ?? "")")
                }
                if let error = task.error, !error.isEmpty { lines.append("error     \(error)") }
                if let parameters = task.parameters, !parameters.isEmpty { lines.append("params    \(JSONValue.object(parameters).jsonString)") }
                Terminal.out(lines.joined(separator: "\n"))
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a task's events until it ends (exit 1 when it fails).",
            discussion: "With --json, one event per line: {\"id\":…,\"event\":…,\"data\":…}.")
        @Argument(help: "The task id.") var task: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let id = try TasksCommand.id(task)
                let client = try await options.client()
                let finished: TaskInfo
                if options.json {
                    finished = try await client.wait(for: id) { event in
                        let line: JSONValue = [
                            "id": event.id.map { .number(JSONNumber($0)) } ?? .null, "event": .string(event.kind), "data": event.data,
                        ]
                        Terminal.out(line.jsonString)
                    }
                } else {
                    finished = try await RunCommand.follow(client, id, json: false)
                }
                guard finished.status == .completed else { throw CLIError.ended(finished) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a task (a running one is interrupted; a finished one stays as it is).")
        @Argument(help: "The task id.") var task: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let id = try TasksCommand.id(task)
                let client = try await options.client()
                try await client.cancel(task: id)
                let task = try await client.task(id: id)
                Terminal.out(options.json ? try SwitchyardClient.json(task) : "task \(id.lowercased) \(task.status.rawValue)")
            }
        }
    }

    struct Result: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A task's outputs with download URLs; --download fetches them.")
        @Argument(help: "The task id.") var task: String
        @Option(name: .long, help: "Download the outputs into this directory.")
        var download: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let id = try TasksCommand.id(task)
                let client = try await options.client()
                if let download {
                    for path in try await client.downloadOutputs(task: id, into: download) { Terminal.out(path) }
                    return
                }
                let result = try await client.result(task: id)
                if options.json { return Terminal.out(try SwitchyardClient.json(result)) }
                guard result.status == .completed else {
                    return Terminal.out("task \(id.lowercased) \(result.status.rawValue)\(result.error.isEmpty ? "" : ": \(result.error)")")
                }
                if let expired = result.outputsExpiredAt { return Terminal.out("the outputs expired on \(RFC3339.format(expired))") }
                let names = result.fileNames
                Terminal.table(
                    ["OUTPUT", "FILE", "URL"], result.downloadURLs.sorted { $0.key < $1.key }.map { [$0.key, names[$0.key] ?? "-", $0.value] })
            }
        }
    }
}
