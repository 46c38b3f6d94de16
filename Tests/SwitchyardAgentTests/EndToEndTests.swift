import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import SwitchyardAgent
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardServer
import SwitchyardTestSupport
import Synchronization
import Testing

/// `serve` + `switchyard agent` + a ComfyUI (the fake), driven through the public API as a caller would.
@Suite("End to end: serve, agent, ComfyUI")
struct EndToEndTests {
    static func importBody(slug: String, graph: String, parameters: String) -> String {
        """
        {"workflow_slug":"\(slug)","display_name":"\(slug)","tool_type":"comfyui","required_labels":["comfyui"],
         "task_timeout":120,"max_retries":1,"workflow_json":\(graph),"parameters":[\(parameters)]}
        """
    }

    /// Runs an agent (ComfyUI executor on the ComfyUI at `comfyUI`) for the duration of `body`, once it is listed as connected.
    static func withAgent(
        _ app: TestApp, _ client: any TestClientProtocol, comfyUI: String, id: String = "e2e-gpu", prefetch: Int = 2,
        configure: (inout AgentConfiguration) -> Void = { _ in }, _ body: () async throws -> Void
    ) async throws {
        var configuration = AgentConfiguration()
        configuration.prefetch = prefetch
        configuration.unhealthyProbeInterval = .milliseconds(100)
        configuration.server = "http://127.0.0.1:\(client.port!)"
        configuration.key = app.bootstrap.agentKey
        configuration.agentId = id
        configuration.labels = AgentConfiguration.advertisedLabels(configured: ["e2e"], tool: "comfyui")
        configure(&configuration)
        let logs = LogSignal()
        let logger = logs.logger(label: "e2e-agent")
        let executor = ComfyUIExecutor(baseURL: comfyUI, logger: logger)
        let runner = AgentRunner(configuration: configuration, executor: executor, logger: logger)
        let agent = Task { try await runner.run() }
        defer {
            agent.cancel()
            executor.close()
        }
        // The gateway registers an agent before it welcomes it, so once the agent says so, it is listed.
        try await logs.wait(for: "connected to the gateway")
        guard try await app.agents(client).contains(where: { $0.agentId == id }) else { throw TestSupportError("the agent is not listed") }
        try await body()
    }

