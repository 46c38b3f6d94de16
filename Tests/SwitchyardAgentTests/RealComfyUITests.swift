import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import Logging
import SwitchyardAgent
import SwitchyardComfyUI
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The ComfyUI under test when `SWITCHYARD_TEST_COMFYUI_URL` names one (docs/agent.md, "Checking against a real
/// ComfyUI"); CI has none, and these tests then report themselves skipped.
enum RealComfyUI {
    static let url: String? = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_COMFYUI_URL"].flatMap { $0.isEmpty ? nil : $0 }
    /// Different on every run, so ComfyUI's cache never answers for a prompt of an earlier run.
    static let seed = Int.random(in: 0..<8_000_000)
}

/// `serve` + `switchyard agent` against a real ComfyUI: what the fake stands for, checked on the real thing.
@Suite(
    "End to end against a real ComfyUI (SWITCHYARD_TEST_COMFYUI_URL)",
    .enabled(if: RealComfyUI.url != nil, "needs SWITCHYARD_TEST_COMFYUI_URL: the URL of a running ComfyUI (CI has none)"))
struct RealComfyUITests {
    static func colorImport(slug: String, graph: String, extra: String = "") -> String {
        EndToEndTests.importBody(slug: slug, graph: graph, parameters: EndToEndTests.colorParameter + extra)
    }

    @Test("a backlog of 60 tasks: every one completes, no prompt runs twice, each output is ComfyUI's file byte for byte")
    func backlog() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: Self.colorImport(slug: "color", graph: EndToEndTests.colorGraph))
            try await EndToEndTests.withAgent(app, client, comfyUI: comfyUI, prefetch: 2) {
                var ids: [UUID] = []
                for index in 0..<60 {
                    ids.append(try await app.run(client, slug: "color", body: #"{"parameters":{"color":\#(RealComfyUI.seed + index)}}"#))
                }
                for id in ids {
                    let stream = try await app.followEvents(port: client.port!, id)
                    #expect(stream.contains("event: completed"), "\(stream.suffix(400))")
                }
                let history = try await Self.history(comfyUI)
                for id in ids {
                    #expect(history.filter { $0 == id.lowercased }.count == 1, "task \(id) ran \(history.filter { $0 == id.lowercased }.count) times")
                }
                let result = try await app.call(client, .get, "/api/v1/r/tasks/\(ids[0].lowercased)/result", token: app.bootstrap.integrationKey)
                    .json()
                let described = try #require((result["task_output"]?.objectValue)?["outputs"]?.objectValue)
                let output = try #require(described["2.images.0"])
                let url = try #require((result["download_urls"]?.stringDictionary)?["2.images.0"])
                let stored = try await Self.get(url)
                let original = try await ComfyUIClient(baseURL: comfyUI).view(
                    filename: try #require(output["file_name"]?.stringValue), subfolder: "e2e", type: "output")
                #expect(stored == original.body)
            }
        }
    }

    @Test("every output kind: saved images, temp previews (marked), an animated WEBP, a text value")
    func outputKinds() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        let graph = """
            {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 2, "color": 0}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/kinds"}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
             "4": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/anim", "fps": 6.0, "lossless": true, "quality": 80, "method": "default"}},
             "5": {"class_type": "PreviewAny", "inputs": {"source": "a caption"}}}
            """
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: Self.colorImport(slug: "kinds", graph: graph))
            try await EndToEndTests.withAgent(app, client, comfyUI: comfyUI) {
                let id = try await app.run(client, slug: "kinds", body: #"{"parameters":{"color":\#(RealComfyUI.seed)}}"#)
                let stream = try await app.followEvents(port: client.port!, id)
                #expect(stream.contains("event: completed"), "\(stream.suffix(400))")
                let result = try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey).json()
                let outputs = try #require((result["task_output"]?.objectValue)?["outputs"]?.objectValue)
                #expect(Set(outputs.keys) == ["2.images.0", "2.images.1", "3.images.0", "3.images.1", "4.images.0", "5.text.0"])
                #expect(outputs["3.images.0"]?["preview"]?.boolValue == true && outputs["2.images.0"]?["preview"]?.boolValue == false)
                #expect(outputs["4.images.0"]?["animated"]?.boolValue == true && outputs["4.images.0"]?["content_type"]?.stringValue == "image/webp")
                #expect(outputs["5.text.0"]?["text"]?.stringValue == "a caption")
            }
        }
    }

    @Test("a node that raises fails the task with ComfyUI's message, naming the node; it is not retried")
    func executionError() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            let graph = try recordedGraphText("c5_runtime_error")
            _ = try await app.importWorkflow(client, session: session, body: EndToEndTests.importBody(slug: "escape", graph: graph, parameters: ""))
            try await EndToEndTests.withAgent(app, client, comfyUI: comfyUI) {
                let id = try await app.run(client, slug: "escape")
                let stream = try await app.followEvents(port: client.port!, id)
                #expect(stream.contains("event: failed"))
                let task = try await app.task(client, id)
                #expect((task.error)?.contains("node 3 (SaveImage) failed") == true, "\(task)")
                #expect(task.retryCount == 0)
            }
        }
    }

    @Test("cancelling a running task interrupts ComfyUI (needs its test nodes: TestSleep); the result says when it stopped")
    func cancel() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        let probe = try await Self.get(comfyUI + "/object_info/TestSleep")
        try #require(probe.count > 2, "start ComfyUI with --extra-model-paths-config tests/execution/extra_model_paths.yaml for TestSleep")
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(
                client, session: session,
                body: EndToEndTests.importBody(slug: "sleep", graph: EndToEndTests.sleepGraph, parameters: EndToEndTests.secondsParameter))
            try await EndToEndTests.withAgent(app, client, comfyUI: comfyUI) {
                let id = try await app.run(
                    client, slug: "sleep", body: #"{"parameters":{"seconds":\#(20 + Double(RealComfyUI.seed % 1000) / 1000)}}"#)
                var cancelled = false
                _ = try await app.followEvents(port: client.port!, id) { text in
                    guard !cancelled, text.contains("event: progress") else { return }
                    cancelled = true
                    _ = try await app.call(client, .post, "/api/v1/r/tasks/\(id.lowercased)/cancel", token: app.bootstrap.integrationKey)
                }
                #expect(cancelled)
                // `stopped_at` is recorded once ComfyUI confirmed the interrupt.
                let result = try await app.follow(
                    id,
                    read: { try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey).json() },
                    until: { $0["stopped_at"]?.stringValue != nil })
                #expect(result["task_status"]?.stringValue == "cancelled")
                let queue = try JSONValue.parse(try await Self.get(comfyUI + "/queue"))
                #expect(!(queue["queue_running"]?.jsonString.contains(id.lowercased) ?? false))
            }
        }
    }

    @Test(
        "after a crash mid-prompt, a restarted agent's executor finds the prompt in ComfyUI and follows it to its outputs; it ran once (needs TestSleep)"
    )
    func recoveryAfterCrash() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        let probe = try await Self.get(comfyUI + "/object_info/TestSleep")
        try #require(probe.count > 2, "start ComfyUI with --extra-model-paths-config tests/execution/extra_model_paths.yaml for TestSleep")
        let logger = Logger(label: "real-recovery")
        let agentId = "real-recovery-\(RealComfyUI.seed)"
        let graph = EndToEndTests.sleepGraph.replacingOccurrences(of: #""seconds": 30"#, with: #""seconds": 1.5"#)
            .replacingOccurrences(of: #""color": 0"#, with: #""color": \#(RealComfyUI.seed)"#)
        let job = ExecutionJob(
            attemptId: UUID().uuidString.lowercased(), taskId: UUID().uuidString.lowercased(), definition: try JSONValue.parse(graph), inputs: [])
        let crashed = ComfyUIExecutor(baseURL: comfyUI, agentId: agentId, logger: logger)
        let (started, began) = AsyncStream.makeStream(of: Void.self)
        let abandoned = Task { try? await crashed.execute(job) { if $0 == .started { began.yield() } } }
        _ = await started.first { _ in true }
        crashed.close()

        let restarted = ComfyUIExecutor(baseURL: comfyUI, agentId: agentId, logger: logger)
        defer { restarted.close() }
        let found = await restarted.recoverable(window: .seconds(120))
        #expect(found.map(\.attemptId) == [job.attemptId])
        let outputs = try await restarted.resume(try #require(found.first)) { _ in }
        abandoned.cancel()
        #expect(outputs.map(\.nodeId) == ["3"] && outputs.first?.contentType == "image/png")
        #expect(try await Self.history(comfyUI).filter { $0 == job.taskId }.count == 1)
    }

    /// The `switchyard_task_id` of every prompt in ComfyUI's history.
    @Test(
        "a registered LoRA reaches ComfyUI's own models folder (found through /internal/folder_paths) and LoraLoader lists it, without a restart; disabled, it is removed and leaves the list"
    )
    func modelSync() async throws {
        let comfyUI = try #require(RealComfyUI.url)
        let batch = UUID().uuidString.prefix(8).lowercased()
        let (first, second) = ("switchyard-test/\(batch)-a.safetensors", "switchyard-test/\(batch)-b.safetensors")
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            try await EndToEndTests.withAgent(app, client, comfyUI: comfyUI, configure: { $0.modelRemovalGrace = .zero }) {
                // A task whose workflow needs the file runs only once the agent has it: its end is the event to wait on
                // (ComfyUI tells no one when its model lists change), and then ComfyUI must list it.
                let firstId = try await app.registerSyncedModel(
                    client, session: session, bytes: [UInt8](repeating: 7, count: 1 << 20), type: "loras", path: first, name: "Test LoRA")
                try await Self.runNeeding(app, client, session, slug: "needs-a", model: "loras/\(first)", color: 1)
                #expect(try await Self.choices(comfyUI, node: "LoraLoader", input: "lora_name").contains(first))

                // Disabled, then another model: the agent handles the sets in order (the grace is zero here), so once a
                // task needing the second has run, the first is gone from ComfyUI's list.
                let disabled = try await app.call(
                    client, .put, "/api/v1/models/\(firstId)", token: session, team: app.bootstrap.teamId, body: #"{"model_status":"disabled"}"#)
                #expect(disabled.status == .ok)
                let secondId = try await app.registerSyncedModel(
                    client, session: session, bytes: [UInt8](repeating: 8, count: 1 << 20), type: "loras", path: second, name: "Test LoRA 2")
                try await Self.runNeeding(app, client, session, slug: "needs-b", model: "loras/\(second)", color: 2)
                var listed = try await Self.choices(comfyUI, node: "LoraLoader", input: "lora_name")
                #expect(!listed.contains(first) && listed.contains(second))

                // Cleaned up the same way: a task needing nothing runs after the set that drops the second.
                _ = try await app.call(
                    client, .put, "/api/v1/models/\(secondId)", token: session, team: app.bootstrap.teamId, body: #"{"model_status":"disabled"}"#)
                try await Self.runNeeding(app, client, session, slug: "needs-none", model: nil, color: 3)
                listed = try await Self.choices(comfyUI, node: "LoraLoader", input: "lora_name")
                #expect(!listed.contains(second))
            }
        }
    }

    /// Imports a colour workflow needing `model` (or nothing), runs it once and follows it to its end.
    static func runNeeding(
        _ app: TestApp, _ client: any TestClientProtocol, _ session: String, slug: String, model: String?, color: Int
    ) async throws {
        let required = model.map { #""required_models":["\#($0)"],"# } ?? ""
        let body = colorImport(slug: slug, graph: EndToEndTests.colorGraph)
            .replacingOccurrences(of: #""task_timeout":120,"#, with: #""task_timeout":120,"# + required)
        _ = try await app.importWorkflow(client, session: session, body: body)
        let task = try await app.run(client, slug: slug, body: #"{"parameters":{"color":\#(RealComfyUI.seed + 100_000 + color)}}"#)
        let stream = try await app.followEvents(port: client.port!, task)
        #expect(stream.contains("event: completed"), "\(stream.suffix(400))")
    }

    /// `node`'s choices for `input` in ComfyUI's `/object_info`.
    static func choices(_ comfyUI: String, node: String, input: String) async throws -> [String] {
        let info = try JSONValue.parse(try await get(comfyUI + "/object_info/\(node)"))
        return info[node]?["input"]?["required"]?[input]?.arrayValue?.first?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func history(_ comfyUI: String) async throws -> [String] {
        let entries = try JSONValue.parse(try await get(comfyUI + "/history?max_items=10000")).objectValue ?? [:]
        return entries.values.compactMap { $0["prompt"]?.arrayValue?.dropFirst(3).first?["switchyard_task_id"]?.stringValue }
    }

    static func get(_ url: String) async throws -> [UInt8] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        return Array(buffer: try await response.body.collect(upTo: 1 << 26))
    }
}
