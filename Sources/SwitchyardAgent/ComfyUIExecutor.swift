import AsyncHTTPClient
import Foundation
import Logging
import SwitchyardComfyUI
import SwitchyardCore
import SwitchyardWire

/// Runs attempts on a local ComfyUI, following the recorded protocol (docs/agent.md, "What it does"): inputs pushed
/// with `/upload/image` (the returned name is what the graph gets); one WebSocket for every attempt, opened before
/// any `POST /prompt` and routed by our own `prompt_id`; several prompts may wait in ComfyUI's own queue, and
/// `.started` is reported when one leaves it; progress weighted across the graph's nodes; outputs read from the
/// history once `executing {"node": null}` says it is written; every kind of output kept; a stop deletes a queued
/// prompt and interrupts a running one by id.
public struct ComfyUIExecutor: ToolExecutor {
    public let baseURL: String
    let client: ComfyUIClient
    let connection: ComfyUIConnection
    let logger: Logger
    let options: ComfyUIConnection.RunOptions

    /// The agent it runs for: written into every prompt's `extra_data` (`switchyard_agent_id`) so that a restarted
    /// agent finds its own prompts, and the WebSocket's client id is derived from it so that their messages reach
    /// the restarted agent's socket (ComfyUI sends a prompt's messages to the client id that posted it).
    public let agentId: String?

    public var tool: String { "comfyui" }

    public init(
        baseURL: String, agentId: String? = nil, http: HTTPClient = .shared, logger: Logger, options: ComfyUIConnection.RunOptions = .init()
    ) {
        self.client = ComfyUIClient(baseURL: baseURL, http: http)
        self.baseURL = client.baseURL
        self.agentId = agentId
        let clientId = agentId.map { "switchyard-" + ComfyUIClient.percentEncode($0) } ?? "switchyard-" + UUID().uuidString.lowercased()
        self.connection = ComfyUIConnection(client: client, clientId: clientId, logger: logger)
        self.logger = logger
        self.options = options
    }

    /// Closes the shared WebSocket (the agent is stopping).
    public func close() { connection.close() }

    // MARK: Health

    public func health() async -> ToolHealth {
        do {
            let answer = try await client.systemStats()
            guard answer.status == 200, let stats = answer.json else {
                return ToolHealth(healthy: false, detail: "ComfyUI answered /system_stats with \(answer.status)")
            }
            let devices: [SystemStats.GPUDevice] = (stats["devices"]?.arrayValue ?? []).compactMap { device in
                guard device["type"]?.stringValue != "cpu" else { return nil }
                return SystemStats.GPUDevice(
                    name: Self.deviceName(device["name"]?.stringValue ?? "gpu"), vramTotal: Self.int(device["vram_total"]),
                    vramFree: Self.int(device["vram_free"]))
            }
            let system = stats["system"]
            return ToolHealth(
                healthy: true, toolVersion: system?["comfyui_version"]?.stringValue,
                systemStats: SystemStats(
                    os: system?["os"]?.stringValue, ramTotal: system.map { Self.int($0["ram_total"]) },
                    ramFree: system.map { Self.int($0["ram_free"]) },
                    gpuDevices: devices))
        } catch {
            return ToolHealth(healthy: false, detail: "ComfyUI at \(baseURL) is not reachable: \(error)")
        }
    }

    /// ComfyUI's model folders from `/internal/folder_paths`; nil when it does not answer them (an older ComfyUI).
    public func modelFolders() async -> [String: [String]]? {
        guard let answer = try? await client.folderPaths(), answer.status == 200, case .object(let types)? = answer.json else { return nil }
        return types.compactMapValues { folders in folders.arrayValue?.compactMap(\.stringValue) }
    }

    /// `cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync` → `NVIDIA GeForce RTX 4090`.
    static func deviceName(_ raw: String) -> String {
        var name = raw
        if let colon = name.range(of: " : ") { name = String(name[..<colon.lowerBound]) }
        if name.hasPrefix("cuda:"), let space = name.firstIndex(of: " ") { name = String(name[name.index(after: space)...]) }
        return name
    }

    static func int(_ value: JSONValue?) -> Int {
        value?.numberValue.flatMap { Int($0.description) ?? Double($0.description).map { Int($0) } } ?? 0
    }

