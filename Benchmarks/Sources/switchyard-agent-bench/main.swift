// Dispatch and end-to-end latency against a running `serve` (see Benchmarks/dispatch-latency.sh).
//
//   switchyard-agent-bench dispatch <base-url> <sk-key> <ak-key> <agents> <tasks>
//     connects <agents> simulated agents (wire protocol, capacity 1, they ack and complete at once), submits
//     <tasks> runs of the workflow `bench-trivial` one after another and reports submit → offer received.
//   switchyard-agent-bench e2e <base-url> <sk-key> <tasks>
//     with a real `switchyard agent` connected: submit → SSE `completed`, one task at a time.
//   switchyard-agent-bench ratio-direct <comfyui-url> <latency-tasks> <backlog> <run-id>
//   switchyard-agent-bench ratio-switchyard <base-url> <sk-key> <latency-tasks> <backlog> <workflow-slug>
//   switchyard-agent-bench prompts-per-task <comfyui-url>
//     the engine-ratio benchmark (Benchmarks/engine-ratio.sh): the same prompts driven directly and through
//     Switchyard, one at a time and as a backlog.
//   switchyard-agent-bench direct <comfyui-url> <tasks>
//     the same trivial graph straight on ComfyUI, as the executor drives it: WS open, POST /prompt, wait for
//     executing{node:null}, GET /history, GET /view.
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardWire
import Synchronization
import WSClient

let arguments = Array(CommandLine.arguments.dropFirst())
let logger = Logger(label: "bench")
let trivialGraph =
    #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},"#
    + #" "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},"#
    + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench/trivial"}}}"#

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Prints a line at once, also into a file or pipe.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

func report(_ name: String, _ samples: [Double]) {
    let sorted = samples.sorted()
    func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] }
    say(
        String(
            format: "%@: n=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms", name, sorted.count, percentile(0.5), percentile(0.9),
            percentile(0.99),
            sorted.last ?? 0))
}

func post(_ url: String, key: String, body: String) async throws -> (Int, JSONValue) {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Authorization", value: "Bearer \(key)")
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = Array(buffer: try await response.body.collect(upTo: 1 << 24))
    return (Int(response.status.code), (try? JSONValue.parse(bytes)) ?? .null)
}

func get(_ url: String, key: String? = nil) async throws -> (Int, [UInt8]) {
    var request = HTTPClientRequest(url: url)
    if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    return (Int(response.status.code), Array(buffer: try await response.body.collect(upTo: 1 << 26)))
}

// MARK: dispatch

/// When each task's offer reached a simulated agent (and who waits for it), and how many agents are connected.
let offers = Mutex<[String: ContinuousClock.Instant]>([:])
let offerWaiters = Mutex<[String: CheckedContinuation<ContinuousClock.Instant, Never>]>([:])

/// The instant the offer of `taskId` arrived, waiting for it without spinning (the server shares the cores).
func offerTime(_ taskId: String) async -> ContinuousClock.Instant {
    await withCheckedContinuation { continuation in
        let arrived = offers.withLock { offers -> ContinuousClock.Instant? in
            if let time = offers[taskId] { return time }
            offerWaiters.withLock { $0[taskId] = continuation }
            return nil
        }
        if let arrived { continuation.resume(returning: arrived) }
    }
}
let ready = Mutex(0)

func simulatedAgent(base: String, key: String, id: String, connected: @escaping @Sendable () -> Void) async throws {
    var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
    configuration.additionalHeaders[.authorization] = "Bearer \(key)"
    let url = base.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/agent/connect"
    try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
        let hello = AgentMessage.Hello(
            agentId: id, agentVersion: "bench", tool: "comfyui", toolVersion: nil, labels: ["gpu", "comfyui"], region: nil, communityOptIn: false,
            capacity: 1, systemStats: SystemStats())
        try await outbound.writeTextMessage(try WireCoding.encode(AgentMessage.hello(hello)))
        // Heartbeats keep an agent that waits a long time (while a backlog is submitted) from being dropped as silent.
        let heartbeats = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(10))  // the server's default heartbeat interval
                try await outbound.writeTextMessage(try WireCoding.encode(AgentMessage.heartbeat(.init(status: .idle, running: []))))
            }
        }
        defer { heartbeats.cancel() }
        for try await message in inbound.messages(maxSize: 1 << 24) {
            guard case .text(let text) = message else { continue }
            switch try WireCoding.decodeGatewayMessage(text) {
            case .welcome: connected()
            case .offer(let offer):
                let now = ContinuousClock.now
                let waiter = offers.withLock { offers in
                    offers[offer.taskId] = now
                    return offerWaiters.withLock { $0.removeValue(forKey: offer.taskId) }
                }
                waiter?.resume(returning: now)
                try await outbound.writeTextMessage(try WireCoding.encode(AgentMessage.ack(.init(attemptId: offer.attemptId))))
                try await outbound.writeTextMessage(try WireCoding.encode(AgentMessage.complete(.init(attemptId: offer.attemptId, outputs: []))))
            default: continue
            }
        }
    }
}

