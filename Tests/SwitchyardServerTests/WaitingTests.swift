import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@testable import SwitchyardServer

/// Honesty about waiting (issue 14 item 7): `start_deadline`, `queue_position` with `estimated_start_at`, and the
/// per-team backlog limit.
@Suite("Waiting tasks")
struct WaitingTests {
    @Test("start_deadline: a task no agent started in time fails as expired, once; one without a deadline waits on", arguments: TestBackend.available)
    func startDeadline(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let bounded = try await app.run(client, body: #"{"start_deadline": 5}"#)
            let patient = try await app.run(client)
            let shown = try await app.taskJSON(client, bounded)
            let created = try #require(apiInstant(shown["created_at"]))
            #expect(apiInstant(shown["start_deadline"]) == created.addingTimeInterval(5))
            #expect(try await app.taskJSON(client, patient)["start_deadline"] == .null)

            app.clock.advance(by: 4)
            await app.built.dispatcher.tick()
            #expect(try await app.task(client, bounded).status == .waiting)
            app.clock.advance(by: 2)
            await app.built.dispatcher.tick()
            let expired = try await app.task(client, bounded)
            #expect(expired.status == .failed)
            #expect(expired.error?.hasPrefix("expired:") == true)
            let result = try await app.call(client, .get, "/api/v1/r/tasks/\(bounded.lowercased)/result", token: app.bootstrap.integrationKey).json()
            #expect((result["task_error"]?.stringValue)?.contains("start_deadline") == true)
            let events = try #require(try await app.storage.taskEvents(taskId: bounded, teamId: app.bootstrap.teamId, afterSequence: 0))
            #expect(events.map(\.kind) == [.status, .status, .failed])
            #expect(try await app.task(client, patient).status == .waiting)

            for (body, rule) in [
                (#"{"start_deadline": 0}"#, "outside 1–604800"), (#"{"start_deadline": "soon"}"#, "must be a number"),
                (#"{"start_deadline": 60, "dispatch_target": "comfy_cloud"}"#, "agent tasks only"),
            ] {
                let refused = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: body)
                #expect(refused.status == .badRequest)
                let message = try refused.json()["error_message"]?.stringValue
                #expect(message?.contains("start_deadline") == true && message?.contains(rule) == true, "\(message ?? "")")
            }
        }
    }

    @Test("queue_position counts the team's tasks ahead with the same labels; a running or ended task has none", arguments: TestBackend.available)
    func queuePosition(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            var ids: [UUID] = []
            for _ in 0..<3 {
                ids.append(try await app.run(client))
                app.clock.advance(by: 1)  // submitted one after another, as a real clock would say
            }
            var positions: [Int?] = []
            for id in ids { positions.append(try await app.task(client, id).queuePosition) }
            #expect(positions == [1, 2, 3])
            // No agent is connected: no estimate rather than a guess.
            #expect(try await app.task(client, ids[2]).estimatedStartAt == nil)
            let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(ids[0].lowercased)/cancel", token: app.bootstrap.integrationKey)
            #expect(cancel.status == .ok)
            #expect(try await app.task(client, ids[0]).queuePosition == nil)
            #expect(try await app.task(client, ids[1]).queuePosition == 1)
            #expect(try await app.task(client, ids[2]).queuePosition == 2)
            let list = try await app.call(client, .get, "/api/v1/r/tasks", token: app.bootstrap.integrationKey).json()
            #expect((list["task_list"]?.arrayValue)?.first?["queue_position"] == nil)
        }
    }

