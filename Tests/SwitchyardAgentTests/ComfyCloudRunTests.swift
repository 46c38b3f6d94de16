import Foundation
import HTTPTypes
import HummingbirdTesting
import SwitchyardClient
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@testable import SwitchyardServer

/// Tasks run on Comfy Cloud (the stand-in over the fake ComfyUI): `dispatch_target: comfy_cloud` end to end, its
/// faults, cancel, and `cloud_fallback`.
@Suite("Comfy Cloud runs")
struct ComfyCloudRunTests {
    static let key = "cfy_test_cloud_key_0123456789"

    /// The stand-in with the team's key accepted, a server using it (key set, `invert` imported with a file
    /// parameter), and the owner's session.
    static func withCloud(
        _ backend: TestBackend = .sqlite, fallback: Bool = false, fallbackWait: TimeInterval = 30, comfy: FakeComfyUI.Options = .init(),
        pollInterval: TimeInterval = 0.02,
        _ body: @escaping @Sendable (FakeComfyCloud, TestApp, any TestClientProtocol, String) async throws -> Void
    ) async throws {
        try await FakeComfyCloud.with(comfy: comfy) { cloud in
            await cloud.accept(key)
            try await TestApp.with(
                backend, live: true,
                configure: {
                    $0.cloud.comfyBaseURL = cloud.baseURL
                    $0.cloud.pollInterval = pollInterval
                    $0.cloud.fallbackWait = fallbackWait
                    $0.cloud.comfyConcurrency = 2
                }
            ) { app, client in
                let session = try await app.ownerSession(client)
                let put = try await app.call(
                    client, .put, "/api/v1/cloud-providers/comfy-cloud", token: session, team: app.bootstrap.teamId,
                    body: #"{"api_key":"\#(key)","cloud_fallback":\#(fallback)}"#)
                #expect(put.status == .ok)
                _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(withFile: true))
                try await body(cloud, app, client, session)
            }
        }
    }

    static func terminal(_ task: TaskInfo) -> Bool { task.status.isTerminal }