/// Submits `count` runs of `workflow` (no agent can take them: they wait), 64 at a time.
func submitBacklog(base: String, key: String, workflow: String, count: Int) async throws {
    guard count > 0 else { return }
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<64 {
            group.addTask {
                for _ in stride(from: worker, to: count, by: 64) {
                    let (status, body) = try await post("\(base)/api/v1/r/workflows/slug/\(workflow)/run", key: key, body: #"{"parameters":{}}"#)
                    guard status == 202 else { fatalError("backlog run answered \(status): \(body.jsonString)") }
                }
            }
        }
        try await group.waitForAll()
    }
    let seconds = milliseconds(start.duration(to: .now)) / 1000
    say(
        String(
            format: "backlog: %d tasks of %@ submitted in %.1f s (%.0f/s); they wait, no agent has their labels", count, workflow, seconds,
            Double(count) / seconds))
}

/// Submits on `base`; the simulated agents connect to `agentBase` (another replica on the same database, or `base`).
/// With `backlog`, that many tasks no agent can take are submitted first, while the agents are connected (so the
/// dispatcher holds them), to show that a long queue does not slow the dispatch of the tasks that can go.
func dispatch(
    base: String, key: String, agentKey: String, agents: Int, tasks: Int, agentBase: String? = nil, backlog: Int = 0
) async throws {
    ready.withLock { $0 = 0 }
    let connecting = ContinuousClock.now
    let group = Task {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<agents {
                group.addTask {
                    try? await simulatedAgent(base: agentBase ?? base, key: agentKey, id: String(format: "sim-%03d", index)) {
                        ready.withLock { $0 += 1 }
                    }
                }
            }
        }
    }
    while ready.withLock({ $0 }) < agents { try await Task.sleep(for: .milliseconds(10)) }
    if agents > 1 {
        say(String(format: "%d agents connected at once, all welcomed after %.2f s", agents, milliseconds(connecting.duration(to: .now)) / 1000))
    }
    try await Task.sleep(for: .milliseconds(500))
    try await submitBacklog(base: base, key: key, workflow: "bench-backlog", count: backlog)
    var latencies: [Double] = []
    var accepted: [Double] = []
    for index in 0..<(tasks + 50) {
        let start = ContinuousClock.now
        let (status, body) = try await post("\(base)/api/v1/r/workflows/slug/bench-trivial/run", key: key, body: #"{"parameters":{}}"#)
        let answered = ContinuousClock.now
        guard status == 202, let taskId = body["task_id"]?.stringValue else { fatalError("run answered \(status): \(body.jsonString)") }
        let offered = await offerTime(taskId)
        // Let the agent's ack and complete land before the next submission, so every task meets an idle agent.
        // (Longer pauses make every figure worse on this VM: threads parked while idle wake up slowly.)
        try await Task.sleep(for: .milliseconds(2))
        if index >= 50 {
            latencies.append(milliseconds(start.duration(to: offered)))
            accepted.append(milliseconds(start.duration(to: answered)))
        }
    }
    let across = agentBase.map { $0 == base ? "" : ", agents on \($0)" } ?? ""
    let waiting = backlog > 0 ? ", \(backlog) tasks waiting" : ""
    report("dispatch, \(agents) agent\(agents == 1 ? "" : "s")\(across)\(waiting): submit → offer received", latencies)
    report("   (for reference: submit → 202)", accepted)
    if let pid = ProcessInfo.processInfo.environment["SWITCHYARD_BENCH_SERVE_PID"],
        let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    {
        // While every agent is still connected (what the server holds for them), not after they left.
        let kib = { (field: String) in
            status.split(separator: "\n").first { $0.hasPrefix(field) }.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) }
                ?? 0
        }
        say("serve RSS with \(agents) agents connected: \(kib("VmRSS:") / 1024) MiB (peak so far \(kib("VmHWM:") / 1024) MiB)")
    }
    group.cancel()
}