    @Test(
        "estimated_start_at: the tasks ahead and half a run, at the workflow's typical run time, over the eligible agents' slots — all of them, beyond a page"
    )
    func estimatedStart() async throws {
        // The clock jumps 1,000 s below, and a dispatcher tick may land between the jump and the agent's next message:
        // with the default 30 s of heartbeat silence it ended the agent's session (the test then waited forever for
        // offers), and with the default task_timeout of 300 s it timed the attempt out and sent the task back to wait
        // (the stream below then never saw it end). Both limits are set past the jump.
        try await TestApp.withInvertAgent(taskTimeout: 3600, configure: { $0.dispatch.heartbeatInterval = 400 }) { app, client, agent in
            // One run of 1,000 s (by the server's clock) makes the typical run time.
            let first = try await app.run(client)
            let offer = try await agent.offer()
            try await agent.send(.ack(.init(attemptId: offer.attemptId)))
            // Answered after the ack was handled: the run's start is written before the clock moves.
            try await agent.send(
                .uploadRequest(.init(attemptId: offer.attemptId, requestId: "r", fileName: "a.png", contentType: "image/png", size: 1)))
            _ = try await agent.receive("upload_url") { if case .uploadURL(let url) = $0 { url } else { nil } }
            app.clock.advance(by: 1000)
            let stream = Task {
                try await app.call(client, .get, "/api/v1/r/tasks/\(first.lowercased)/events", token: app.bootstrap.integrationKey)
            }
            try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
            _ = try await stream.value  // ends with the task's terminal event

            // The agent's one slot is busy with the next task; two more wait behind it.
            let busy = try await app.run(client)
            #expect(try await agent.offer().taskId == busy.lowercased)
            let next = try await app.run(client)
            app.clock.advance(by: 1)  // submitted one after another, as a real clock would say
            let after = try await app.run(client)
            let now = app.clock.now()
            let nextShown = try await app.taskJSON(client, next)
            #expect(nextShown["queue_position"]?.intValue == 1)
            #expect(apiInstant(nextShown["estimated_start_at"]) == now.addingTimeInterval(500))
            let afterShown = try await app.taskJSON(client, after)
            #expect(afterShown["queue_position"]?.intValue == 2)
            #expect(apiInstant(afterShown["estimated_start_at"]) == now.addingTimeInterval(1500))

            // 249 more eligible agents (rows as other replicas write them): 250 slots, more than a page of the list.
            let gateway = await app.built.dispatcher.gatewayId
            for index in 0..<249 {
                try await app.storage.upsertAgent(
                    AgentRecord(
                        teamId: app.bootstrap.teamId, agentId: String(format: "bulk-%03d", index), credentialId: UUID(), status: .idle,
                        labels: ["comfyui", "gpu"], region: nil, communityOptIn: false, capacity: 1, agentVersion: "test", tool: "comfyui",
                        toolVersion: nil, systemStats: [:], gatewayId: gateway, connectedAt: now, lastHeartbeatAt: now))
            }
            #expect(apiInstant(try await app.taskJSON(client, next)["estimated_start_at"]) == now.addingTimeInterval(2))
            #expect(apiInstant(try await app.taskJSON(client, after)["estimated_start_at"]) == now.addingTimeInterval(6))
        }
    }

    @Test(
        "dispatch.maxBacklogPerTeam: past the limit a submission gets 429 with Retry-After, and nothing is stored", arguments: TestBackend.available)
    func backlogLimit(backend: TestBackend) async throws {
        try await TestApp.with(backend, configure: { $0.dispatch.maxBacklogPerTeam = 2 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let first = try await app.run(client)
            _ = try await app.run(client)
            let refused = try await app.call(client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: "{}")
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] == "10")
            #expect((try refused.json()["error_message"]?.stringValue)?.contains("dispatch.maxBacklogPerTeam = 2") == true)
            let listed = try await app.call(client, .get, "/api/v1/r/tasks", token: app.bootstrap.integrationKey).json()
            #expect((listed["page_meta"]?.objectValue)?["total_count"]?.intValue == 2)
            // Room again once one leaves the queue.
            _ = try await app.call(client, .post, "/api/v1/r/tasks/\(first.lowercased)/cancel", token: app.bootstrap.integrationKey)
            _ = try await app.run(client)
        }
    }
}
