import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardObjectStore
import SwitchyardTestSupport
import Testing

@Suite("Retention")
struct RetentionTests {
    @Test("inputs go a day after upload, not before; the sweep is recorded", arguments: TestBackend.available)
    func inputs(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let key = try await app.upload(client, token: app.bootstrap.integrationKey)
            let s3 = app.built.reaper.client
            app.clock.advance(by: 86_400 - 60)
            #expect(await app.built.reaper.sweep().inputsDeleted == 0)
            #expect(try await s3.headObject(key: key) != nil)
            app.clock.advance(by: 61)
            let sweep = await app.built.reaper.sweep()
            #expect(sweep.inputsDeleted == 1 && sweep.error == nil)
            #expect(try await s3.headObject(key: key) == nil)
            #expect(try await app.storage.retentionSweeps(limit: 1) == [sweep])
        }
    }

    @Test("outputs go a week after completion; the result then says they expired instead of handing out URLs", arguments: TestBackend.available)
    func outputs(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            let key = app.bootstrap.integrationKey
            let run = try await app.call(
                client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key, body: #"{"parameters":{"prompt":"x"}}"#)
            let taskId = try run.decode(RunAccepted.self).taskId
            let team = app.bootstrap.teamId
            // No agent is connected: the dispatcher parks the task in waiting; the test plays the agent's part.
            _ = try await app.waitForTask(client, taskId) { $0.status == .waiting }
            for event in [TaskStateMachine.Event.assigned, .acknowledged, .succeeded] {
                _ = try await app.storage.applyTaskEvent(id: taskId, teamId: team, event: event, at: app.clock.now())
            }
            let s3 = app.built.reaper.client
            let outputs = [
                "outputs/\(team.lowercased)/\(taskId.lowercased)/9.images.0.png", "outputs/\(team.lowercased)/\(taskId.lowercased)/log.txt",
            ]
            for output in outputs { try await s3.putObject(key: output, body: [1, 2, 3]) }
            let unrelated = "outputs/\(team.lowercased)/\(UUID().uuidString.lowercased())/keep.png"
            try await s3.putObject(key: unrelated, body: [4])

            let fresh = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: key).json()
            #expect(fresh["task_status"]?.stringValue == "completed" && fresh["outputs_expired_at"] == nil)
            app.clock.advance(by: 6 * 86_400)
            #expect(await app.built.reaper.sweep().outputsExpired == 0)
            app.clock.advance(by: 86_400 + 1)
            let due = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: key).json()
            #expect(due["outputs_expired_at"]?.stringValue != nil, "past retention the result says so even before the sweep")
            let sweep = await app.built.reaper.sweep()
            #expect(sweep.outputsExpired == 1)
            for output in outputs { #expect(try await s3.headObject(key: output) == nil) }
            #expect(try await s3.headObject(key: unrelated) != nil)
            let expired = try await app.call(client, .get, "/api/v1/r/tasks/\(taskId.lowercased)/result", token: key).json()
            #expect(apiInstant(expired["outputs_expired_at"]) == app.clock.now())
            #expect(expired["download_url"] == .null && (expired["outputs_message"]?.stringValue)?.contains("expired") == true)
            #expect(await app.built.reaper.sweep().outputsExpired == 0, "a task's outputs expire once")
        }
    }

    @Test("multipart uploads left open a day are aborted")
    func multipart() async throws {
        try await TestApp.with(.sqlite) { app, _ in
            let s3 = app.built.reaper.client
            let uploadId = try await s3.createMultipartUpload(key: "models/x/y")
            app.clock.advance(by: 3_600)
            let recent = try await s3.createMultipartUpload(key: "models/x/z")
            app.clock.advance(by: 86_400 - 3_600 + 1)
            #expect(await app.built.reaper.sweep().uploadsAborted == 1)
            #expect(try await s3.listMultipartUploads(prefix: "").map(\.uploadId) == [recent])
            #expect(uploadId != recent)
        }
    }
}
