import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardWire
import Synchronization
import WSClient

/// Runs attempts on a local ComfyUI, following the recorded protocol (docs/agent-protocol.md, "The ComfyUI
/// executor"): inputs pushed with `/upload/image` (the returned name is what the graph gets), the WebSocket opened
/// with our own `clientId` before `POST /prompt` with our own `prompt_id`, progress weighted across the graph's
/// nodes, completion on `execution_success` or `executing{node:null}`, every file output fetched from history with
/// `/view`, and cancellation by a targeted `/interrupt` (running) or `/queue {delete}` (pending).
public struct ComfyUIExecutor: ToolExecutor {
    public let baseURL: String
    let http: HTTPClient
    let logger: Logger
    /// How long a cancelled prompt may take to stop before the executor gives up waiting.
    var stopTimeout: Duration = .seconds(60)

    public var tool: String { "comfyui" }

    public init(baseURL: String, http: HTTPClient = .shared, logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
        self.logger = logger
    }

    // MARK: Health

    public func health() async -> ToolHealth {
        do {
            let (status, body, _) = try await request(.GET, "/system_stats", timeout: .seconds(5))
            guard status == 200, let stats = try? JSONValue.parse(body) else {
                return ToolHealth(healthy: false, detail: "ComfyUI answered /system_stats with \(status)")
            }
            let devices: [SystemStats.GPUDevice] =
                if case .array(let list)? = stats["devices"] {
                    list.compactMap { device in
                        guard device["type"]?.stringValue != "cpu" else { return nil }
                        return SystemStats.GPUDevice(
                            name: Self.deviceName(device["name"]?.stringValue ?? "gpu"), vramTotal: Self.int(device["vram_total"]),
                            vramFree: Self.int(device["vram_free"]))
                    }
                } else { [] }
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

    public func execute(_ job: ExecutionJob, progress: @escaping @Sendable (ExecutionProgress) -> Void) async throws -> [ProducedOutput] {
        // The work runs unstructured so that cancelling the caller does not tear the socket down before ComfyUI
        // has confirmed the stop; cancellation is forwarded to the control instead.
        let control = StopControl()
        let work = Task { try await run(job, control: control, progress: progress) }
        return try await withTaskCancellationHandler {
            try await work.value
        } onCancel: {
            control.requestStop()
        }
    }

    private func run(_ job: ExecutionJob, control: StopControl, progress: @escaping @Sendable (ExecutionProgress) -> Void) async throws
        -> [ProducedOutput]
    {
        guard case .object(var graph) = job.definition else { throw ExecutionFailure("the definition is not a ComfyUI API graph", fault: .task) }
        for input in job.inputs {
            try Task.checkCancellation()
            let reference = try await upload(input, attemptId: job.attemptId)
            guard let nodeId = input.offer.nodeId, let field = input.offer.field, case .object(var node)? = graph[nodeId],
                case .object(var inputs)? = node["inputs"]
            else { continue }
            inputs[field] = .string(reference)
            node["inputs"] = .object(inputs)
            graph[nodeId] = .object(node)
        }
        let promptId = job.attemptId
        let tracker = ProgressTracker(nodeCount: graph.count, report: progress)
        let outcome = Locked<Outcome?>(nil)
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
        configuration.autoPing = .disabled
        let wsURL = baseURL.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
        let body = JSONValue.object([
            "prompt": .object(graph), "client_id": .string(job.attemptId), "prompt_id": .string(promptId),
            "extra_data": ["switchyard_task_id": .string(job.taskId)],
        ]).jsonString
        do {
            try await WebSocketClient.connect(url: "\(wsURL)/ws?clientId=\(job.attemptId)", configuration: configuration, logger: logger) {
                inbound, outbound, _ in
                // Open first, then queue: ComfyUI does not buffer messages for a client that is not connected.
                let (status, answer, _) = try await request(.POST, "/prompt", body: Array(body.utf8), timeout: .seconds(30))
                if let failure = Self.promptRefusal(status: status, body: answer) {
                    outcome.withLock { $0 = .failed(failure) }
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                }
                control.install { await stop(promptId: promptId, outbound: outbound, outcome: outcome) }
                for try await message in inbound.messages(maxSize: 1 << 24) {
                    // Binary preview frames (SaveImageWebsocket) carry no state: ignored.
                    guard case .text(let text) = message, let event = try? JSONValue.parse(text), let type = event["type"]?.stringValue else {
                        continue
                    }
                    let data = event["data"] ?? .null
                    if let prompt = data["prompt_id"]?.stringValue, prompt != promptId { continue }
                    switch type {
                    case "execution_start": control.markStarted()
                    case "execution_cached":
                        if case .array(let nodes)? = data["nodes"] { tracker.cached(nodes.compactMap(\.stringValue)) }
                    case "progress_state": tracker.state(data["nodes"])
                    case "progress":
                        tracker.step(node: data["node"]?.stringValue, value: data["value"], max: data["max"])
                    case "executing":
                        if data["node"] == .null, data["prompt_id"]?.stringValue == promptId {
                            outcome.withLock { $0 = $0 ?? .succeeded }
                        } else if let node = data["node"]?.stringValue {
                            tracker.executing(node)
                        }
                    case "execution_success": outcome.withLock { $0 = $0 ?? .succeeded }
                    case "execution_error": outcome.withLock { $0 = .failed(Self.executionError(data)) }
                    case "execution_interrupted": outcome.withLock { $0 = .interrupted }
                    default: continue
                    }
                    if outcome.withLock({ $0 }) != nil {
                        try await outbound.close(.normalClosure, reason: nil)
                        break
                    }
                }
            }
        } catch let failure as ExecutionFailure {
            throw failure
        } catch {
            if outcome.withLock({ $0 }) == nil {
                throw ExecutionFailure("lost the connection to ComfyUI at \(baseURL): \(error)", fault: .agent)
            }
        }
        switch outcome.withLock({ $0 }) {
        case .failed(let failure): throw failure
        case .interrupted, .stoppedPending:
            if control.stopRequested { throw CancellationError() }
            throw ExecutionFailure("ComfyUI interrupted the prompt (stopped on the machine itself)", fault: .agent)
        case .succeeded:
            if control.stopRequested { throw CancellationError() }
            tracker.finish()
            return try await collectOutputs(promptId: promptId)
        case nil:
            if control.stopRequested { throw CancellationError() }
            throw ExecutionFailure("ComfyUI closed the WebSocket before the prompt finished", fault: .agent)
        }
    }

    enum Outcome: Sendable, Equatable {
        case succeeded
        case failed(ExecutionFailure)
        case interrupted
        case stoppedPending
    }

    /// Stops a prompt: deleted from the queue while pending, interrupted (by id) while running. A deleted prompt
    /// produces no message for its client, so the socket is closed here; an interrupted one reports
    /// `execution_interrupted`, which ends the read loop.
    private func stop(promptId: String, outbound: WebSocketOutboundWriter, outcome: Locked<Outcome?>) async {
        _ = try? await request(.POST, "/queue", body: Array(#"{"delete":["\#(promptId)"]}"#.utf8), timeout: .seconds(10))
        let queue = (try? await request(.GET, "/queue", timeout: .seconds(10))).flatMap { try? JSONValue.parse($0.1) }
        let running = queue?["queue_running"].map { $0.jsonString.contains("\"\(promptId)\"") } ?? false
        let historyDone = (try? await request(.GET, "/history/\(promptId)", timeout: .seconds(10))).map { $0.1.count > 2 } ?? false
        if running {
            _ = try? await request(.POST, "/interrupt", body: Array(#"{"prompt_id":"\#(promptId)"}"#.utf8), timeout: .seconds(10))
            // Wait for ComfyUI to say it stopped; give up after stopTimeout.
            try? await Task.sleep(for: stopTimeout)
            if outcome.withLock({ $0 }) == nil { try? await outbound.close(.goingAway, reason: nil) }
        } else if !historyDone {
            outcome.withLock { $0 = $0 ?? .stoppedPending }
            try? await outbound.close(.normalClosure, reason: nil)
        }
    }

    /// A refused `POST /prompt` (400, or 200 with `node_errors`) as a readable task error; nil when accepted.
    static func promptRefusal(status: Int, body: [UInt8]) -> ExecutionFailure? {
        guard let answer = try? JSONValue.parse(body) else {
            return status == 200
                ? nil
                : ExecutionFailure(
                    "ComfyUI answered POST /prompt with \(status): \(String(decoding: body.prefix(200), as: UTF8.self))", fault: .agent)
        }
        var problems: [String] = []
        if case .object(let nodeErrors)? = answer["node_errors"] {
            for nodeId in nodeErrors.keys.sorted() {
                let node = nodeErrors[nodeId]!
                let classType = node["class_type"]?.stringValue ?? "?"
                if case .array(let errors)? = node["errors"] {
                    for error in errors {
                        let message = error["message"]?.stringValue ?? "error"
                        let details = error["details"]?.stringValue ?? ""
                        problems.append("node \(nodeId) (\(classType)): \(message)\(details.isEmpty ? "" : ": \(details)")")
                    }
                }
            }
        }
        if status == 200 && problems.isEmpty { return nil }
        if problems.isEmpty, let error = answer["error"] {
            let details = error["details"]?.stringValue ?? ""
            problems.append((error["message"]?.stringValue ?? "ComfyUI refused the prompt") + (details.isEmpty ? "" : " (\(details))"))
        }
        if status >= 500 { return ExecutionFailure("ComfyUI failed on POST /prompt (\(status))", fault: .agent) }
        // A 200 with node_errors ran only part of the graph: reported as the task's failure rather than a silent
        // partial result.
        return ExecutionFailure("ComfyUI refused the workflow: " + problems.joined(separator: "; "), fault: .task)
    }

    static func executionError(_ data: JSONValue) -> ExecutionFailure {
        let node = data["node_id"]?.stringValue ?? "?"
        let classType = data["node_type"]?.stringValue ?? "?"
        let type = data["exception_type"]?.stringValue ?? "error"
        let message = (data["exception_message"]?.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return ExecutionFailure("node \(node) (\(classType)) failed: \(type): \(message)", fault: .task)
    }

    // MARK: Files

    /// Pushes an input to ComfyUI's input folder under `switchyard/<attempt>`; returns what LoadImage refers to.
    private func upload(_ input: ExecutionJob.Input, attemptId: String) async throws -> String {
        let boundary = "switchyard-\(UUID().uuidString.lowercased())"
        let subfolder = "switchyard/\(attemptId)"
        var body: [UInt8] = []
        func field(_ name: String, _ value: String) {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        let fileName = input.offer.fileName.replacingOccurrences(of: "\"", with: "_")
        body += Array(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(fileName)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .utf8)
        body += input.bytes + Array("\r\n".utf8)
        field("subfolder", subfolder)
        field("type", "input")
        field("overwrite", "true")
        body += Array("--\(boundary)--\r\n".utf8)
        let (status, answer, _) = try await request(
            .POST, "/upload/image", body: body, contentType: "multipart/form-data; boundary=\(boundary)", timeout: .seconds(120))
        guard status == 200, let stored = try? JSONValue.parse(answer), let name = stored["name"]?.stringValue else {
            let fault: FaultOrigin = status == 413 || status == 400 ? .task : .agent
            throw ExecutionFailure("ComfyUI refused input \"\(input.offer.parameter)\" on /upload/image (\(status))", fault: fault)
        }
        let folder = stored["subfolder"]?.stringValue ?? ""
        return folder.isEmpty ? name : "\(folder)/\(name)"
    }

    /// Every output the prompt's history lists: files fetched with `/view` (the `temp` previews left out), text
    /// entries written as `.txt`.
    private func collectOutputs(promptId: String) async throws -> [ProducedOutput] {
        let (status, body, _) = try await request(.GET, "/history/\(promptId)", timeout: .seconds(30))
        guard status == 200, let history = try? JSONValue.parse(body), case .object(let outputs)? = history[promptId]?["outputs"] else {
            throw ExecutionFailure("ComfyUI's history has no entry for the finished prompt", fault: .agent)
        }
        var produced: [ProducedOutput] = []
        for nodeId in outputs.keys.sorted() {
            guard case .object(let kinds) = outputs[nodeId]! else { continue }
            for kind in kinds.keys.sorted() where kind != "animated" {
                guard case .array(let entries) = kinds[kind]! else { continue }
                for (index, entry) in entries.enumerated() {
                    if case .string(let text) = entry {
                        produced.append(
                            ProducedOutput(
                                nodeId: nodeId, kind: kind, index: index, fileName: "\(nodeId)_\(kind)_\(index).txt",
                                contentType: "text/plain; charset=utf-8",
                                bytes: Array(text.utf8)))
                        continue
                    }
                    guard let filename = entry["filename"]?.stringValue else { continue }
                    let type = entry["type"]?.stringValue ?? "output"
                    guard type != "temp" else { continue }
                    let subfolder = entry["subfolder"]?.stringValue ?? ""
                    let query = [("filename", filename), ("subfolder", subfolder), ("type", type)].map { "\($0)=\(Self.percentEncode($1))" }
                        .joined(separator: "&")
                    let (viewStatus, bytes, headers) = try await request(.GET, "/view?\(query)", timeout: .seconds(300), maximumSize: 8 << 30)
                    guard viewStatus == 200 else {
                        throw ExecutionFailure("ComfyUI could not serve output \(filename) from /view (\(viewStatus))", fault: .agent)
                    }
                    let contentType = entry["format"]?.stringValue.flatMap { $0.contains("/") ? $0 : nil } ?? headers ?? "application/octet-stream"
                    produced.append(
                        ProducedOutput(nodeId: nodeId, kind: kind, index: index, fileName: filename, contentType: contentType, bytes: bytes))
                }
            }
        }
        return produced
    }

    static func percentEncode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    // MARK: HTTP

    private func request(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json", timeout: TimeAmount,
        maximumSize: Int = 64 << 20
    ) async throws -> (Int, [UInt8], String?) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = Array(buffer: try await response.body.collect(upTo: maximumSize))
        return (Int(response.status.code), bytes, response.headers.first(name: "Content-Type"))
    }
}

/// A value behind a lock, shareable by reference with escaping closures.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}

/// Cancellation for one execution: a stop requested before the prompt is queued runs as soon as it is.
final class StopControl: Sendable {
    private struct State {
        var requested = false
        var started = false
        var action: (@Sendable () async -> Void)?
        var fired = false
    }

    private let state = Mutex(State())

    var stopRequested: Bool { state.withLock { $0.requested } }

    func requestStop() {
        let action = state.withLock { state -> (@Sendable () async -> Void)? in
            state.requested = true
            guard !state.fired, let action = state.action else { return nil }
            state.fired = true
            return action
        }
        if let action { Task { await action() } }
    }

    func install(_ action: @escaping @Sendable () async -> Void) {
        let fire = state.withLock { state -> Bool in
            state.action = action
            guard state.requested, !state.fired else { return false }
            state.fired = true
            return true
        }
        if fire { Task { await action() } }
    }

    func markStarted() { state.withLock { $0.started = true } }
}

/// Turns ComfyUI's node-level messages into one monotonic 0–1 progress, weighted equally across the graph's
/// nodes (cached nodes count as done), coalesced to at most ten reports a second.
final class ProgressTracker: Sendable {
    private struct State {
        var nodeCount: Int
        var done: Set<String> = []
        var running: [String: Double] = [:]
        var reported = -1.0
        var lastReport: ContinuousClock.Instant?
        var current: ExecutionProgress = ExecutionProgress(progress: 0)
    }

    private let state: Mutex<State>
    private let report: @Sendable (ExecutionProgress) -> Void
    static let interval: Duration = .milliseconds(100)

    init(nodeCount: Int, report: @escaping @Sendable (ExecutionProgress) -> Void) {
        self.state = Mutex(State(nodeCount: max(1, nodeCount)))
        self.report = report
    }

    func cached(_ nodes: [String]) { update { $0.done.formUnion(nodes) } }

    func executing(_ node: String) {
        update {
            $0.current.currentNode = node
            $0.current.stepCurrent = nil
            $0.current.stepTotal = nil
        }
    }

    func state(_ nodes: JSONValue?) {
        guard case .object(let all)? = nodes else { return }
        update { state in
            for (id, node) in all {
                if node["state"]?.stringValue == "finished" {
                    state.done.insert(id)
                    state.running[id] = nil
                } else if node["state"]?.stringValue == "running" {
                    let value = Self.double(node["value"]), max = Self.double(node["max"])
                    state.running[id] = max > 0 ? min(value / max, 1) : 0
                }
            }
        }
    }

    func step(node: String?, value: JSONValue?, max: JSONValue?) {
        let current = Self.double(value), total = Self.double(max)
        update { state in
            if let node { state.running[node] = total > 0 ? min(current / total, 1) : 0 }
            if total >= 1, total == total.rounded() {
                state.current.stepCurrent = Int(current.rounded(.down))
                state.current.stepTotal = Int(total)
            }
            if let node { state.current.currentNode = node }
        }
    }

    /// The last report, unthrottled, at 1.
    func finish() {
        let final = state.withLock { state -> ExecutionProgress? in
            guard state.reported < 1 else { return nil }
            state.reported = 1
            state.current.progress = 1
            return state.current
        }
        if let final { report(final) }
    }

    private func update(_ change: (inout State) -> Void) {
        let due = state.withLock { state -> ExecutionProgress? in
            change(&state)
            let partial = state.running.filter { !state.done.contains($0.key) }.values.reduce(0, +)
            let value = min(1, (Double(state.done.count) + partial) / Double(state.nodeCount))
            state.current.progress = max(state.current.progress, value)
            let now = ContinuousClock.now
            guard state.current.progress > state.reported || state.lastReport == nil else { return nil }
            if let last = state.lastReport, last.duration(to: now) < Self.interval { return nil }
            state.lastReport = now
            state.reported = state.current.progress
            return state.current
        }
        if let due { report(due) }
    }

    static func double(_ value: JSONValue?) -> Double {
        value?.numberValue.flatMap { Double($0.description) } ?? 0
    }
}
