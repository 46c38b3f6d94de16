import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardClient

/// The typed SDK against a live `serve`, an agent and the fake ComfyUI: what a caller of the API does with it.
@Suite("Client SDK")
struct ClientSDKTests {
    /// The repository's example workflow (the README's tour imports it).
    static var exampleWorkflow: JSONValue {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            return try JSONValue.parse(Array(try Data(contentsOf: root.appendingPathComponent("examples/workflows/invert.json"))))
        }
    }

    /// `serve` with an agent on the fake ComfyUI; the owner's session client and an `sk-` client.
    static func withServer(_ body: @escaping @Sendable (TestApp, FakeComfyUI, SwitchyardClient, SwitchyardClient) async throws -> Void) async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let server = "http://127.0.0.1:\(client.port!)"
                let owner = try await SwitchyardClient.signIn(
                    server: server, emailAddress: app.bootstrap.emailAddress, password: app.bootstrap.password,
                    teamId: app.bootstrap.teamId.lowercased)
                let caller = SwitchyardClient(server: server + "/api/v1/", token: app.bootstrap.integrationKey)
                try await EndToEndTests.withAgent(app, client, comfyUI: fake.baseURL) {
                    // Bounded: the SDK follows a task as long as it lives, so a task that never ends would hold the run.
                    try await withDeadline(.seconds(120)) { try await body(app, fake, owner, caller) }
                }
            }
        }
    }

    @Test("the example workflow imports, runs and completes; events arrive in order; outputs download byte-equal to ComfyUI's")
    func runAndDownload() async throws {
        try await Self.withServer { _, fake, owner, caller in
            let (workflowId, version) = try await owner.importWorkflow(try Self.exampleWorkflow)
            #expect(version == 1)
            let shown = try await caller.workflow(slug: "invert")
            #expect(shown.id == workflowId && shown.parameters.map(\.key) == ["color", "width", "height"] && shown.graph == nil)
            #expect(try await owner.workflow(id: workflowId).graph?["3"]?["class_type"] == "SaveImage")

            let taskId = try await caller.run(workflow: "invert", parameters: ["color": 255, "width": 64, "height": 32])
            let seen = Mutex<[TaskEvent]>([])
            let finished = try await caller.wait(for: taskId) { event in seen.withLock { $0.append(event) } }
            #expect(finished.status == .completed && finished.parameters?["color"] == 255)
            let events = seen.withLock { $0 }
            let numbered = events.compactMap(\.id)
            #expect(events.first?.kind == "status" && events.last?.kind == "completed" && numbered == numbered.sorted())
            let statuses = Set(events.filter { $0.kind == "status" }.compactMap { $0.data["status"]?.stringValue })
            #expect(statuses.isSuperset(of: ["pending", "running"]))

            let result = try await caller.result(task: taskId)
            #expect(result.status == .completed && result.downloadURLs.keys.sorted() == ["3.images.0"] && result.downloadURL != nil)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sdk-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let paths = try await caller.downloadOutputs(task: taskId, into: directory)
            let name = try #require(result.fileNames["3.images.0"])
            #expect(paths == [directory + "/" + name])
            let expected = await fake.file(type: "output", subfolder: "switchyard", filename: name)
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: paths[0]))) == expected)
            #expect(try await caller.tasks(status: .completed).items.map(\.id) == [taskId])
        }
    }

    @Test("refusals are typed errors carrying the server's error_message: 400, 404, 401")
    func typedErrors() async throws {
        try await Self.withServer { _, _, owner, caller in
            _ = try await owner.importWorkflow(try Self.exampleWorkflow)
            let invalid = await #expect(throws: SwitchyardAPIError.self) {
                try await caller.run(workflow: "invert", parameters: ["color": 99_999_999])
            }
            #expect(invalid?.status == 400 && invalid?.message == #"parameter "color": 99999999 is above max 16777215"#)
            let missing = await #expect(throws: SwitchyardAPIError.self) { try await caller.task(id: UUID()) }
            #expect(missing?.isNotFound == true && missing?.message == "task not found")
            let stranger = SwitchyardClient(server: caller.server, token: "sk-0000000000000000000000000000000000000000")
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await stranger.agents() }
            #expect(refused?.isAuthorization == true && refused?.status == 401)
            // A runtime key cannot manage workflows: 403 with the rule.
            let forbidden = await #expect(throws: SwitchyardAPIError.self) { try await caller.importWorkflow(try Self.exampleWorkflow) }
            #expect(forbidden?.isAuthorization == true)
        }
    }

    @Test("keys: a session creates one (its secret once), lists it, revokes it; the revoked key is refused; a key cannot manage keys")
    func keys() async throws {
        try await Self.withServer { _, _, owner, caller in
            let created = try await owner.createCredential(kind: "integration", displayName: "sdk test", expiresInDays: 30)
            let secret = try #require(created.rawKey)
            #expect(secret.hasPrefix("sk-") && created.keyPrefix == String(secret.prefix(12)))
            let fresh = SwitchyardClient(server: caller.server, token: secret)
            #expect(try await fresh.agents().items.map(\.agentId) == ["e2e-gpu"])
            let listed = try await owner.credentials(kind: "integration").items.first { $0.id == created.id }
            #expect(listed?.status == "active" && listed?.rawKey == nil && listed?.displayName == "sdk test")
            try await owner.revokeCredential(id: created.id)
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await fresh.agents() }
            #expect(refused?.status == 401)
            let forbidden = await #expect(throws: SwitchyardAPIError.self) { try await caller.credentials() }
            #expect(forbidden?.isAuthorization == true)
        }
    }

    @Test("following resumes after Last-Event-ID: only later events, ending with the terminal one")
    func resume() async throws {
        try await Self.withServer { _, _, owner, caller in
            _ = try await owner.importWorkflow(try Self.exampleWorkflow)
            let taskId = try await caller.run(workflow: "invert")
            var all: [TaskEvent] = []
            for try await event in caller.events(task: taskId) { all.append(event) }
            let cut = try #require(all.first?.id)
            var later: [TaskEvent] = []
            for try await event in caller.events(task: taskId, after: cut) { later.append(event) }
            #expect(later == Array(all.dropFirst()).filter { $0.id != nil })
            #expect(later.last?.isTerminal == true)
        }
    }

    @Test("an input file uploads by presigned PUT and feeds a run; a model uploads whole or in parts and registers with its digest")
    func uploads() async throws {
        try await Self.withServer { app, fake, owner, caller in
            _ = try await owner.importWorkflow(try JSONValue.parse(try TestApp.invertImport(slug: "photo", labels: ["comfyui"], withFile: true)))
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sdk-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let photo = directory.appendingPathComponent("cat.png")
            let bytes = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try Data(bytes).write(to: photo)
            let reported = Mutex<[Int64]>([])
            let fileKey = try await caller.uploadFile(at: photo.path) { sent, total in
                #expect(total == 3_000_000)
                reported.withLock { $0.append(sent) }
            }
            #expect(reported.withLock { $0.last } == 3_000_000 && reported.withLock { $0 } == reported.withLock { $0 }.sorted())
            #expect(fileKey.hasSuffix("/cat.png") && fileKey.contains("/aW1hZ2UvcG5n/"))
            let taskId = try await caller.run(workflow: "photo", parameters: ["photo": .string(fileKey)])
            let ran = try await caller.wait(for: taskId)
            #expect(ran.status == .completed && ran.parameters?["photo"] == .string(fileKey))

            let model = try await owner.uploadModel(at: photo.path, displayName: "Cat LoRA", modelType: "loras", modelPath: "cats/cat.safetensors")
            #expect(model.status == "active" && model.fileSize == 3_000_000 && model.modelPath == "cats/cat.safetensors")
            #expect(model.fileHash == "sha256:" + (try await FileUpload.sha256(of: photo.path)))

            // The multipart path, as a file past the single-PUT cap takes it.
            struct Presigned: Decodable { let storage_key: String }
            let presigned: Presigned = try await owner.send(
                .POST, "/models/presign",
                json: JSONValue.object([
                    "file_name": "big.safetensors", "file_size": 3_000_000, "model_type": "checkpoints", "model_path": "big.safetensors",
                ]))
            let progress = Mutex<Int64>(0)
            try await owner.uploadMultipart(path: photo.path, size: 3_000_000, storageKey: presigned.storage_key) { sent, _ in
                progress.withLock { $0 = sent }
            }
            #expect(progress.withLock { $0 } == 3_000_000)
            let registered: Created = try await owner.send(
                .POST, "/models",
                json: JSONValue.object([
                    "display_name": "Big", "model_type": "checkpoints", "storage_key": .string(presigned.storage_key), "file_size": 3_000_000,
                    "model_path": "big.safetensors",
                    "file_hash": .string("sha256:" + (try await FileUpload.sha256(of: photo.path))),
                ]), expecting: [201])
            #expect(try await owner.models().items.contains { $0.id == registered.id && $0.status == "active" })
            _ = (app, fake)
        }
    }

    @Test("a model upload that stopped after its first part resumes: only the missing part is sent, then it registers")
    func resumedModelUpload() async throws {
        try await Self.withServer { _, _, owner, _ in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sdk-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let file = directory.appendingPathComponent("big.safetensors").path
            let size = 100 * 1024 * 1024 + 4096
            // 1 MiB of a pattern, each copy stamped with its index (cheap to make in a debug build; no two parts alike).
            let mebibyte = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) })
            var bytes = Data(capacity: size)
            for index in 0..<100 {
                var chunk = mebibyte
                chunk.replaceSubrange(0..<8, with: withUnsafeBytes(of: index) { Data($0) })
                bytes.append(chunk)
            }
            bytes.append(mebibyte.prefix(4096))
            try bytes.write(to: URL(fileURLWithPath: file))
            // What an interrupted upload leaves: a presigned key, an open multipart upload with its first part, the journal.
            struct Presigned: Decodable { let storage_key: String }
            struct Initiated: Decodable {
                let upload_id: String
                let part_size: Int
                let part_count: Int
            }
            struct Parts: Decodable {
                struct Part: Decodable { let url: String }
                let parts: [Part]
            }
            let presigned: Presigned = try await owner.send(
                .POST, "/models/presign",
                json: JSONValue.object([
                    "file_name": "big.safetensors", "file_size": .number(JSONNumber(size)), "model_type": "checkpoints",
                    "model_path": "big.safetensors",
                ]))
            let initiated: Initiated = try await owner.send(
                .POST, "/uploads/multipart/initiate",
                json: JSONValue.object(["storage_key": .string(presigned.storage_key), "file_size": .number(JSONNumber(size))]))
            #expect(initiated.part_count == 2)
            let parts: Parts = try await owner.send(
                .POST, "/uploads/multipart/presign-parts",
                json: JSONValue.object([
                    "storage_key": .string(presigned.storage_key), "upload_id": .string(initiated.upload_id), "part_numbers": [1],
                ]))
            let etag = try await FileUpload.put(
                path: file, size: Int64(initiated.part_size), url: try #require(parts.parts.first).url, headers: [:], http: .shared
            ) { _ in }
            try UploadJournal(
                storageKey: presigned.storage_key, uploadId: initiated.upload_id, partSize: initiated.part_size, partCount: 2,
                fileSize: Int64(size), modified: try #require(UploadJournal.modified(file)), etags: ["1": etag]
            ).save(for: file)

            let reported = Mutex<[Int64]>([])
            let model = try await owner.uploadModel(at: file, displayName: "Big", modelType: "checkpoints", modelPath: "big.safetensors") {
                sent, _ in reported.withLock { $0.append(sent) }
            }
            let sent = reported.withLock { $0 }
            #expect(sent.first == Int64(initiated.part_size) && sent.last == Int64(size), "only the second part went: \(sent.prefix(3))…")
            #expect(model.status == "active" && model.fileSize == size && model.storageKey == presigned.storage_key)
            #expect(model.fileHash == "sha256:" + (try await FileUpload.sha256(of: file)))
            #expect(!FileManager.default.fileExists(atPath: UploadJournal.path(for: file)))
        }
    }

    @Test("429 and 503 are retried after Retry-After (or the backoff); past the attempts the refusal is the answer")
    func retries() async throws {
        let answered = Mutex(0)
        let router = Router()
        router.get("/api/v1/r/agents") { _, _ -> Response in
            let count = answered.withLock { count in
                count += 1
                return count
            }
            switch count {
            case 1:
                return Response(
                    status: .tooManyRequests, headers: [.retryAfter: "0"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error_message":"slow down"}"#)))
            case 2: return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: #"{"error_message":"busy"}"#)))
            case 3:
                return Response(
                    status: .ok,
                    body: .init(byteBuffer: ByteBuffer(string: #"{"agent_list":[],"page_meta":{"current_page":1,"per_page":50,"total_count":0}}"#)))
            default:
                return Response(
                    status: .tooManyRequests, headers: [.retryAfter: "0"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error_message":"slow down"}"#)))
            }
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let retry = SwitchyardClient.RetryPolicy(attempts: 3, initialDelay: .milliseconds(1), maximumDelay: .milliseconds(5))
            let sdk = SwitchyardClient(server: "http://127.0.0.1:\(client.port!)", token: "sk-x", retry: retry)
            let listed = try await sdk.agents()
            #expect(listed.totalCount == 0)
            #expect(answered.withLock { $0 } == 3)
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await sdk.agents() }
            #expect(refused?.status == 429 && refused?.message == "slow down" && answered.withLock { $0 } == 6)
        }
    }

    @Test("the event-stream reader: fields, multi-line data, comments, CRLF, events split across reads")
    func serverSentEvents() {
        var parser = ServerSentEvents()
        let text = "retry: 3000\n\n: keep-alive\n\nid: 1\r\nevent: status\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 2\nevent: prog"
        let first = parser.feed(Array(text.utf8))
        #expect(first == [.init(retry: 3000), .init(id: 1, kind: "status", data: "{\"a\":\n1}")])
        #expect(parser.feed(Array("ress\ndata: x\n\n".utf8)) == [.init(id: 2, kind: "progress", data: "x")])
    }
}