    // MARK: Execution

    public func execute(_ job: ExecutionJob, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
        try await stoppable { stop in try await run(job, stop: stop, report: report) }
    }

    /// Runs `work` unstructured so that cancelling the caller does not abandon the prompt before ComfyUI has
    /// confirmed the stop; cancellation is forwarded as a stop request instead.
    private func stoppable(_ work: @escaping @Sendable (ComfyUIStop) async throws -> [ProducedOutput]) async throws -> [ProducedOutput] {
        let stop = ComfyUIStop()
        let task = Task { try await work(stop) }
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            stop.request()
        }
    }

    private func run(_ job: ExecutionJob, stop: ComfyUIStop, report: @escaping @Sendable (ExecutionReport) -> Void) async throws
        -> [ProducedOutput]
    {
        guard case .object(var graph) = job.definition else { throw ExecutionFailure("the definition is not a ComfyUI API graph", fault: .task) }
        for input in job.inputs {
            if stop.isRequested { throw ExecutionStopped(at: Date()) }
            let reference = try await upload(input, attemptId: job.attemptId)
            guard let nodeId = input.offer.nodeId, let field = input.offer.field, case .object(var node)? = graph[nodeId],
                case .object(var inputs)? = node["inputs"]
            else { continue }
            inputs[field] = .string(reference)
            node["inputs"] = .object(inputs)
            graph[nodeId] = .object(node)
        }
        let tracker = ProgressTracker(nodeCount: graph.count) { report(.progress($0)) }
        var extraData: [String: JSONValue] = ["switchyard_task_id": .string(job.taskId), "switchyard_keep_previews": .bool(job.keepPreviews)]
        if let agentId { extraData["switchyard_agent_id"] = .string(agentId) }
        let listed: [ComfyUIOutput]
        do {
            listed = try await connection.run(
                promptId: job.attemptId, graph: graph, extraData: extraData, stop: stop, options: options, onEvent: Self.forward(tracker, report))
        } catch {
            throw Self.failure(error)
        }
        return try await fetchAll(listed, keepPreviews: job.keepPreviews, stop: stop)
    }

    static func forward(_ tracker: ProgressTracker, _ report: @escaping @Sendable (ExecutionReport) -> Void) -> @Sendable (ComfyUIEvent) -> Void {
        { event in
            switch event {
            case .started: report(.started)
            case .cached(let nodes): tracker.cached(nodes)
            case .progressState(let nodes): tracker.state(nodes)
            case .progress(let node, let value, let max): tracker.step(node: node, value: value, max: max)
            case .executing(let node): tracker.executing(node)
            default: break
            }
        }
    }

    private func fetchAll(_ listed: [ComfyUIOutput], keepPreviews: Bool, stop: ComfyUIStop) async throws -> [ProducedOutput] {
        var produced: [ProducedOutput] = []
        for output in listed where keepPreviews || !output.isPreview {
            if stop.isRequested { throw ExecutionStopped(at: Date()) }
            produced.append(try await fetch(output))
        }
        return produced
    }

    // MARK: Recovery after a restart

    /// This agent's prompts in ComfyUI's queue, and those of its history that finished within `window` (at most the
    /// newest 500 entries are looked at).
    public func recoverable(window: Duration) async -> [RecoveredAttempt] {
        guard let agentId, let listed = try? await client.listPrompts(recentFinished: 500) else { return [] }
        let since = Date().addingTimeInterval(-Double(window.components.seconds))
        // A prompt that finished between the two reads is in both: its history (read last) says where it is.
        var latest: [String: Int] = [:]
        for (index, prompt) in listed.enumerated() { latest[prompt.promptId] = index }
        return listed.enumerated().compactMap { index, prompt in
            guard latest[prompt.promptId] == index else { return nil }
            guard prompt.extraData["switchyard_agent_id"]?.stringValue == agentId, let taskId = prompt.extraData["switchyard_task_id"]?.stringValue,
                prompt.place != .absent || (prompt.finishedAt ?? .distantPast) >= since
            else { return nil }
            return RecoveredAttempt(
                attemptId: prompt.promptId, taskId: taskId, keepPreviews: prompt.extraData["switchyard_keep_previews"]?.boolValue ?? true,
                active: prompt.place != .absent)
        }
    }

    public func resume(_ attempt: RecoveredAttempt, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
        try await stoppable { stop in
            let tracker = ProgressTracker(nodeCount: 0) { report(.progress($0)) }
            let listed: [ComfyUIOutput]
            do {
                listed = try await connection.resume(
                    promptId: attempt.attemptId, stop: stop, options: options, onEvent: Self.forward(tracker, report))
            } catch let error as ComfyUIPromptError {
                throw Self.failure(error)
            }
            return try await fetchAll(listed, keepPreviews: attempt.keepPreviews, stop: stop)
        }
    }

    public func abandon(_ attempt: RecoveredAttempt) async {
        try? await client.deleteFromQueue(attempt.attemptId)
        try? await client.interrupt(attempt.attemptId)
    }

    /// Whose fault a prompt's end is (docs/agent.md, "Failures").
    static func failure(_ error: ComfyUIPromptError) -> any Error {
        switch error {
        case .unreachable(let text): ExecutionFailure(text, fault: .platform, toolUnavailable: true)
        case .refused(let text), .failed(let text): ExecutionFailure(text, fault: .task)
        case .serverError(let text), .interrupted(let text), .lost(let text), .outputs(let text): ExecutionFailure(text, fault: .agent)
        case .stopped(let at): ExecutionStopped(at: at)
        }
    }

    // MARK: Files

    /// Pushes an input to ComfyUI's input folder under `switchyard/<attempt>`; returns what LoadImage refers to.
    private func upload(_ input: ExecutionJob.Input, attemptId: String) async throws -> String {
        let answer: ComfyUIClient.Answer
        do {
            answer = try await client.uploadImage(fileName: input.offer.fileName, bytes: input.bytes, subfolder: "switchyard/\(attemptId)")
        } catch {
            throw ExecutionFailure("ComfyUI at \(baseURL) is not reachable: \(error)", fault: .platform, toolUnavailable: true)
        }
        guard answer.status == 200, let stored = answer.json, let name = stored["name"]?.stringValue else {
            let fault: FaultOrigin = answer.status == 413 || answer.status == 400 ? .task : .agent
            throw ExecutionFailure("ComfyUI refused input \"\(input.offer.parameter)\" on /upload/image (\(answer.status))", fault: fault)
        }
        let folder = stored["subfolder"]?.stringValue ?? ""
        return folder.isEmpty ? name : "\(folder)/\(name)"
    }

    /// One listed output as bytes to upload: a file fetched with `/view`, a text or JSON value written out.
    private func fetch(_ output: ComfyUIOutput) async throws -> ProducedOutput {
        let stem = "\(output.nodeId)_\(output.kind)_\(output.index)"
        switch output.content {
        case .text(let text):
            return ProducedOutput(
                nodeId: output.nodeId, kind: output.kind, index: output.index, fileName: stem + ".txt", contentType: "text/plain; charset=utf-8",
                bytes: Array(text.utf8), text: text)
        case .json(let value):
            return ProducedOutput(
                nodeId: output.nodeId, kind: output.kind, index: output.index, fileName: stem + ".json", contentType: "application/json",
                bytes: Array(value.jsonString.utf8))
        case .file(let filename, let subfolder, let type, let format):
            let answer: ComfyUIClient.Answer
            do {
                answer = try await client.view(filename: filename, subfolder: subfolder, type: type)
            } catch {
                throw ExecutionFailure("could not fetch output \(filename) of node \(output.nodeId) from ComfyUI: \(error)", fault: .agent)
            }
            guard answer.status == 200 else {
                throw ExecutionFailure(
                    "ComfyUI could not serve output \(filename) of node \(output.nodeId) from /view (\(answer.status))", fault: .agent)
            }
            let contentType = format.flatMap { $0.contains("/") ? $0 : nil } ?? answer.contentType ?? "application/octet-stream"
            return ProducedOutput(
                nodeId: output.nodeId, kind: output.kind, index: output.index, fileName: filename, contentType: contentType, bytes: answer.body,
                preview: output.isPreview, animated: output.animated)
        }
    }
}
