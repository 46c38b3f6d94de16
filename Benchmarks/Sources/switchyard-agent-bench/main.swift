// Dispatch and end-to-end latency against a running `serve` (see Benchmarks/dispatch-latency.sh).
//
//   switchyard-agent-bench dispatch <base-url> <sk-key> <ak-key> <agents> <tasks>
//     connects <agents> simulated agents (wire protocol, capacity 1, they ack and complete at once), submits
//     <tasks> runs of the workflow `bench-trivial` one after another and reports submit → offer received.
//   switchyard-agent-bench e2e <base-url> <sk-key> <tasks>
//     with a real `switchyard agent` connected: submit → SSE `completed`, one task at a time.
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

func report(_ name: String, _ samples: [Double]) {
    let sorted = samples.sorted()
    func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] }
    print(
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

func dispatch(base: String, key: String, agentKey: String, agents: Int, tasks: Int) async throws {
    ready.withLock { $0 = 0 }
    let group = Task {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<agents {
                group.addTask {
                    try? await simulatedAgent(base: base, key: agentKey, id: String(format: "sim-%03d", index)) { ready.withLock { $0 += 1 } }
                }
            }
        }
    }
    while ready.withLock({ $0 }) < agents { try await Task.sleep(for: .milliseconds(10)) }
    try await Task.sleep(for: .milliseconds(500))
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
    report("dispatch, \(agents) agent\(agents == 1 ? "" : "s"): submit → offer received", latencies)
    report("   (for reference: submit → 202)", accepted)
    group.cancel()
}

// MARK: e2e

func endToEnd(base: String, key: String, tasks: Int) async throws {
    var samples: [Double] = []
    for index in 0..<(tasks + 10) {
        let start = ContinuousClock.now
        let (status, body) = try await post("\(base)/api/v1/r/workflows/slug/bench-trivial/run", key: key, body: #"{"parameters":{}}"#)
        guard status == 202, let taskId = body["task_id"]?.stringValue else { fatalError("run answered \(status)") }
        var request = HTTPClientRequest(url: "\(base)/api/v1/r/tasks/\(taskId)/events")
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        var text = ""
        for try await chunk in response.body {
            text += String(buffer: chunk)
            if text.contains("event: completed") || text.contains("event: failed") { break }
        }
        guard text.contains("event: completed") else { fatalError("task \(taskId) did not complete: \(text)") }
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

switch arguments.first {
case "dispatch" where arguments.count == 6:
    try await dispatch(base: arguments[1], key: arguments[2], agentKey: arguments[3], agents: Int(arguments[4])!, tasks: Int(arguments[5])!)
case "e2e" where arguments.count == 4:
    try await endToEnd(base: arguments[1], key: arguments[2], tasks: Int(arguments[3])!)
case "direct" where arguments.count == 3:
    try await direct(comfyUI: arguments[1], tasks: Int(arguments[2])!)
default:
    print("usage: switchyard-agent-bench dispatch <base> <sk> <ak> <agents> <tasks> | e2e <base> <sk> <tasks> | direct <comfyui> <tasks>")
    exit(2)
}
