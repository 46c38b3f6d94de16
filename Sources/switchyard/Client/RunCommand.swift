import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a workflow: upload its files, submit it, and with --wait follow it and download its outputs.",
        discussion: """
            Prints the task id (without --wait), or the downloaded files' paths. Exit codes: 0 completed (or submitted), \
            1 failed or cancelled, 2 a parameter the workflow refuses, 3 authentication, 4 no such workflow.
            Example: switchyard run invert -p color=255 --wait --out outputs/
            """
    )

    @Argument(help: "The workflow's slug, or slug@version.")
    var workflow: String

    @Option(name: [.customShort("p"), .customLong("param")], help: "key=value (read as the workflow's parameter type says); repeat for more.")
    var parameters: [String] = []

    @Option(name: [.customShort("f"), .customLong("file")], help: "key=@path: a file parameter, uploaded first; repeat for more.")
    var files: [String] = []

    @Flag(name: .long, help: "Follow the task until it ends, then download its outputs.")
    var wait = false

    @Option(name: .long, help: "Where the outputs go (implies --wait; default: the current directory).")
    var out: String?

    @Option(name: .long, help: "Fail the task as expired if no agent starts it within this many seconds.")
    var startDeadline: Int?

    @Option(name: .long, help: "The Idempotency-Key to send (default: a new one for each invocation).")
    var idempotencyKey: String?

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await clientCommand {
            let client = try await options.client()
            let definition = try await client.workflow(slug: workflow)
            var values: [String: JSONValue] = [:]
            var uploads: [(key: String, path: String)] = []
            for (assignment, isFile) in parameters.map({ ($0, false) }) + files.map({ ($0, true) }) {
                guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                    throw CLIError.usage("\"\(assignment)\" is not key=value")
                }
                let key = String(assignment[..<equals])
                let raw = String(assignment[assignment.index(after: equals)...])
                if isFile || raw.hasPrefix("@") {
                    uploads.append((key, raw.hasPrefix("@") ? String(raw.dropFirst()) : raw))
                } else {
                    values[key] = try Self.value(raw, for: definition.parameters.first { $0.key == key }, key: key)
                }
            }
            for upload in uploads {
                let bar = ProgressBar("uploading \((upload.path as NSString).lastPathComponent)", enabled: !options.json)
                values[upload.key] = .string(try await client.uploadFile(at: upload.path, progress: bar.bytes))
                bar.finish()
            }
            var runOptions = SwitchyardClient.RunOptions(startDeadline: startDeadline)
            if let idempotencyKey { runOptions.idempotencyKey = idempotencyKey }
            let taskId = try await client.run(workflow: workflow, parameters: values, options: runOptions)
            guard wait || out != nil else {
                Terminal.out(options.json ? try SwitchyardClient.json(["task_id": taskId.lowercased]) : taskId.lowercased)
                return
            }
            if !options.json { Terminal.note("task \(taskId.lowercased) submitted (\(definition.slug) v\(definition.version))") }
            let finished = try await Self.follow(client, taskId, json: options.json)
            var written: [String] = []
            if finished.status == .completed {
                written = try await client.downloadOutputs(task: taskId, into: out ?? ".")
            }
            if options.json {
                struct Finished: Encodable {
                    let task: TaskInfo
                    let files: [String]
                }
                Terminal.out(try SwitchyardClient.json(Finished(task: finished, files: written)))
            } else {
                for path in written { Terminal.out(path) }
            }
            guard finished.status == .completed else { throw CLIError.ended(finished) }
        }
    }

    /// Follows a task with a progress bar (the current node beside it) and its status messages; answers the task as
    /// it ended.
    static func follow(_ client: SwitchyardClient, _ taskId: UUID, json: Bool) async throws -> TaskInfo {
        // The label before the bar is the task's status (pending, queued, waiting, running), the detail its message
        // or the node running.
        let bar = ProgressBar("pending", enabled: !json)
        let started = ContinuousClock.now
        let finished = try await client.wait(for: taskId) { event in
            switch event.kind {
            case "progress": bar.update(event.progress, event.currentNode.map { "node \($0)" } ?? "", label: "running")
            case "status" where !json:
                let status = event.data["status"]?.stringValue ?? ""
                bar.update(status == "running" ? 0 : nil, event.message ?? "", label: status, force: true)
            default: break
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        bar.finish(
            finished.status == .completed ? 1 : nil, "in \(String(format: "%.1f", seconds)) s", label: finished.status.rawValue)
        return finished
    }

    /// A `-p` value as the parameter's type reads it: numbers and booleans parsed, select options matched, text as is.
    static func value(_ raw: String, for parameter: WorkflowInfo.Parameter?, key: String) throws -> JSONValue {
        switch parameter?.type {
        case "number":
            guard case .number(let number)? = try? JSONValue.parse(raw) else {
                throw CLIError.usage("parameter \"\(key)\": \"\(raw)\" is not a number")
            }
            return .number(number)
        case "boolean":
            switch raw.lowercased() {
            case "true", "yes", "1", "on": return .bool(true)
            case "false", "no", "0", "off": return .bool(false)
            default: throw CLIError.usage("parameter \"\(key)\": \"\(raw)\" is not true or false")
            }
        case "select":
            let options = parameter?.options ?? []
            if options.contains(.string(raw)) { return .string(raw) }
            if let number = try? JSONValue.parse(raw), options.contains(number) { return number }
            return .string(raw)
        default:
            return .string(raw)
        }
    }
}