// MARK: e2e

func endToEnd(base: String, key: String, tasks: Int) async throws {
    var samples: [Double] = []
    for index in 0..<(tasks + 10) {
        let start = ContinuousClock.now
        let (status, body) = try await post("\(base)/api/v1/r/workflows/slug/bench-trivial/run", key: key, body: #"{"parameters":{}}"#)
        guard status == 202, let taskId = body["task_id"]?.stringValue else { fatalError("run answered \(status)") }
        let end = try await terminalEvent(base: base, key: key, taskId: taskId)
        guard end == "completed" else { fatalError("task \(taskId) did not complete: \(end)") }
        if index >= 10 { samples.append(milliseconds(start.duration(to: .now))) }
    }
    report("end to end (submit → SSE completed, trivial graph, real agent + ComfyUI)", samples)
}

func direct(comfyUI: String, tasks: Int) async throws {
    var samples: [Double] = []
    let ws = comfyUI.replacingOccurrences(of: "http://", with: "ws://")
    for index in 0..<(tasks + 10) {
        let client = UUID().uuidString.lowercased()
        let start = ContinuousClock.now
        try await WebSocketClient.connect(url: "\(ws)/ws?clientId=\(client)", logger: logger) { inbound, outbound, _ in
            let graph = trivialGraph.replacingOccurrences(of: "\"color\": 0", with: "\"color\": \(index)")
            _ = try await post("\(comfyUI)/prompt", key: "", body: #"{"prompt": \#(graph), "client_id": "\#(client)", "prompt_id": "\#(client)"}"#)
            for try await message in inbound.messages(maxSize: 1 << 24) {
                guard case .text(let text) = message, let event = try? JSONValue.parse(text) else { continue }
                if event["type"] == "executing", event["data"]?["node"] == .null { break }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
        let (_, history) = try await get("\(comfyUI)/history/\(client)")
        let entry = try JSONValue.parse(history)[client]?["outputs"]?["3"]?["images"]
        guard case .array(let images)? = entry, let name = images.first?["filename"]?.stringValue else { fatalError("no output") }
        _ = try await get("\(comfyUI)/view?filename=\(name)&subfolder=bench&type=output")
        if index >= 10 { samples.append(milliseconds(start.duration(to: .now))) }
    }
    report("direct on ComfyUI (WS, POST /prompt, wait, history, view)", samples)
}

// MARK: engine ratio (Benchmarks/engine-ratio.sh)

/// The trivial graph with a distinct colour per prompt, so the engine's cache never answers instead of running it.
func ratioGraph(color: Int, prefix: String) -> String {
    #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": \#(color)}},"#
        + #" "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},"#
        + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "\#(prefix)"}}}"#
}

/// A random colour base per run: identical prompts of an earlier run would be served from ComfyUI's cache.
let colorBase = Int.random(in: 0..<8_000_000)

/// ComfyUI driven directly over one long-lived WebSocket, the way a careful client does it.
actor DirectClient {
    let base: String
    let clientId = "bench-" + UUID().uuidString.lowercased()
    private var waiters: [String: CheckedContinuation<Bool, Never>] = [:]
    private var done: [String: Bool] = [:]

    init(base: String) { self.base = base }

    func finished(_ promptId: String, succeeded: Bool) {
        if let waiter = waiters.removeValue(forKey: promptId) { waiter.resume(returning: succeeded) } else { done[promptId] = succeeded }
    }

    /// Waits for `executing {node: null}` of `promptId`; true when it reported success first.
    func wait(_ promptId: String) async -> Bool {
        if let result = done.removeValue(forKey: promptId) { return result }
        return await withCheckedContinuation { waiters[promptId] = $0 }
    }

    nonisolated func listen(ready: @escaping @Sendable () -> Void) async throws {
        let ws = base.replacingOccurrences(of: "http://", with: "ws://")
        try await WebSocketClient.connect(url: "\(ws)/ws?clientId=\(clientId)", configuration: .init(maxFrameSize: 1 << 24), logger: logger) {
            inbound, _, _ in
            var succeeded: Set<String> = []
            ready()
            for try await message in inbound.messages(maxSize: 1 << 24) {
                guard case .text(let text) = message, let event = try? JSONValue.parse(text), let id = event["data"]?["prompt_id"]?.stringValue else {
                    continue
                }
                if event["type"] == "execution_success" { succeeded.insert(id) }
                if event["type"] == "executing", event["data"]?["node"] == .null { await self.finished(id, succeeded: succeeded.remove(id) != nil) }
            }
        }
    }
}

func ratioDirect(comfyUI: String, latencyTasks: Int, backlog: Int, run: String) async throws {
    let client = DirectClient(base: comfyUI)
    let (readyStream, readyContinuation) = AsyncStream.makeStream(of: Void.self)
    let listener = Task { try await client.listen { readyContinuation.yield() } }
    defer { listener.cancel() }
    var readyIterator = readyStream.makeAsyncIterator()
    _ = await readyIterator.next()
    func submit(_ index: Int, prefix: String) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let (status, _) = try await post(
            "\(comfyUI)/prompt", key: "",
            body: #"{"prompt": \#(ratioGraph(color: colorBase + index, prefix: prefix)), "client_id": "\#(client.clientId)", "prompt_id": "\#(id)"}"#)
        guard status == 200 else { fatalError("POST /prompt answered \(status)") }
        return id
    }
    // Latency: one prompt at a time, then its history and its file, as the agent needs them.
    var samples: [Double] = []
    var failures = 0
    for index in 0..<(latencyTasks + 10) {
        let start = ContinuousClock.now
        let id = try await submit(index, prefix: "bench/\(run)-direct-latency/trivial")
        _ = await client.wait(id)
        let (_, history) = try await get("\(comfyUI)/history/\(id)")
        guard let name = (try? JSONValue.parse(history))?[id]?["outputs"]?["3"]?["images"]?.arrayValue?.first?["filename"]?.stringValue else {
            failures += 1
            continue
        }
        _ = try await get("\(comfyUI)/view?filename=\(name)&subfolder=bench%2F\(run)-direct-latency&type=output")
        if index >= 10 { samples.append(milliseconds(start.duration(to: .now))) }
    }
    report("direct: one prompt at a time (POST, wait for executing null, history, view)", samples)
    // Backlog: every prompt posted at once; the rate is what ComfyUI itself reaches.
    let start = ContinuousClock.now
    var ids: [String] = []
    for index in 0..<backlog { ids.append(try await submit(latencyTasks + 10 + index, prefix: "bench/\(run)-direct-backlog/trivial")) }
    var succeeded = 0
    for id in ids where await client.wait(id) { succeeded += 1 }
    let seconds = milliseconds(start.duration(to: .now)) / 1000
    say(
        String(
            format: "direct: backlog of %d drained in %.2f s = %.1f prompts/s; %d succeeded, %d failed (latency run: %d failed)", backlog, seconds,
            Double(backlog) / seconds, succeeded, backlog - succeeded, failures))
}

/// Waits for a task's terminal SSE event; returns its name.
func terminalEvent(base: String, key: String, taskId: String) async throws -> String {
    var request = HTTPClientRequest(url: "\(base)/api/v1/r/tasks/\(taskId)/events")
    request.headers.add(name: "Authorization", value: "Bearer \(key)")
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
    var text = ""
    for try await chunk in response.body {
        text += String(buffer: chunk)
        for name in ["completed", "failed", "cancelled"] where text.contains("event: \(name)") { return name }
    }
    return "stream ended: \(text.suffix(300))"
}

func ratioSwitchyard(base: String, key: String, latencyTasks: Int, backlog: Int, workflow: String) async throws {
    func submit(_ index: Int) async throws -> String {
        let (status, body) = try await post(
            "\(base)/api/v1/r/workflows/slug/\(workflow)/run", key: key, body: #"{"parameters":{"color":\#(colorBase + 5_000_000 + index)}}"#)
        guard status == 202, let taskId = body["task_id"]?.stringValue else { fatalError("run answered \(status): \(body.jsonString)") }
        return taskId
    }
    var samples: [Double] = []
    var outcomes: [String: Int] = [:]
    for index in 0..<(latencyTasks + 10) {
        let start = ContinuousClock.now
        let taskId = try await submit(index)
        let end = try await terminalEvent(base: base, key: key, taskId: taskId)
        outcomes[end, default: 0] += 1
        if index >= 10, end == "completed" { samples.append(milliseconds(start.duration(to: .now))) }
    }
    report("switchyard: one task at a time (submit → SSE completed)", samples)
    let latencyOutcomes = outcomes
    outcomes = [:]
    let start = ContinuousClock.now
    // Submitted from 8 clients at once, as a burst of callers would.
    let ids = try await withThrowingTaskGroup(of: [String].self) { group in
        for lane in 0..<8 {
            group.addTask {
                var ids: [String] = []
                for index in stride(from: lane, to: backlog, by: 8) { ids.append(try await submit(latencyTasks + 10 + index)) }
                return ids
            }
        }
        var all: [String] = []
        while let ids = try await group.next() { all += ids }
        return all
    }
    let submitted = milliseconds(start.duration(to: .now)) / 1000
    try await withThrowingTaskGroup(of: String.self) { group in
        var pending = ids[...]
        for _ in 0..<16 {
            guard let id = pending.popFirst() else { break }
            group.addTask { try await terminalEvent(base: base, key: key, taskId: id) }
        }
        while let end = try await group.next() {
            outcomes[end, default: 0] += 1
            if let id = pending.popFirst() { group.addTask { try await terminalEvent(base: base, key: key, taskId: id) } }
        }
    }
    let seconds = milliseconds(start.duration(to: .now)) / 1000
    let summary = outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    say(
        String(
            format: "switchyard: backlog of %d drained in %.2f s = %.1f tasks/s (all submitted after %.2f s); %@ (latency run: %@)", backlog,
            seconds, Double(backlog) / seconds, submitted, summary, latencyOutcomes.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
}

/// How many prompts ComfyUI ran per task of this run (from its history's `extra_data.switchyard_task_id`).
func promptsPerTask(comfyUI: String) async throws {
    let (_, body) = try await get("\(comfyUI)/history?max_items=10000")
    guard let entries = (try? JSONValue.parse(body))?.objectValue else { fatalError("no history") }
    var counts: [String: Int] = [:]
    for entry in entries.values {
        if let task = entry["prompt"]?.arrayValue?.dropFirst(3).first?["switchyard_task_id"]?.stringValue { counts[task, default: 0] += 1 }
    }
    let twice = counts.filter { $0.value > 1 }.keys.sorted()
    say(
        "ComfyUI history: \(counts.count) tasks ran there, \(twice.count) of them more than once\(twice.isEmpty ? "" : ": " + twice.joined(separator: ", "))"
    )
}

switch arguments.first {
case "dispatch" where arguments.count == 6 || arguments.count == 7:
    try await dispatch(
        base: arguments[1], key: arguments[2], agentKey: arguments[3], agents: Int(arguments[4])!, tasks: Int(arguments[5])!,
        agentBase: arguments.count == 7 ? arguments[6] : nil)
case "backlog" where arguments.count == 6:
    try await dispatch(
        base: arguments[1], key: arguments[2], agentKey: arguments[3], agents: 1, tasks: Int(arguments[5])!, backlog: Int(arguments[4])!)
case "e2e" where arguments.count == 4:
    try await endToEnd(base: arguments[1], key: arguments[2], tasks: Int(arguments[3])!)
case "ratio-direct" where arguments.count == 5:
    try await ratioDirect(comfyUI: arguments[1], latencyTasks: Int(arguments[2])!, backlog: Int(arguments[3])!, run: arguments[4])
case "ratio-switchyard" where arguments.count == 6:
    try await ratioSwitchyard(
        base: arguments[1], key: arguments[2], latencyTasks: Int(arguments[3])!, backlog: Int(arguments[4])!, workflow: arguments[5])
case "prompts-per-task" where arguments.count == 2:
    try await promptsPerTask(comfyUI: arguments[1])
case "direct" where arguments.count == 3:
    try await direct(comfyUI: arguments[1], tasks: Int(arguments[2])!)
default:
    print(
        "usage: switchyard-agent-bench dispatch <base> <sk> <ak> <agents> <tasks> [<agent base>] | backlog <base> <sk> <ak> <waiting> <tasks> | e2e <base> <sk> <tasks> | direct <comfyui> <tasks>"
            + " | ratio-direct <comfyui> <latency-tasks> <backlog> <run> | ratio-switchyard <base> <sk> <latency-tasks> <backlog> <workflow>"
            + " | prompts-per-task <comfyui>")
    exit(2)
}