    @Test(
        "comfy_cloud: the input goes up as an asset, the job runs, the output lands in our store keyed by output id", arguments: TestBackend.available
    )
    func endToEnd(backend: TestBackend) async throws {
        try await Self.withCloud(backend) { cloud, app, client, _ in
            let photo = try await app.upload(client, token: app.bootstrap.integrationKey, fileName: "photo.png", bytes: Array("pixels".utf8))
            let id = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud","parameters":{"photo":"\#(photo)"}}"#)
            let task = try await app.waitForTask(client, id, Self.terminal)
            #expect(task.status == .completed, "\(task)")
            #expect(task.agentId == "comfy-cloud")
            #expect(try await app.taskJSON(client, id)["dispatch_target"] == "comfy_cloud")

            let result = try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey)
            let body = try result.json()
            let urls = try #require(body["download_urls"]?.stringDictionary)
            let (outputId, url) = try #require(urls.first)
            #expect(outputId == "3.images.0")
            #expect(url.hasPrefix("http://127.0.0.1"))
            // The bytes are ComfyUI's output file, fetched from our store.
            let stored = try await app.get(url)
            let name = try #require(body["task_output"]?["outputs"]?[outputId]?["file_name"]?.stringValue)
            let original = await cloud.comfy.file(type: "output", subfolder: "scout", filename: name)
            #expect(
                stored == original,
                "\(name): \(stored.count) bytes stored, \(original?.count ?? -1) in ComfyUI: \(String(decoding: stored.prefix(200), as: UTF8.self))")
            #expect(await cloud.credentialsSentToStorage() == 0)
            let requests = await cloud.requests()
            #expect(requests.filter { $0 == "POST /api/v2/assets" }.count == 1)
            #expect(requests.filter { $0 == "POST /api/v2/jobs" }.count == 1)
            #expect(requests.contains { $0.hasPrefix("GET /api/v2/assets/") && $0.hasSuffix("/content") })
            #expect(requests.contains("GET /storage"))
            // Progress came from the job's event stream (one per job), the outcome from the job's own read.
            #expect(await cloud.eventStreamsOpened() == 1)
            #expect(requests.contains { $0.hasPrefix("GET /api/v2/jobs/") && $0.hasSuffix("/events") })
            #expect(!requests.contains("POST /api/interrupt"))
        }
    }

    @Test("submission refuses comfy_cloud without a key, with a revoked key, and for a Nerfstudio workflow")
    func refusals() async throws {
        try await FakeComfyCloud.with { cloud in
            try await TestApp.with(.sqlite, configure: { $0.cloud.comfyBaseURL = cloud.baseURL }) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
                let run = #"{"dispatch_target":"comfy_cloud"}"#
                let none = try await app.call(client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: run)
                #expect(none.status == .badRequest)
                #expect(none.errorMessage?.contains("none is set") == true)
                await cloud.accept(Self.key)
                _ = try await app.call(
                    client, .put, "/api/v1/cloud-providers/comfy-cloud", token: session, team: app.bootstrap.teamId,
                    body: #"{"api_key":"\#(Self.key)"}"#)
                let credential = try #require(try await app.storage.cloudCredential(teamId: app.bootstrap.teamId, provider: .comfyCloud))
                _ = try await app.storage.setCloudCredentialStatus(
                    teamId: app.bootstrap.teamId, provider: .comfyCloud, sealedKey: credential.sealedKey, status: .revoked, message: "refused",
                    at: app.clock.now())
                let revoked = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: run)
                #expect(revoked.status == .badRequest)
                #expect(revoked.errorMessage?.contains("revoked") == true)
            }
        }
    }

    @Test(
        "faults: a full queue is waited out; no credits fails; a lost job runs again (counted as a retry); a refused key fails and revokes the credential"
    )
    func faults() async throws {
        try await Self.withCloud { cloud, app, client, session in
            // 429 twice, then accepted: the task completes, the submission tried three times.
            await cloud.inject(.queueFull(count: 2))
            let queued = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud"}"#)
            #expect(try await app.waitForTask(client, queued, Self.terminal).status == .completed)
            #expect((await cloud.requests()).filter { $0 == "POST /api/v2/jobs" }.count == 3)

            await cloud.inject(.noCredits)
            let broke = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud"}"#)
            let failed = try await app.waitForTask(client, broke, Self.terminal)
            #expect(failed.status == .failed)
            #expect(failed.error?.contains("Comfy Cloud: out of credits") == true)
            await cloud.inject(nil)

            // The service loses the job once: the attempt fails as a lost agent's would and the task runs again.
            await cloud.inject(.loseRunningJobs(count: 1))
            let lost = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud"}"#)
            let rerun = try await app.waitForTask(client, lost, Self.terminal)
            #expect(rerun.status == .completed, "\(rerun)")
            #expect(rerun.retryCount == 1)

            await cloud.revoke(Self.key)
            let refused = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud"}"#)
            let ended = try await app.waitForTask(client, refused, Self.terminal)
            #expect(ended.status == .failed)
            #expect(ended.error?.contains("refused the team's key (401)") == true)
            let status = try await app.call(client, .get, "/api/v1/cloud-providers/comfy-cloud", token: session, team: app.bootstrap.teamId).json()
            #expect(status["credential_status"] == "revoked")
            #expect(status["status_message"]?.stringValue?.contains("401") == true)

            // A new key: the runner takes work again.
            await cloud.accept("cfy_the_new_key_0123456789")
            let put = try await app.call(
                client, .put, "/api/v1/cloud-providers/comfy-cloud", token: session, team: app.bootstrap.teamId,
                body: #"{"api_key":"cfy_the_new_key_0123456789"}"#)
            #expect(try put.json()["credential_status"] == "active")
            let again = try await app.run(client, body: #"{"dispatch_target":"comfy_cloud"}"#)
            #expect(try await app.waitForTask(client, again, Self.terminal).status == .completed)
        }
    }

    @Test("a running cloud task's progress comes from the job's event stream; cancel stops that job only (v2 cancel, never /api/interrupt)")
    func cancel() async throws {
        // Polling is slowed to a crawl: progress can only come from the event stream.
        try await Self.withCloud(comfy: .init(progressTick: .milliseconds(20)), pollInterval: 30) { cloud, app, client, session in
            let sleeping = #"""
                {"workflow_slug":"sleep","display_name":"Sleep","tool_type":"comfyui","required_labels":[],"task_timeout":300,
                 "workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":65280}},
                                  "2":{"class_type":"TestSleep","inputs":{"value":["1",0],"seconds":30.0}},
                                  "3":{"class_type":"SaveImage","inputs":{"images":["2",0],"filename_prefix":"sleep"}}},
                 "parameters":[]}
                """#
            _ = try await app.importWorkflow(client, session: session, body: sleeping)
            let id = try await app.run(client, slug: "sleep", body: #"{"dispatch_target":"comfy_cloud"}"#)
            var cancelled = false
            _ = try await app.followEvents(port: client.port!, id) { text in
                // The TestSleep node's steps, as the stream reports them.
                guard !cancelled, text.contains("event: progress"), text.contains(#""current_node":"2""#) else { return }
                cancelled = true
                let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(id.lowercased)/cancel", token: app.bootstrap.integrationKey)
                #expect(cancel.status == .ok)
            }
            #expect(cancelled)
            let stopped = try await app.follow(
                id, read: { try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey).json() },
                until: { $0["stopped_at"]?.stringValue != nil })
            #expect(stopped["task_status"] == "cancelled")
            let requests = await cloud.requests()
            #expect(requests.contains { $0.hasPrefix("POST /api/v2/jobs/") && $0.hasSuffix("/cancel") })
            #expect(!requests.contains("POST /api/interrupt"))
        }
    }

    @Test("cloud_fallback: no agent connected → the cloud; an agent connected → the agent; a busy agent → the cloud after the wait")
    func fallback() async throws {
        try await Self.withCloud(fallback: true, fallbackWait: 1) { cloud, app, client, _ in
            let alone = try await app.run(client)
            let ranInCloud = try await app.waitForTask(client, alone, Self.terminal)
            #expect(ranInCloud.status == .completed && ranInCloud.agentId == "comfy-cloud", "\(ranInCloud)")
            #expect(try await app.taskJSON(client, alone)["dispatch_target"] == "agent")

            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let id = try await app.run(client)
                let offer = try await agent.offer()
                #expect(offer.taskId == id.lowercased)
                // The agent holds its one slot: the next task waits, then goes to the cloud after the wait.
                let second = try await app.run(client)
                let waiting = try await app.task(client, second)
                #expect(waiting.status == .waiting)
                app.clock.advance(by: 2)
                await app.built.dispatcher.tick()
                let moved = try await app.waitForTask(client, second, Self.terminal)
                #expect(moved.agentId == "comfy-cloud" && moved.status == .completed, "\(moved)")
                #expect(await cloud.jobsCreated() == 2)
            }
        }
    }
}

/// Comfy Cloud's input limits, checked when the run is submitted.
@Suite("Comfy Cloud input limits")
struct ComfyCloudLimitTests {
    static func png(_ width: Int, _ height: Int) -> [UInt8] {
        func be32(_ value: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) } }
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + Array("IHDR".utf8) + be32(width) + be32(height) + [8, 6, 0, 0, 0]
    }

    @Test("image sizes from headers: PNG, JPEG (after other segments), GIF, WebP (VP8X, VP8L, VP8); nil for anything else")
    func headers() {
        #expect(ImageSize.of(Self.png(640, 480))! == (640, 480))
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, 0xC2, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]
        #expect(ImageSize.of(jpeg)! == (640, 480))
        #expect(ImageSize.of(Array("GIF89a".utf8) + [0x80, 0x02, 0xE0, 0x01])! == (640, 480))
        let riff = Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WEBP".utf8)
        #expect(ImageSize.of(riff + Array("VP8X".utf8) + [10, 0, 0, 0] + [0, 0, 0, 0] + [0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00])! == (640, 480))
        let lossless = (639) | (479 << 14)
        #expect(
            ImageSize.of(riff + Array("VP8L".utf8) + [0, 0, 0, 0, 0x2F] + [0, 8, 16, 24].map { UInt8((lossless >> $0) & 0xFF) })! == (640, 480))
        #expect(ImageSize.of(riff + Array("VP8 ".utf8) + [0, 0, 0, 0] + [0, 0, 0, 0x9D, 0x01, 0x2A] + [0x80, 0x02, 0xE0, 0x01])! == (640, 480))
        #expect(ImageSize.of(Array("not an image".utf8)) == nil)
        #expect(ImageSize.of(Array(Self.png(1, 1).prefix(18))) == nil)
    }

    @Test("a comfy_cloud run refuses an input over 50 MB, over 16,384 px per edge or over 64 MP with a 400 naming the parameter")
    func limits() async throws {
        try await ComfyCloudRunTests.withCloud { _, app, client, _ in
            let cases: [([UInt8], String)] = [
                (Self.png(16_385, 10), "at most 16384 px per edge"),
                (Self.png(8_193, 8_193), "at most 67108864 px (64 MP)"),
                (Self.png(1, 1) + [UInt8](repeating: 0, count: 50 * 1024 * 1024), "at most 52428800 bytes (50 MB)"),
            ]
            for (bytes, needle) in cases {
                let key = try await app.upload(client, token: app.bootstrap.integrationKey, bytes: bytes)
                let body = #"{"dispatch_target":"comfy_cloud","parameters":{"photo":"\#(key)"}}"#
                let response = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: body)
                #expect(response.status == .badRequest)
                #expect(
                    response.errorMessage?.contains("parameter \"photo\"") == true && response.errorMessage?.contains(needle) == true,
                    "\(response.errorMessage ?? "")")
                // The same file runs on an agent (no such limits there): accepted.
                let agent = try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey,
                    body: #"{"parameters":{"photo":"\#(key)"}}"#)
                #expect(agent.status == .accepted)
            }
        }
    }
}