    @Test("the quickstart flow: upload, run, follow the SSE stream, download the output byte-equal to ComfyUI's")
    func quickstart() async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                let parameters =
                    #"{"key":"photo","node_id":"10","field":"image","type":"file","accept":["image/*"]},"#
                    + #"{"key":"radius","node_id":"11","field":"blur_radius","type":"number","min":1,"max":31,"default":3}"#
                _ = try await app.importWorkflow(
                    client, session: session,
                    body: Self.importBody(slug: "blur", graph: try recordedGraphText("b_load_blur_save"), parameters: parameters))
                try await Self.withAgent(app, client, comfyUI: fake.baseURL) {
                    let photo = [UInt8](repeating: 7, count: 4096)
                    let fileKey = try await app.upload(client, token: app.bootstrap.integrationKey, fileName: "cat.png", bytes: photo)
                    let taskId = try await app.run(client, slug: "blur", body: #"{"parameters":{"photo":"\#(fileKey)","radius":5}}"#)
                    let stream = String(
                        buffer: try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: app.bootstrap.integrationKey)
                            .body)
                    let names = stream.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
                    #expect(names.first == "status" && names.last == "completed")
                    for status in ["pending", "queued", "running"] { #expect(stream.contains(#""status":"\#(status)""#)) }

                    let result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey)
                        .json()
                    let urls = try #require(result["download_urls"]?.stringDictionary)
                    // The SaveImage output and the PreviewImage preview, marked as such; the primary output is the saved one.
                    #expect(Set(urls.keys) == ["12.images.0", "13.images.0"])
                    let described = try #require(result["task_output"]?.objectValue)
                    let outputs = try #require(described["outputs"]?.objectValue)
                    #expect(outputs["13.images.0"]?["preview"]?.boolValue == true && outputs["12.images.0"]?["preview"]?.boolValue == false)
                    #expect(described["image_count"]?.intValue == 1)
                    let url = try #require(result["download_url"]?.stringValue)
                    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
                    let downloaded = Array(buffer: try await response.body.collect(upTo: 1 << 20))
                    #expect(downloaded == (await fake.file(type: "output", subfolder: "", filename: "scout_b_00001_.png")))
                    // ComfyUI ran the injected graph with the uploaded photo.
                    let inputs = await fake.requests().filter { $0.hasPrefix("POST /prompt") }
                    #expect(inputs.count == 1)
                    let task = try await app.task(client, taskId)
                    #expect(task.agentId == "e2e-gpu" && task.gpuType == "NVIDIA Fake GPU")
                }
            }
        }
    }

    @Test("cancelling a running task interrupts ComfyUI; the result records when the work stopped")
    func cancelRunning() async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(
                    client, session: session, body: Self.importBody(slug: "sleep", graph: Self.sleepGraph, parameters: Self.secondsParameter))
                try await Self.withAgent(app, client, comfyUI: fake.baseURL) {
                    let taskId = try await app.run(client, slug: "sleep")
                    // Follow the task's events: cancel once ComfyUI reports progress (it is running), then read on to the end.
                    var cancelled = false
                    _ = try await app.followEvents(port: client.port!, taskId) { text in
                        guard !cancelled, text.contains("event: progress") else { return }
                        cancelled = true
                        let cancel = try await app.call(
                            client, .post, "/api/v1/r/tasks/\(taskId.lowercased)/cancel", token: app.bootstrap.integrationKey)
                        #expect(cancel.status == .ok)
                    }
                    #expect(cancelled)
                    // `stopped_at` is recorded once ComfyUI confirmed the interrupt.
                    let result = try await app.follow(
                        taskId,
                        read: {
                            try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey)
                                .json()
                        }, until: { $0["stopped_at"]?.stringValue != nil })
                    #expect(result["task_status"]?.stringValue == "cancelled")
                    #expect((result["gpu_seconds"]?.doubleValue ?? 0) > 0)
                    #expect(await fake.requests().contains { $0.hasPrefix("POST /interrupt") })
                }
            }
        }
    }

    static let sleepGraph =
        #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
        + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 30}},"#
        + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "long"}}}"#
    static let colorGraph =
        #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
        + #" "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/color"}}}"#
    static let colorParameter = #"{"key":"color","node_id":"1","field":"color","type":"number","min":0,"max":16777215,"default":0}"#
    static let secondsParameter = #"{"key":"seconds","node_id":"2","field":"seconds","type":"number","min":0.1,"max":60,"default":30}"#

    @Test("progress reaches a live stream from memory; the log keeps it coalesced (once per interval), not every tick")
    func progressCoalesced() async throws {
        try await FakeComfyUI.with(.init(progressTick: .milliseconds(10))) { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(
                    client, session: session, body: Self.importBody(slug: "sleep", graph: Self.sleepGraph, parameters: Self.secondsParameter))
                try await Self.withAgent(app, client, comfyUI: fake.baseURL) {
                    // Long enough for several ticks to reach the stream even on a loaded machine (a stream shows one per 50 ms).
                    let taskId = try await app.run(client, slug: "sleep", body: #"{"parameters":{"seconds":2}}"#)
                    var logged = false
                    let live = try await app.followEvents(port: client.port!, taskId) { text in
                        // Once ticks flow, a second passes on the dispatcher's clock: the next tick of the dispatcher logs one.
                        guard !logged, text.components(separatedBy: "event: progress\n").count > 3 else { return }
                        logged = true
                        app.clock.advance(by: 1.5)
                        await app.built.dispatcher.tick()
                    }
                    #expect(live.contains("event: completed"))
                    let liveTicks = live.components(separatedBy: "event: progress\n").count - 1
                    // Replayed after the end: only what the log kept.
                    let replay = try await app.followEvents(port: client.port!, taskId)
                    let loggedTicks = replay.components(separatedBy: "event: progress\n").count - 1
                    #expect(liveTicks >= 3, "ten ticks a second reach a live stream: \(liveTicks)")
                    #expect(loggedTicks == 1, "the log kept one tick for the second that passed: \(replay)")
                }
            }
        }
    }

    @Test("an agent whose ComfyUI is down is listed unhealthy and offered nothing; the task waits and runs once ComfyUI is back")
    func unhealthyAgent() async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(
                    client, session: session, body: Self.importBody(slug: "color", graph: Self.colorGraph, parameters: Self.colorParameter))
                await fake.setAvailable(false)
                try await Self.withAgent(app, client, comfyUI: fake.baseURL) {
                    let agents = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
                    let listed = (agents["agent_list"]?.arrayValue)?.first { $0["agent_id"]?.stringValue == "e2e-gpu" }
                    #expect(listed?["agent_status"]?.stringValue == "unhealthy")
                    let taskId = try await app.run(client, slug: "color", body: #"{"parameters":{"color":7}}"#)
                    var revived = false
                    let stream = try await app.followEvents(port: client.port!, taskId) { text in
                        guard !revived, text.contains(#""status":"waiting""#) else { return }
                        revived = true
                        await fake.setAvailable(true)
                    }
                    #expect(revived && stream.contains("event: completed"))
                    let task = try await app.task(client, taskId)
                    #expect(task.status == .completed && task.retryCount == 0)
                }
            }
        }
    }

    @Test("a burst of tasks is pipelined through ComfyUI's queue: every task completes, none runs twice, ComfyUI's queue is used")
    func pipelinedBacklog() async throws {
        try await FakeComfyUI.with(.init(nodeDuration: .milliseconds(5))) { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(
                    client, session: session, body: Self.importBody(slug: "color", graph: Self.colorGraph, parameters: Self.colorParameter))
                try await Self.withAgent(app, client, comfyUI: fake.baseURL, prefetch: 2) {
                    var ids: [UUID] = []
                    for color in 0..<12 { ids.append(try await app.run(client, slug: "color", body: #"{"parameters":{"color":\#(color)}}"#)) }
                    for id in ids {
                        let stream = try await app.followEvents(port: client.port!, id)
                        #expect(stream.contains("event: completed"))
                        #expect(await fake.promptsRun(extra: "switchyard_task_id", id.lowercased) == 1)
                    }
                    #expect(await fake.maximumPending() >= 1, "prefetched prompts waited in ComfyUI's own queue")
                    #expect(await fake.connections() == 1, "one WebSocket for every prompt")
                }
            }
        }
    }

    /// An engine that says what an earlier run left in it, and records what the agent asks of it.
    final class RecoveringEngine: ToolExecutor {
        let left: [RecoveredAttempt]
        let asked = Mutex<[String]>([])
        var tool: String { "comfyui" }

        /// Each abandoned attempt's id, as it happens.
        let abandoned: AsyncStream<String>
        private let abandoning: AsyncStream<String>.Continuation

        init(left: [RecoveredAttempt]) {
            self.left = left
            (abandoned, abandoning) = AsyncStream.makeStream(of: String.self)
        }

        func health() async -> ToolHealth { ToolHealth(healthy: true) }
        func execute(_ job: ExecutionJob, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
            asked.withLock { $0.append("execute \(job.attemptId)") }
            return []
        }
        func recoverable(window: Duration) async -> [RecoveredAttempt] { left }
        func resume(_ attempt: RecoveredAttempt, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
            asked.withLock { $0.append("resume \(attempt.attemptId)") }
            return [
                ProducedOutput(nodeId: "9", kind: "images", index: 0, fileName: "recovered.png", contentType: "image/png", bytes: [1, 2, 3])
            ]
        }
        func abandon(_ attempt: RecoveredAttempt) async {
            asked.withLock { $0.append("abandon \(attempt.attemptId)") }
            abandoning.yield(attempt.attemptId)
        }
    }

    @Test(
        "an agent restarted after a crash takes back what its engine still holds: the gateway kept it, so it completes with no retry used; what the gateway no longer gives it is stopped in the engine"
    )
    func restartAfterCrash() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.heartbeatInterval = 300 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let taskId = try await app.run(client)
            let held = Mutex("")
            // The agent's first process: it takes the task, then dies (its socket goes; ComfyUI keeps the prompt).
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu-r")) { agent in
                let offer = try await agent.offer()
                held.withLock { $0 = offer.attemptId }
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, taskId) { $0.status == .running }
            }
            await app.built.dispatcher.sessionEnded(teamId: app.bootstrap.teamId, agentId: "gpu-r")
            let attemptId = held.withLock { $0 }
            let stranger = UUID().uuidString.lowercased()
            let engine = RecoveringEngine(left: [
                RecoveredAttempt(attemptId: attemptId, taskId: taskId.lowercased, keepPreviews: true, active: true),
                RecoveredAttempt(attemptId: stranger, taskId: UUID().uuidString.lowercased(), keepPreviews: true, active: false),
            ])
            var configuration = AgentConfiguration()
            configuration.server = "http://127.0.0.1:\(client.port!)"
            configuration.key = app.bootstrap.agentKey
            configuration.agentId = "gpu-r"
            configuration.labels = ["gpu", "comfyui"]
            let runner = AgentRunner(configuration: configuration, executor: engine, logger: Logger(label: "restarted-agent"))
            let agent = Task { try await runner.run() }
            defer { agent.cancel() }
            let done = try await app.waitForTask(client, taskId) { $0.status == .completed }
            #expect(done.retryCount == 0)
            #expect(done.agentId == "gpu-r")
            let result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey).json()
            #expect((result["task_output"]?.objectValue)?["image_count"]?.intValue == 1)
            #expect(await engine.abandoned.first { _ in true } == stranger)
            #expect(Set(engine.asked.withLock { $0 }) == ["resume \(attemptId)", "abandon \(stranger)"])
        }
    }

    @Test("switchyard-agent.yaml: the documented keys, agent_labels as a block or flow list, errors named")
    func configuration() throws {
        var configuration = AgentConfiguration()
        try configuration.apply(
            yaml: """
                # a GPU box
                server: https://switchyard.example.com
                key: "ak-123"
                agent_id: box-1
                agent_labels:
                  - team-a
                  - gpu-h100
                region: eu-west
                capacity: 2
                prefetch: 3
                community_opt_in: yes
                """)
        #expect(configuration.server == "https://switchyard.example.com" && configuration.key == "ak-123" && configuration.agentId == "box-1")
        #expect(configuration.labels == ["team-a", "gpu-h100"] && configuration.region == "eu-west" && configuration.capacity == 2)
        #expect(configuration.prefetch == 3)
        #expect(configuration.communityOptIn)
        #expect(configuration.gatewayURL == "wss://switchyard.example.com/api/v1/agent/connect")
        #expect(AgentConfiguration.advertisedLabels(configured: configuration.labels, tool: "comfyui") == ["gpu", "comfyui", "team-a", "gpu-h100"])
        try configuration.apply(yaml: "server: https://a.example.com, http://b.example.com:8080/")
        #expect(configuration.gatewayURLs == ["wss://a.example.com/api/v1/agent/connect", "ws://b.example.com:8080/api/v1/agent/connect"])
        try configuration.apply(yaml: "agent_labels: [a, 'b']")
        #expect(configuration.labels == ["a", "b"])
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "capacity: lots") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "prefetch: 65") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "colour: blue") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "agent_labels: [a, b") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "- server\n- key") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "region: [eu, us]") }
    }
}
