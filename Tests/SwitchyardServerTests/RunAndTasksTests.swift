import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Runs and tasks API")
struct RunAndTasksTests {
    /// An app with the text-to-image workflow imported; `body` gets its id.
    static func withWorkflow(
        _ backend: TestBackend, _ body: @Sendable (TestApp, any TestClientProtocol, UUID) async throws -> Void
    ) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            try await body(app, client, id)
        }
    }

    @Test(
        "the quickstart's run by slug answers 202 with task_id; the task is pending, durable, and records what it will run",
        arguments: TestBackend.available)
    func runBySlug(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, workflowId in
            let key = app.bootstrap.integrationKey
            let run = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key,
                body: #"{"parameters":{"prompt":"a sunset over mountains, 4k","steps":30}}"#)
            #expect(run.status == .accepted)
            let taskId = try run.decode(RunAccepted.self).taskId
            #expect(run.headers[.location] == "/api/v1/r/tasks/\(taskId.lowercased)")

            let poll = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)", token: key)
            #expect(poll.status == .ok)
            let task = try poll.json()
            #expect(task["id"]?.stringValue == taskId.lowercased && task["workflow_id"]?.stringValue == workflowId.lowercased)
            // No agent is connected: the dispatcher may already have moved it on to waiting.
            #expect(["pending", "waiting"].contains(task["task_status"]?.stringValue ?? ""))
            #expect(task["retry_count"]?.intValue == 0 && task["task_error"]?.stringValue == "")
            #expect(task["task_source"]?.stringValue == "api_key" && task["workflow_version"]?.intValue == 1)
            #expect(
                task["dispatch_target"]?.stringValue == "agent" && task["target_pool"]?.stringValue == "team"
                    && task["tool_type"]?.stringValue == "comfyui"
            )
            for field in ["agent_id", "agent_labels", "gateway_id", "gpu_type", "started_at", "completed_at"] {
                #expect(task[field] == .null, "\(field) is null until dispatched")
            }
            let parameters = try #require(task["parameters"]?.objectValue)
            #expect(parameters["prompt"]?.stringValue == "a sunset over mountains, 4k" && parameters["steps"]?.intValue == 30)
            #expect(parameters["width"]?.intValue == 512 && parameters["sampler"]?.stringValue == "euler")

            let definition = try #require(try await app.storage.taskDefinition(id: taskId, teamId: app.bootstrap.teamId))
            #expect(definition["6"]?["inputs"]?["text"] == "a sunset over mountains, 4k")
            #expect(definition["3"]?["inputs"]?["steps"] == 30)
            #expect(definition["5"]?["inputs"]?["width"] == 512)
            let events = try #require(try await app.storage.taskEvents(taskId: taskId, teamId: app.bootstrap.teamId, afterSequence: 0))
            #expect(events.first?.kind == .status && events.first?.data["status"] == "pending")
            // With no agent connected the dispatcher moves it on to waiting, and nowhere else.
            #expect(events.dropFirst().allSatisfy { $0.data["status"] == "waiting" })
        }
    }

    @Test("run by id with the docs' full example body (S4), a session with X-Team-ID, and a dk- key", arguments: TestBackend.available)
    func runById(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, workflowId in
            let fileKey = try await app.upload(client, token: app.bootstrap.integrationKey)
            let body = """
                {"parameters":{"prompt":"sunset over ocean","width":1024,"input_image":"\(fileKey)"},
                 "dispatch_target":"agent","target_pool":"team","submitter_region":"US-East ","tool_type":"comfyui"}
                """
            let session = try await app.ownerSession(client)
            let device = try await app.member(role: .member)
            for (token, team) in [(app.bootstrap.integrationKey, nil), (session, app.bootstrap.teamId), (device, nil)] as [(String, UUID?)] {
                let run = try await app.call(client, .post, "/api/v1/r/workflows/\(workflowId.lowercased)/run", token: token, team: team, body: body)
                #expect(run.status == .accepted, "\(String(buffer: run.body))")
                let taskId = try run.decode(RunAccepted.self).taskId.lowercased
                let task = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)", token: token, team: team).json()
                #expect(task["submitter_region"]?.stringValue == "us-east")
                #expect(task["task_source"]?.stringValue == (team == nil ? "api_key" : "jwt"))
                #expect((task["parameters"]?.objectValue)?["input_image"]?.stringValue == fileKey)
            }
        }
    }

    @Test(
        "validation failures are 400s naming the key and the rule, and create nothing",
        arguments: [
            (
                #"{"parameters":{"prompt":"x","steps":30,"seed":1}}"#,
                #"parameter "seed" is not defined by workflow "text-to-image" (its parameters: prompt, width, sampler, steps, input_image)"#
            ),
            (#"{"parameters":{"steps":30}}"#, #"parameter "prompt" is required (string)"#),
            ("", #"parameter "prompt" is required (string)"#),
            (#"{"parameters":{"prompt":"x","width":"wide"}}"#, #"parameter "width": must be a number, not a string"#),
            (#"{"parameters":{"prompt":"x","width":4096}}"#, #"parameter "width": 4096 is above max 2048"#),
            (#"{"parameters":{"prompt":"x","steps":0}}"#, #"parameter "steps": 0 is below min 1"#),
            (
                #"{"parameters":{"prompt":"x","sampler":"ddim"}}"#,
                #"parameter "sampler": "ddim" is not one of the options ["euler","euler_ancestral","dpmpp_2m"]"#
            ),
            (
                #"{"parameters":{"prompt":"x","input_image":"inputs/019abc12-4567-7890-abcd-ef1234567891/019abc12-0000-7000-8000-000000000001/a.png"}}"#,
                #"parameter "input_image": file_key "inputs/019abc12-4567-7890-abcd-ef1234567891/019abc12-0000-7000-8000-000000000001/a.png" was not uploaded by this team"#
            ),
            (
                #"{"parameters":{"prompt":"x"},"dispatch_target":"comfy_cloud"}"#,
                #"field "dispatch_target": comfy_cloud needs the team's Comfy Cloud API key (PUT /cloud-providers/comfy-cloud), and none is set; use agent"#
            ),
            (
                #"{"parameters":{"prompt":"x"},"tool_type":"nerfstudio"}"#,
                #"field "tool_type": workflow "text-to-image" is a comfyui workflow, not nerfstudio"#
            ),
            (#"{"parameters":{"prompt":"x"},"target_pool":"everyone"}"#, #"field "target_pool": "everyone" is not one of team, community"#),
            (
                #"{"parameters":{"prompt":"x"},"submitter_region":"\#(String(repeating: "r", count: 65))"}"#,
                #"field "submitter_region" is 65 characters long; the maximum is 64"#
            ),
            (#"{"parameters":{"prompt":"x","prompt":"y"}}"#, #"request body is not valid JSON: duplicate key "prompt" at byte 28"#),
            ("[1]", "request body must be a JSON object, not an array"),
        ])
    func validation(body: String, message: String) async throws {
        for backend in TestBackend.available {
            try await Self.withWorkflow(backend) { app, client, _ in
                let response = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: app.bootstrap.integrationKey, body: body.isEmpty ? nil : body)
                #expect(response.status == .badRequest, "\(backend)")
                #expect(response.errorMessage == message, "\(backend)")
                #expect(try await app.storage.tasks(teamId: app.bootstrap.teamId, status: nil, page: PageRequest()).totalCount == 0)
            }
        }
    }

    @Test(
        "slug@version runs that snapshot; an unknown version or slug is 404; a disabled workflow refuses runs with 409",
        arguments: TestBackend.available)
    func pinnedAndDisabled(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, workflowId in
            let session = try await app.ownerSession(client)
            let key = app.bootstrap.integrationKey
            // Version 2 renames the prompt parameter; version 1 still takes "prompt".
            let v2 = try textToImageImport().replacingOccurrences(of: #"{"key":"prompt""#, with: #"{"key":"text""#)
            _ = try await app.importWorkflow(client, session: session, body: v2)
            let latest = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(latest.status == .badRequest)
            let pinned = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image@1/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(pinned.status == .accepted)
            let taskId = try pinned.decode(RunAccepted.self).taskId.lowercased
            #expect(try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)", token: key).decode(TaskInfo.self).workflowVersion == 1)
            let current = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image@2/run", token: key, body: #"{"parameters":{"text":"x"}}"#)
            #expect(current.status == .accepted)
            // A client that percent-encodes the @ means the same reference.
            let encoded = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image%401/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(encoded.status == .accepted)

            let future = try await app.call(client, .post, "/api/v1/r/workflows/slug/text-to-image@3/run", token: key, body: "{}")
            #expect(future.status == .notFound && future.errorMessage == #"workflow "text-to-image" has no version 3 (the latest is 2)"#)
            let unknown = try await app.call(client, .post, "/api/v1/r/workflows/slug/nope/run", token: key, body: "{}")
            #expect(unknown.status == .notFound && unknown.errorMessage == #"workflow "nope" not found"#)
            #expect(try await app.call(client, .post, "/api/v1/r/workflows/slug/Bad_Slug/run", token: key, body: "{}").status == .badRequest)

            _ = try await app.call(
                client, .put, "/api/v1/workflows/\(workflowId.lowercased)", token: session, team: app.bootstrap.teamId,
                body: #"{"workflow_status":"disabled"}"#)
            let disabled = try await app.call(
                client, .post, "/api/v1/r/workflows/\(workflowId.lowercased)/run", token: key, body: #"{"parameters":{"text":"x"}}"#)
            #expect(disabled.status == .conflict)
            #expect(
                disabled.errorMessage
                    == #"workflow "text-to-image" is disabled and refuses new runs; an owner or admin can set workflow_status to active"#)
        }
    }

    @Test(
        "Idempotency-Key: same key and body replay the task (Idempotency-Replayed: true); another body is 409; bad keys are 400",
        arguments: TestBackend.available)
    func idempotency(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, _ in
            let key = app.bootstrap.integrationKey
            let uri = "/api/v1/r/workflows/slug/text-to-image/run"
            var headers = HTTPFields()
            headers[HTTPField.Name("Idempotency-Key")!] = "order-4711"
            let first = try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"x","steps":30}}"#, headers: headers)
            #expect(first.status == .accepted && first.headers[HTTPField.Name("Idempotency-Replayed")!] == nil)
            // Same JSON, other whitespace and key order: a replay.
            let replay = try await app.call(
                client, .post, uri, token: key, body: #"{ "parameters": { "steps": 30, "prompt": "x" } }"#, headers: headers)
            #expect(replay.status == .accepted)
            #expect(replay.headers[HTTPField.Name("Idempotency-Replayed")!] == "true")
            #expect(try replay.decode(RunAccepted.self).taskId == first.decode(RunAccepted.self).taskId)
            let different = try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"y"}}"#, headers: headers)
            #expect(different.status == .conflict)
            #expect(
                different.errorMessage
                    == "Idempotency-Key was already used within the last 24 hours for a different request; use a new key for a new request")
            #expect(try await app.storage.tasks(teamId: app.bootstrap.teamId, status: nil, page: PageRequest()).totalCount == 1)

            // After 24 hours the key is free again.
            app.clock.advance(by: IdempotencyClaim.window + 1)
            let later = try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"y"}}"#, headers: headers)
            #expect(later.status == .accepted && later.headers[HTTPField.Name("Idempotency-Replayed")!] == nil)

            headers[HTTPField.Name("Idempotency-Key")!] = "has space"
            #expect(
                try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"x"}}"#, headers: headers).status == .badRequest)
            // Without the header every request is a new task.
            let a = try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            let b = try await app.call(client, .post, uri, token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(try a.decode(RunAccepted.self).taskId != b.decode(RunAccepted.self).taskId)
        }
    }

    @Test(
        "cancel: pending → cancelled with an event; again is a successful no-op; viewers cannot; result shows nulls", arguments: TestBackend.available
    )
    func cancel(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, _ in
            let key = app.bootstrap.integrationKey
            let run = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            let taskId = try run.decode(RunAccepted.self).taskId.lowercased

            let viewer = try await app.member(role: .viewer)
            #expect(try await app.call(client, .post, "/api/v1/r/tasks/\(taskId)/cancel", token: viewer).status == .forbidden)
            #expect(try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)", token: viewer).status == .ok)

            _ = try await app.waitForTask(client, UUID(uuidString: taskId)!) { $0.status == .waiting }
            let pendingResult = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)/result", token: key).json()
            #expect(
                pendingResult["task_status"]?.stringValue == "waiting" && pendingResult["task_output"] == .null
                    && pendingResult["download_url"] == .null)
            #expect((pendingResult["download_urls"]?.objectValue)?.isEmpty == true)

            let cancelled = try await app.call(client, .post, "/api/v1/r/tasks/\(taskId)/cancel", token: key)
            #expect(cancelled.status == .ok)
            #expect(try cancelled.json()["is_success"]?.boolValue == true)
            let task = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)", token: key).decode(TaskInfo.self)
            #expect(task.status == .cancelled && task.completedAt != nil)
            let again = try await app.call(client, .post, "/api/v1/r/tasks/\(taskId)/cancel", token: key)
            #expect(again.status == .ok)
            #expect(try again.json()["is_success"]?.boolValue == true)
            let events = try #require(
                try await app.storage.taskEvents(taskId: UUID(uuidString: taskId)!, teamId: app.bootstrap.teamId, afterSequence: 0))
            #expect(events.map(\.kind) == [.status, .status, .cancelled])

            let result = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId)/result", token: key).decode(TaskResult.self)
            #expect(result.status == .cancelled && result.output == nil && result.error == "")
        }
    }

    @Test("a failed task's result carries task_error; a completed one its output", arguments: TestBackend.available)
    func results(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, _ in
            let key = app.bootstrap.integrationKey
            var ids: [UUID] = []
            for _ in 0..<2 {
                let run = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
                ids.append(try run.decode(RunAccepted.self).taskId)
            }
            let team = app.bootstrap.teamId
            let now = app.clock.now()
            for event in [TaskStateMachine.Event.assigned, .acknowledged, .succeeded] {
                _ = try await app.storage.applyTaskEvent(id: ids[0], teamId: team, event: event, at: now)
            }
            for event in [TaskStateMachine.Event.assigned, .attemptFailed(retriable: false)] {
                _ = try await app.storage.applyTaskEvent(id: ids[1], teamId: team, event: event, at: now)
            }
            let completed = try await app.call(client, .get, "/api/v1/r/tasks/\(ids[0].lowercased)/result", token: key).json()
            #expect(completed["task_status"]?.stringValue == "completed" && apiInstant(completed["completed_at"]) == now)
            let failed = try await app.call(client, .get, "/api/v1/r/tasks/\(ids[1].lowercased)/result", token: key).json()
            #expect(failed["task_status"]?.stringValue == "failed" && failed["task_output"] == .null)
            let cancelFailed = try await app.call(client, .post, "/api/v1/r/tasks/\(ids[1].lowercased)/cancel", token: key)
            #expect(cancelFailed.status == .ok, "cancelling a finished task is a no-op success")
            #expect(
                try await app.call(client, .get, "/api/v1/r/tasks/\(ids[1].lowercased)", token: key).decode(TaskInfo.self).status == .failed)
        }
    }

    @Test(
        "task list: newest first, status filter, pagination; another team's tasks are invisible and answer 404 like missing ones",
        arguments: TestBackend.available)
    func listAndIsolation(backend: TestBackend) async throws {
        try await Self.withWorkflow(backend) { app, client, _ in
            let key = app.bootstrap.integrationKey
            var ids: [String] = []
            for _ in 0..<3 {
                app.clock.advance(by: 1)
                let run = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
                ids.append(try run.decode(RunAccepted.self).taskId.lowercased)
            }
            for id in ids { _ = try await app.waitForTask(client, UUID(uuidString: id)!) { $0.status == .waiting } }
            _ = try await app.call(client, .post, "/api/v1/r/tasks/\(ids[0])/cancel", token: key)

            let page = try await app.call(client, .get, "/api/v1/r/tasks?per_page=2", token: key).json()
            let items = try #require(page["task_list"]?.arrayValue)
            #expect(items.map { $0["id"]?.stringValue } == [ids[2], ids[1]])
            #expect(items[0]["task_error"] == nil && items[0]["task_status"]?.stringValue == "waiting")
            #expect(page["page_meta"] == ["current_page": 1, "per_page": 2, "total_count": 3])
            let cancelled = try await app.call(client, .get, "/api/v1/r/tasks?status=cancelled", token: key).json()
            #expect((cancelled["task_list"]?.arrayValue)?.map { $0["id"]?.stringValue } == [ids[0]])
            let bad = try await app.call(client, .get, "/api/v1/r/tasks?status=done", token: key)
            #expect(bad.status == .badRequest)
            #expect(
                bad.errorMessage == #"query parameter "status": "done" is not one of pending, waiting, queued, running, completed, failed, cancelled"#
            )
            #expect(try await app.call(client, .get, "/api/v1/r/tasks?per_page=101", token: key).status == .badRequest)

            let other = try await app.otherTeam()
            let list = try await app.call(client, .get, "/api/v1/r/tasks", token: other.integrationKey).json()
            #expect((list["task_list"]?.arrayValue)?.isEmpty == true)
            let missing = UUID().uuidString.lowercased()
            for suffix in ["", "/result"] {
                let theirs = try await app.call(client, .get, "/api/v1/r/tasks/\(ids[1])\(suffix)", token: other.integrationKey)
                let absent = try await app.call(client, .get, "/api/v1/r/tasks/\(missing)\(suffix)", token: other.integrationKey)
                #expect(theirs.status == .notFound && absent.status == .notFound)
                #expect(theirs.errorMessage == absent.errorMessage)
            }
            #expect(try await app.call(client, .post, "/api/v1/r/tasks/\(ids[1])/cancel", token: other.integrationKey).status == .notFound)
            #expect(try await app.call(client, .get, "/api/v1/r/tasks/\(ids[1])", token: key).decode(TaskInfo.self).status == .waiting)
        }
    }
}
