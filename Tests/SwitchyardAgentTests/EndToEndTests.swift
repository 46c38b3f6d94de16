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
import Testing

/// `serve` + `switchyard agent` + a ComfyUI (the fake), driven through the public API as a caller would.
@Suite("End to end: serve, agent, ComfyUI")
struct EndToEndTests {
    static func importBody(slug: String, graph: String, parameters: String) -> String {
        """
        {"workflow_slug":"\(slug)","display_name":"\(slug)","tool_type":"comfyui","required_labels":["gpu","comfyui"],
         "task_timeout":120,"max_retries":1,"workflow_json":\(graph),"parameters":[\(parameters)]}
        """
    }

    /// Runs an agent (ComfyUI executor on `fake`) for the duration of `body`, once it is listed as connected.
    static func withAgent(
        _ app: TestApp, _ client: any TestClientProtocol, fake: FakeComfyUI, id: String = "e2e-gpu", _ body: () async throws -> Void
    ) async throws {
        var configuration = AgentConfiguration()
        configuration.server = "http://127.0.0.1:\(client.port!)"
        configuration.key = app.bootstrap.agentKey
        configuration.agentId = id
        configuration.labels = AgentConfiguration.advertisedLabels(configured: ["e2e"], tool: "comfyui")
        let logger = Logger(label: "e2e-agent")
        let runner = AgentRunner(configuration: configuration, executor: ComfyUIExecutor(baseURL: fake.baseURL, logger: logger), logger: logger)
        let agent = Task { try await runner.run() }
        defer { agent.cancel() }
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let agents = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
            if (agents["agent_list"] as? [[String: Any]])?.contains(where: { $0["agent_id"] as? String == id }) == true { break }
            guard ContinuousClock.now < deadline else { throw TestSupportError("the agent did not connect") }
            try await Task.sleep(for: .milliseconds(20))
        }
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
                try await Self.withAgent(app, client, fake: fake) {
                    let photo = [UInt8](repeating: 7, count: 4096)
                    let fileKey = try await app.upload(client, token: app.bootstrap.integrationKey, fileName: "cat.png", bytes: photo)
                    let taskId = try await app.run(client, slug: "blur", body: #"{"parameters":{"photo":"\#(fileKey)","radius":5}}"#)
                    let stream = String(
                        buffer: try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: app.bootstrap.integrationKey)
                            .body)
                    let names = stream.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
                    #expect(names.first == "status" && names.last == "completed")
                    #expect(names.contains("progress"))
                    for status in ["pending", "queued", "running"] { #expect(stream.contains(#""status":"\#(status)""#)) }

                    let result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey)
                        .json()
                    let urls = try #require(result["download_urls"] as? [String: String])
                    #expect(Array(urls.keys) == ["12.images.0"])
                    let url = try #require(result["download_url"] as? String)
                    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
                    let downloaded = Array(buffer: try await response.body.collect(upTo: 1 << 20))
                    #expect(downloaded == (await fake.file(type: "output", subfolder: "", filename: "scout_b_00001_.png")))
                    // ComfyUI ran the injected graph with the uploaded photo.
                    let inputs = await fake.requests().filter { $0.hasPrefix("POST /prompt") }
                    #expect(inputs.count == 1)
                    let task = try await app.taskJSON(client, taskId)
                    #expect(task["agent_id"] as? String == "e2e-gpu" && task["gpu_type"] as? String == "NVIDIA Fake GPU")
                }
            }
        }
    }

    @Test("cancelling a running task interrupts ComfyUI; the result records when the work stopped")
    func cancelRunning() async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                let graph =
                    #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
                    + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 30}},"#
                    + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "long"}}}"#
                let parameters = #"{"key":"seconds","node_id":"2","field":"seconds","type":"number","min":1,"max":60,"default":30}"#
                _ = try await app.importWorkflow(client, session: session, body: Self.importBody(slug: "sleep", graph: graph, parameters: parameters))
                try await Self.withAgent(app, client, fake: fake) {
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
                    let deadline = ContinuousClock.now + .seconds(10)
                    var result: [String: Any] = [:]
                    repeat {
                        try await Task.sleep(for: .milliseconds(20))
                        result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey)
                            .json()
                    } while result["stopped_at"] is NSNull && ContinuousClock.now < deadline
                    #expect(result["task_status"] as? String == "cancelled")
                    #expect(result["stopped_at"] is String)
                    #expect((result["gpu_seconds"] as? Double ?? 0) > 0)
                    #expect(await fake.requests().contains { $0.hasPrefix("POST /interrupt") })
                }
            }
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
                community_opt_in: yes
                """)
        #expect(configuration.server == "https://switchyard.example.com" && configuration.key == "ak-123" && configuration.agentId == "box-1")
        #expect(configuration.labels == ["team-a", "gpu-h100"] && configuration.region == "eu-west" && configuration.capacity == 2)
        #expect(configuration.communityOptIn)
        #expect(configuration.gatewayURL == "wss://switchyard.example.com/api/v1/agent/connect")
        #expect(AgentConfiguration.advertisedLabels(configured: configuration.labels, tool: "comfyui") == ["gpu", "comfyui", "team-a", "gpu-h100"])
        try configuration.apply(yaml: "agent_labels: [a, 'b']")
        #expect(configuration.labels == ["a", "b"])
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "capacity: lots") }
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(yaml: "colour: blue") }
    }
}
