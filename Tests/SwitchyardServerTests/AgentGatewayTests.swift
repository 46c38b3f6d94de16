import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardServer
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

/// The gateway and dispatcher over a real socket, with a hand-driven agent (`WireTestAgent`).
@Suite("Agent gateway and dispatcher")
struct AgentGatewayTests {
    @Test(
        "the community pool is closed unless the operator opens it (dispatch.communityPool); open, another team's agent takes the task and its team's agent list counts it without showing its id",
        arguments: [false, true])
    func communityPool(open: Bool) async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.communityPool = open }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let other = try await app.otherTeam()
            let otherAgentKey = try await app.insertKey(.agent, teamId: other.teamId).secret
            try await WireTestAgent.connect(
                port: client.port!, key: otherAgentKey, hello: WireTestAgent.hello("volunteer", communityOptIn: true)
            ) { volunteer in
                let listed = try await app.call(client, .get, "/api/v1/r/agents", token: other.integrationKey).json()
                let before = try #require((listed["agent_list"]?.arrayValue)?.first)
                #expect(before["community_opt_in"]?.boolValue == open, "the opt-in counts only where the pool is open")
                let taskId = try await app.run(client, body: #"{"parameters": {"color": 1}, "target_pool": "community"}"#)
                guard open else {
                    // Decided at submission: no eligible agent, the task waits (the volunteer is not offered it).
                    #expect(try await app.task(client, taskId).status == .waiting)
                    return
                }
                let offer = try await volunteer.offer()
                #expect(offer.taskId == taskId.lowercased)
                let agents = try await app.call(client, .get, "/api/v1/r/agents", token: other.integrationKey).json()
                let entry = try #require((agents["agent_list"]?.arrayValue)?.first)
                #expect(entry["running_count"]?.intValue == 1)
                #expect((entry["running_tasks"]?.arrayValue)?.isEmpty == true && entry["current_task_id"] == .null, "\(entry)")
            }
        }
    }

    @Test("an offered task runs: ack, progress, output upload, complete; result URLs serve the bytes; SSE replays it all")
    func happyPath() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu-01")) { agent in
                let taskId = try await app.run(client, body: #"{"parameters": {"color": 255}}"#)
                let offer = try await agent.offer()
                #expect(offer.taskId == taskId.lowercased)
                #expect(try offer.definition()["1"]?["inputs"]?["color"] == 255, "\(offer.definitionJSON)")
                #expect(try await app.task(client, taskId).status == .queued)
                // A stream opened now follows the task live and closes after its terminal event.
                let live = Task {
                    try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: app.bootstrap.integrationKey)
                }

                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                try await agent.send(.progress(.init(attemptId: offer.attemptId, progress: 0.5, stepCurrent: 1, stepTotal: 2, currentNode: "2")))
                let bytes = Array("png bytes of the inverted image".utf8)
                try await agent.send(
                    .uploadRequest(
                        .init(attemptId: offer.attemptId, requestId: "r1", fileName: "a_00001_.png", contentType: "image/png", size: bytes.count)))
                let upload = try await agent.receive("upload_url") { if case .uploadURL(let url) = $0 { url } else { nil } }
                #expect(upload.requestId == "r1")
                #expect(try await app.put(upload.url, headers: upload.headers, body: bytes) == 200)
                try await agent.send(
                    .complete(
                        .init(
                            attemptId: offer.attemptId,
                            outputs: [
                                OutputFile(
                                    nodeId: "3", kind: "images", index: 0, fileName: "a_00001_.png", storageKey: upload.storageKey,
                                    contentType: "image/png", size: bytes.count)
                            ])))
                let done = try await app.waitForTask(client, taskId) { $0.status == .completed }
                #expect(done.agentId == "gpu-01")
                #expect(done.gpuType == "NVIDIA Test GPU")
                #expect(done.gatewayId?.hasPrefix("gw-") == true)
                #expect(done.startedAt != nil && done.completedAt != nil)

                let result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: app.bootstrap.integrationKey)
                    .json()
                let url = try #require(result["download_url"]?.stringValue)
                #expect((result["download_urls"]?.stringDictionary)?["3.images.0"] != nil)
                #expect(result["expires_at"]?.stringValue != nil)
                #expect(try await Self.get(url) == bytes)

                let events = try await live.value
                let stream = String(buffer: events.body)
                #expect(events.headers[.contentType] == "text/event-stream")
                // Each event's data as docs/openapi.yaml describes it (x-sse-events), the completed one's output too.
                #expect(try EventSchemaTests.Schemas().check(stream).last == "completed")
                // Progress reaches live streams from memory; a task this short logs none (its `completed` says it ended).
                #expect(Self.eventNames(stream).filter { $0 != "progress" } == ["status", "status", "status", "completed"])
                #expect(stream.contains("id: 1\n") && !stream.contains("id: 5\n"))

                // Resume after the last status event: only the terminal one is left.
                var headers = HTTPFields()
                headers[HTTPField.Name("Last-Event-ID")!] = "3"
                let resumed = try await app.call(
                    client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: app.bootstrap.integrationKey, headers: headers)
                #expect(Self.eventNames(String(buffer: resumed.body)) == ["completed"])
                // Resumed after the terminal event: nothing is left, and the stream ends rather than waiting forever.
                headers[HTTPField.Name("Last-Event-ID")!] = "4"
                let after = try await app.call(
                    client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: app.bootstrap.integrationKey, headers: headers)
                #expect(Self.eventNames(String(buffer: after.body)).isEmpty)

                // The agent's row follows its counters within a second (written by the dispatcher's tick).
                app.clock.advance(by: 1.5)
                await app.built.dispatcher.tick()
                let agents = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
                let listed = try #require((agents["agent_list"]?.arrayValue)?.first)
                #expect(listed["agent_id"]?.stringValue == "gpu-01")
                #expect(listed["agent_status"]?.stringValue == "idle")
                #expect(listed["tasks_completed"]?.intValue == 1)
                let managed = try await app.call(client, .get, "/api/v1/agents", token: session, team: app.bootstrap.teamId).json()
                #expect((managed["agent_list"]?.arrayValue)?.first?["agent_id"]?.stringValue == "gpu-01")
                #expect(try await app.call(client, .get, "/api/v1/agents", token: app.bootstrap.agentKey).status == .unauthorized)
            }
        }
    }

    @Test("a task whose labels no agent has waits, saying why, and moves when a matching agent connects")
    func waitsForLabels() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(labels: ["gpu", "h100"]))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("small")) { small in
                let taskId = try await app.run(client)
                _ = try await app.waitForTask(client, taskId) { $0.status == .waiting }
                let events = try #require(try await app.storage.taskEvents(taskId: taskId, teamId: app.bootstrap.teamId, afterSequence: 1))
                #expect(events.first?.data["message"]?.stringValue?.contains("lacks label h100") == true)
                try await WireTestAgent.connect(
                    port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("big", labels: ["gpu", "comfyui", "h100"])
                ) { big in
                    let offer = try await big.offer()
                    #expect(offer.taskId == taskId.lowercased)
                }
                _ = small
            }
        }
    }

    @Test("min_vram_gb keeps a task from small GPUs; a region match wins over a neutral agent")
    func vramAndRegion() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(minVRAMGB: 48))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("small", vramGB: 24)) { _ in
                let taskId = try await app.run(client)
                _ = try await app.waitForTask(client, taskId) { $0.status == .waiting }
                let events = try #require(try await app.storage.taskEvents(taskId: taskId, teamId: app.bootstrap.teamId, afterSequence: 1))
                #expect(events.first?.data["message"]?.stringValue?.contains("has 24 GB of VRAM, the task needs 48 GB") == true)
                try await WireTestAgent.connect(
                    port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("eu", capacity: 2, region: "EU-West ", vramGB: 80)
                ) { eu in
                    let first = try await eu.offer()
                    #expect(first.taskId == taskId.lowercased)
                    try await WireTestAgent.connect(
                        port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("neutral", vramGB: 80)
                    ) { neutral in
                        // eu-west is half busy and the region-less agent idle: the region decides (factor 1 over 0.5).
                        let second = try await app.run(client, body: #"{"parameters":{},"submitter_region":"eu-west"}"#)
                        let offer = try await eu.offer()
                        #expect(offer.taskId == second.lowercased)
                        // Without a region both are neutral (0.5): the lighter load wins.
                        let third = try await app.run(client)
                        #expect(try await neutral.offer().taskId == third.lowercased)
                    }
                }
            }
        }
    }

    @Test("cancelling a queued task (offered, not yet acknowledged) tells the agent; its late ACK is refused")
    func cancelQueued() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let taskId = try await app.run(client)
                let offer = try await agent.offer()
                #expect(try await app.task(client, taskId).status == .queued)
                _ = try await app.call(client, .post, "/api/v1/r/tasks/\(taskId.lowercased)/cancel", token: app.bootstrap.integrationKey)
                let told = try await agent.receive("cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                #expect(told.attemptId == offer.attemptId)
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await agent.receive("refused") {
                    if case .refused(let refusal) = $0, refusal.attemptId == offer.attemptId { true } else { nil }
                }
                #expect(try await app.task(client, taskId).status == .cancelled)
            }
        }
    }

    @Test("an idle event stream gets keep-alive comments and stays open until the task ends")
    func keepAlive() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let taskId = try await app.run(client)
            var advanced = false
            var cancelled = false
            let text = try await app.followEvents(port: client.port!, taskId) { text in
                if !advanced, text.contains("\"status\":\"waiting\"") {
                    advanced = true
                    app.clock.advance(by: 16)
                }
                if !cancelled, text.contains(": keep-alive") {
                    cancelled = true
                    _ = try await app.call(client, .post, "/api/v1/r/tasks/\(taskId.lowercased)/cancel", token: app.bootstrap.integrationKey)
                }
            }
            #expect(text.hasPrefix("retry: 3000"))
            #expect(Self.eventNames(text) == ["status", "status", "cancelled"])
            #expect(text.contains(": keep-alive\n\n"))
        }
    }

    @Test(
        "an agent that vanishes mid-task keeps it for the reconnect grace: back in time and listing it, it finishes it (no retry used); gone, the task is retried on another agent"
    )
    func disconnectRetries() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.heartbeatInterval = 300 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let kept = try await app.run(client)
            let held = Mutex("")
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("first")) { agent in
                let offer = try await agent.offer()
                held.withLock { $0 = offer.attemptId }
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, kept) { $0.status == .running }
            }
            await app.built.dispatcher.sessionEnded(teamId: app.bootstrap.teamId, agentId: "first")
            #expect(try await app.task(client, kept).status == .running, "held for the agent")
            let attemptId = held.withLock { $0 }
            try await WireTestAgent.connect(
                port: client.port!, key: app.bootstrap.agentKey,
                hello: WireTestAgent.hello("first", held: [attemptId, UUID().uuidString.lowercased()])
            ) { agent in
                #expect(agent.welcome.keptAttempts == [attemptId], "the unknown one is not its")
                try await agent.send(.complete(.init(attemptId: attemptId, outputs: [])))
                let done = try await app.waitForTask(client, kept) { $0.status == .completed }
                #expect(done.retryCount == 0)
            }

            let taskId = try await app.run(client)
            await app.built.dispatcher.sessionEnded(teamId: app.bootstrap.teamId, agentId: "first")
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("first")) { agent in
                let offer = try await agent.offer()
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, taskId) { $0.status == .running }
            }
            await app.built.dispatcher.sessionEnded(teamId: app.bootstrap.teamId, agentId: "first")
            // It does not come back: after the grace its attempt failed (retriable), the task waits for another agent.
            app.clock.advance(by: 31)
            await app.built.dispatcher.tick()
            let waiting = try await app.task(client, taskId)
            #expect(waiting.status == .waiting)
            #expect(waiting.retryCount == 1)
            #expect((waiting.error)?.contains("did not reconnect within 30 s") == true)
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("second")) { agent in
                let offer = try await agent.offer()
                #expect(offer.taskId == taskId.lowercased)
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
                let done = try await app.waitForTask(client, taskId) { $0.status == .completed }
                #expect(done.agentId == "second")
                #expect(done.error == "")
            }
        }
    }

    @Test("an agent that reconnects before its old socket is noticed gone keeps the attempts it lists as held")
    func quickReconnect() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { old in
                let taskId = try await app.run(client)
                let offer = try await old.offer()
                try await old.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, taskId) { $0.status == .running }
                // The old socket is still open when the same agent says hello again, listing its attempt.
                try await WireTestAgent.connect(
                    port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu", held: [offer.attemptId])
                ) { new in
                    try await new.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
                    let done = try await app.waitForTask(client, taskId) { $0.status == .completed }
                    #expect(done.retryCount == 0)
                }
            }
        }
    }

    @Test("no ACK in time puts the task back to waiting without using a retry; the late ACK is refused")
    func ackTimeout() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("slow")) { agent in
                let taskId = try await app.run(client)
                let first = try await agent.offer()
                app.clock.advance(by: 11)
                let cancel = try await agent.receive("cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                #expect(cancel.attemptId == first.attemptId)
                // Re-offered to the same (only) agent as a new attempt, retry count untouched.
                let second = try await agent.offer()
                #expect(second.taskId == taskId.lowercased && second.attemptId != first.attemptId)
                #expect(try await app.task(client, taskId).retryCount == 0)
                try await agent.send(.ack(.init(attemptId: first.attemptId)))
                let refused = try await agent.receive("refused") { if case .refused(let refusal) = $0 { refusal } else { nil } }
                #expect(refused.attemptId == first.attemptId)
            }
        }
    }

    @Test("a running task times out task_timeout after its ACK; a failure of the task's own making is not retried")
    func timeoutAndTaskFault() async throws {
        // Heartbeats are judged by the same manual clock the test advances: make them lenient here.
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.heartbeatInterval = 300 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(timeout: 60, maxRetries: 1))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let taskId = try await app.run(client)
                let offer = try await agent.offer()
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, taskId) { $0.status == .running }
                app.clock.advance(by: 61)
                _ = try await agent.receive("cancel") { if case .cancel = $0 { true } else { nil } }
                let retried = try await agent.offer()
                let task = try await app.task(client, taskId)
                #expect(task.retryCount == 1)
                #expect((task.error)?.contains("timed out after 60 s") == true)

                try await agent.send(.ack(.init(attemptId: retried.attemptId)))
                try await agent.send(.fail(.init(attemptId: retried.attemptId, error: "node 3 (SaveImage): bad prefix", fault: .task)))
                let failed = try await app.waitForTask(client, taskId) { $0.status == .failed }
                #expect(failed.error == "node 3 (SaveImage): bad prefix")
            }
        }
    }

    @Test("task_timeout 0 means no time limit")
    func noTimeout() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.heartbeatInterval = 300_000 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(timeout: 0))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let taskId = try await app.run(client)
                let offer = try await agent.offer()
                #expect(offer.timeout == 0)
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await app.waitForTask(client, taskId) { $0.status == .running }
                app.clock.advance(by: 86_400)
                await app.built.dispatcher.tick()
                #expect(try await app.task(client, taskId).status == .running)
            }
        }
    }

    @Test("a single-capacity agent holds one task at a time; cancelling a running task tells the agent, which reports when it stopped")
    func capacityAndCancel() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("one")) { agent in
                let firstId = try await app.run(client)
                let secondId = try await app.run(client)
                let offer = try await agent.offer()
                #expect(offer.taskId == firstId.lowercased)
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                await #expect(throws: TestSupportError.self) { _ = try await agent.offer(within: .milliseconds(400)) }
                #expect(try await app.task(client, secondId).status == .waiting)

                let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(firstId.lowercased)/cancel", token: app.bootstrap.integrationKey)
                #expect(try cancel.json()["is_success"]?.boolValue == true)
                let told = try await agent.receive("cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                #expect(told.attemptId == offer.attemptId)
                // Capacity stays taken until the agent says the work stopped.
                await #expect(throws: TestSupportError.self) { _ = try await agent.offer(within: .milliseconds(300)) }
                let stoppedAt = app.clock.now()
                try await agent.send(.cancelled(.init(attemptId: offer.attemptId, stoppedAt: stoppedAt, gpuSeconds: 1.5)))
                let next = try await agent.offer()
                #expect(next.taskId == secondId.lowercased)
                let result = try await app.call(client, .get, "/api/v1/r/tasks/\(firstId.lowercased)/result", token: app.bootstrap.integrationKey)
                    .json()
                #expect(result["task_status"]?.stringValue == "cancelled")
                #expect(apiInstant(result["stopped_at"]) == stoppedAt)
                #expect(result["gpu_seconds"]?.doubleValue == 1.5)
                // Messages about the cancelled attempt are refused.
                try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
                _ = try await agent.receive("refused") {
                    if case .refused(let refusal) = $0, refusal.attemptId == offer.attemptId { true } else { nil }
                }
            }
        }
    }

    @Test("the connect path wants an ak- key and a WebSocket upgrade")
    func connectGuards() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let none = try await client.execute(uri: "/api/v1/agent/connect", method: .get)
            #expect(none.status == .unauthorized)
            let wrongKind = try await app.call(client, .get, "/api/v1/agent/connect", token: app.bootstrap.integrationKey)
            #expect(wrongKind.status == .unauthorized)
            #expect(wrongKind.errorMessage?.contains("ak-") == true)
            let plain = try await app.call(client, .get, "/api/v1/agent/connect", token: app.bootstrap.agentKey)
            #expect(plain.status == .upgradeRequired)
        }
    }

    static func eventNames(_ stream: String) -> [String] {
        stream.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst("event: ".count)) }
    }

    static func get(_ url: String) async throws -> [UInt8] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        return Array(buffer: try await response.body.collect(upTo: 1 << 20))
    }
}
