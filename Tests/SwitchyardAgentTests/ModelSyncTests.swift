import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SwitchyardConcurrency
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

@testable import SwitchyardAgent

/// The agent's model sync against a store on a loopback port that can hold a body halfway, drop a connection,
/// refuse an expired URL and answer ranges, as S3 does.
@Suite("Agent model sync")
struct ModelSyncTests {
    /// What the stub store does with a file.
    enum Behaviour: Sendable {
        case whole
        /// Sends this many bytes, then waits for the latch.
        case pause(at: Int, AsyncLatch)
        /// The first request gets this many bytes, then the connection drops; later ones are answered.
        case drop(at: Int)
        case forbidden
    }

    final class Store: Sendable {
        struct File: Sendable {
            var bytes: [UInt8]
            var behaviour: Behaviour
        }

        private let files: Mutex<[String: File]>
        /// Each GET: the file's name and its Range header.
        private let requests = Mutex<[(name: String, range: String?)]>([])

        init(_ files: [String: File]) { self.files = Mutex(files) }

        var seen: [(name: String, range: String?)] { requests.withLock { $0 } }

        func run(_ body: @Sendable (_ base: String) async throws -> Void) async throws {
            let router = Router()
            router.get("m/{name}") { request, context -> Response in
                let name = try context.parameters.require("name")
                let range = request.headers[.range]
                let first = self.requests.withLock { requests in
                    requests.append((name, range))
                    return requests.filter { $0.name == name }.count == 1
                }
                guard let file = self.files.withLock({ $0[name] }) else { return Response(status: .notFound) }
                if case .forbidden = file.behaviour { return Response(status: .forbidden) }
                var start = 0
                var status = HTTPResponse.Status.ok
                var headers: HTTPFields = [:]
                if let range, let from = Int(range.dropFirst("bytes=".count).dropLast()) {
                    start = from
                    status = .partialContent
                    headers[.contentRange] = "bytes \(from)-\(file.bytes.count - 1)/\(file.bytes.count)"
                }
                let rest = Array(file.bytes[start...])
                let from = start
                let body = ResponseBody(contentLength: rest.count) { writer in
                    switch file.behaviour {
                    case .pause(let at, let latch) where from < at:
                        try await writer.write(ByteBuffer(bytes: rest[..<(at - from)]))
                        try await latch.wait()
                        try await writer.write(ByteBuffer(bytes: rest[(at - from)...]))
                    case .drop(let at) where first:
                        try await writer.write(ByteBuffer(bytes: rest[..<at]))
                        throw CancellationError()
                    default:
                        try await writer.write(ByteBuffer(bytes: rest))
                    }
                    try await writer.finish(nil)
                }
                return Response(status: status, headers: headers, body: body)
            }
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in try await body("http://127.0.0.1:\(client.port!)") }
        }
    }

    /// `serve` (SQLite, live) with an owner session, and a fake ComfyUI whose models folder is a fresh temporary one.
    static func withServeAndComfyUI(
        _ body: @escaping @Sendable (TestApp, any TestClientProtocol, String, FakeComfyUI, URL) async throws -> Void
    ) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-e2e-models-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        try await FakeComfyUI.with(.init(modelsRoot: root.path)) { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                try await body(app, client, try await app.ownerSession(client), fake, root)
            }
        }
    }

    static func bytes(_ count: Int) -> [UInt8] {
        var random = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    static func digest(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    static func entry(_ id: UUID, _ placement: String, _ bytes: [UInt8], url: String, hash: String? = nil) -> GatewayMessage.ModelEntry {
        GatewayMessage.ModelEntry(
            modelId: id.uuidString.lowercased(), displayName: placement, placement: placement, fileSize: Int64(bytes.count),
            fileHash: hash ?? digest(bytes), url: url, urlExpiresAt: Date().addingTimeInterval(3600))
    }

    /// A sync fetching one 2 MiB model at `placement` from a store that holds the second half back until the latch
    /// opens; `body` runs once the sync reported it halfway (with that progress).
    static func withHalfwayDownload(
        _ placement: String,
        _ body: @escaping @Sendable (ModelSync, Events, URL, UUID, [UInt8], AsyncLatch, SyncProgress) async throws -> Void
    ) async throws {
        let latch = AsyncLatch()
        let model = Self.bytes(2 << 20)
        let store = Store(["a": .init(bytes: model, behaviour: .pause(at: 1 << 20, latch))])
        try await store.run { base in
            try await Self.withSync { sync, events, root in
                let id = UUID()
                await sync.update(.init(models: [Self.entry(id, placement, model, url: "\(base)/m/a")]))
                // Reports move in steps of at least half a percent: the one that shows the store's pause at 50 % may be
                // 49.8 % (the last before the pause, with the 0.2 % after it too small a step to send).
                let half = try await events.next { event -> SyncProgress? in
                    if case .progress(let progress?) = event, progress.fraction >= 0.45 { progress } else { nil }
                }
                try await body(sync, events, root, id, model, latch, half)
            }
        }
    }

    /// A sync on a fresh root, and its events one by one.
    static func withSync(grace: Duration = .zero, _ body: (ModelSync, Events, URL) async throws -> Void) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-sync-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let sync = ModelSync(cache: try ModelCache(root: root), removalGrace: grace, logger: Logger(label: "model-sync-test"))
        try await body(sync, Events(sync.events.makeAsyncIterator()), root)
    }

    /// Reads a sync's events in order.
    final class Events {
        private var iterator: AsyncStream<ModelSync.Event>.Iterator

        init(_ iterator: AsyncStream<ModelSync.Event>.Iterator) { self.iterator = iterator }

        /// The next event `match` accepts; the events before it are passed to `skipped`.
        func next<T>(_ match: (ModelSync.Event) -> T?, skipped: (ModelSync.Event) -> Void = { _ in }) async throws -> T {
            while let event = await iterator.next() {
                if let value = match(event) { return value }
                skipped(event)
            }
            throw TestSupportError("the sync's events ended")
        }

        func holdings(where accept: (AgentMessage.ModelsHeld) -> Bool) async throws -> AgentMessage.ModelsHeld {
            try await next { if case .holdings(let held) = $0, accept(held) { held } else { nil } }
        }
    }

    @Test(
        "missing models are fetched while the agent reports syncing with a rising percent and a readable detail, then held; one that leaves the set is removed after the grace"
    )
    func syncAndRemove() async throws {
        try await Self.withHalfwayDownload("loras/style.safetensors") { sync, events, root, _, model, latch, half in
            // Halfway (the store holds the rest back): syncing, with what it fetches and how far it is.
            #expect(half.phase == .downloading && half.fraction < 1)
            #expect(half.detail == "Downloading model loras/style.safetensors (2.1 MB)")
            latch.open()
            var fractions = [half.fraction]
            _ = try await events.next({ event -> Bool? in if case .progress(nil) = event { true } else { nil } }) { event in
                if case .progress(let progress?) = event { fractions.append(progress.fraction) }
            }
            #expect(fractions == fractions.sorted(), "never backwards")
            let held = try await events.holdings { $0.held == ["loras/style.safetensors"] }
            #expect(held.broken.isEmpty)
            let file = root.appendingPathComponent("loras/style.safetensors")
            #expect(try Data(contentsOf: file) == Data(model))

            // Gone from the set: removed (the grace is zero here), and reported.
            await sync.update(.init(models: []))
            _ = try await events.holdings { $0.held.isEmpty }
            #expect(!FileManager.default.fileExists(atPath: file.path))
        }
    }

    @Test("a model deleted while it downloads: the download stops and its partial file is removed")
    func deletedMidDownload() async throws {
        try await Self.withHalfwayDownload("checkpoints/a.safetensors") { sync, events, root, id, _, latch, _ in
            let partial = root.appendingPathComponent(".switchyard/partial/\(id.uuidString.lowercased())")
            #expect(FileManager.default.fileExists(atPath: partial.path))
            await sync.update(.init(models: []))
            _ = try await events.next { event -> Bool? in if case .progress(nil) = event { true } else { nil } }
            #expect(!FileManager.default.fileExists(atPath: partial.path))
            #expect(await sync.held.isEmpty)
            latch.open()
        }
    }

    @Test("a dropped connection resumes with Range from what the partial file holds; an expired URL is exchanged for a fresh one")
    func resumeAndRefresh() async throws {
        let (first, second) = (Self.bytes(1 << 20), Self.bytes(4096))
        let store = Store([
            "a": .init(bytes: first, behaviour: .drop(at: 300_000)), "expired": .init(bytes: second, behaviour: .forbidden),
            "b": .init(bytes: second, behaviour: .whole),
        ])
        try await store.run { base in
            try await Self.withSync { sync, events, root in
                let (a, b) = (UUID(), UUID())
                await sync.update(
                    .init(models: [
                        Self.entry(a, "checkpoints/a.safetensors", first, url: "\(base)/m/a"),
                        Self.entry(b, "vae/b.safetensors", second, url: "\(base)/m/expired"),
                    ]))
                let request = try await events.next { if case .needsURL(let request) = $0 { request } else { nil } }
                #expect(request.modelId == b.uuidString.lowercased())
                await sync.answerURL(.init(requestId: request.requestId, modelId: request.modelId, url: "\(base)/m/b", urlExpiresAt: nil))
                _ = try await events.holdings { Set($0.held) == ["checkpoints/a.safetensors", "vae/b.safetensors"] }
                #expect(try Data(contentsOf: root.appendingPathComponent("checkpoints/a.safetensors")) == Data(first))
                #expect(try Data(contentsOf: root.appendingPathComponent("vae/b.safetensors")) == Data(second))
                let ranges = store.seen.filter { $0.name == "a" }.map(\.range)
                #expect(ranges.count == 2 && ranges[0] == nil && ranges[1]?.hasPrefix("bytes=") == true && ranges[1] != "bytes=0-")
            }
        }
    }

    @Test("bytes that do not match the registration are reported broken and not fetched again until the next set")
    func brokenModels() async throws {
        let model = Self.bytes(8192)
        let store = Store(["a": .init(bytes: model, behaviour: .whole)])
        try await store.run { base in
            try await Self.withSync { sync, events, root in
                let id = UUID()
                let wrong = Self.entry(
                    id, "checkpoints/a.safetensors", model, url: "\(base)/m/a", hash: "sha256:" + String(repeating: "0", count: 64))
                await sync.update(.init(models: [wrong]))
                let report = try await events.holdings { !$0.broken.isEmpty }
                #expect(report.held.isEmpty)
                #expect(report.broken.map(\.modelId) == [id.uuidString.lowercased()])
                #expect(report.broken.first?.error.contains("the registration says sha256:000") == true)
                #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/a.safetensors").path))
                #expect(store.seen.count == 1)
                // The same set again (a new one from the gateway): tried once more.
                await sync.update(.init(models: [wrong]))
                _ = try await events.holdings { !$0.broken.isEmpty && store.seen.count == 2 }
            }
        }
    }

    @Test(
        "within --models-max-bytes the oldest models that fit are fetched; a task needing another gets it on demand, the least recently used file no running task needs making room"
    )
    func budget() async throws {
        let (a, b) = (Self.bytes(1 << 20), Self.bytes(1 << 20))
        let store = Store(["a": .init(bytes: a, behaviour: .whole), "b": .init(bytes: b, behaviour: .whole)])
        try await store.run { base in
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-budget-\(UUID())")
            defer { try? FileManager.default.removeItem(at: root) }
            let sync = ModelSync(cache: try ModelCache(root: root), maximumBytes: 3 << 19, logger: Logger(label: "model-sync-test"))
            let events = Events(sync.events.makeAsyncIterator())
            await sync.update(
                .init(models: [
                    Self.entry(UUID(), "checkpoints/a.safetensors", a, url: "\(base)/m/a"),
                    Self.entry(UUID(), "checkpoints/b.safetensors", b, url: "\(base)/m/b"),
                ]))
            _ = try await events.holdings { $0.held == ["checkpoints/a.safetensors"] }
            #expect(store.seen.map(\.name) == ["a"], "b does not fit next to a: not fetched ahead")

            // A task needs b: a (not needed by anyone) goes to make room.
            #expect(await sync.ensure(["checkpoints/b.safetensors", "loras/hand-managed.safetensors"], for: "attempt-1") == nil)
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/b.safetensors").path))
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/a.safetensors").path))
            // While attempt-1 runs, b stays: a cannot fit.
            let refused = await sync.ensure(["checkpoints/a.safetensors"], for: "attempt-2")
            #expect(refused?.contains("does not fit in --models-max-bytes") == true)
            await sync.release("attempt-1")
            await sync.release("attempt-2")
            #expect(await sync.ensure(["checkpoints/a.safetensors"], for: "attempt-3") == nil)
            #expect(await sync.held == ["checkpoints/a.safetensors"])
        }
    }

    @Test(
        "end to end with a disk budget: a model beyond it is fetched when a task needs it — the task's events say so — in place of one no task uses"
    )
    func onDemandEndToEnd() async throws {
        try await Self.withServeAndComfyUI { app, client, session, fake, root in
            let (older, newer) = (Self.bytes(3 << 20), Self.bytes(3 << 20))
            _ = try await app.registerSyncedModel(client, session: session, bytes: older, type: "checkpoints", path: "older.safetensors")
            app.clock.advance(by: 1)  // the set is oldest first: the test clock must say which is older
            _ = try await app.registerSyncedModel(client, session: session, bytes: newer, type: "checkpoints", path: "newer.safetensors")
            _ = try await app.importWorkflow(
                client, session: session, body: try TestApp.invertImport(requiredModels: ["checkpoints/newer.safetensors"]))
            let task = try await app.run(client)
            try await EndToEndTests.withAgent(app, client, comfyUI: fake.baseURL, configure: { $0.modelsMaxBytes = 4 << 20 }) {
                let stream = try await app.followEvents(port: client.port!, task)
                #expect(stream.contains("event: completed"))
                #expect(stream.contains("syncing model checkpoints/newer.safetensors (3.1 MB) before the task runs"))
                #expect(try Data(contentsOf: root.appendingPathComponent("checkpoints/newer.safetensors")) == Data(newer))
                #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/older.safetensors").path))
            }
        }
    }

    @Test("sizes in the agent's config: bytes, or K, M, G, T in powers of 1024")
    func byteCounts() {
        #expect(AgentConfiguration.byteCount("500000") == 500_000)
        #expect(AgentConfiguration.byteCount("200G") == 200 << 30)
        #expect(AgentConfiguration.byteCount("1.5t") == 3 << 39)
        #expect(AgentConfiguration.byteCount("0") == nil && AgentConfiguration.byteCount("lots") == nil && AgentConfiguration.byteCount("-5G") == nil)
    }

    @Test("ComfyUI's models folder is the one above its first checkpoints folder, as /internal/folder_paths lists them")
    func modelsRoot() {
        #expect(AgentRunner.modelsRoot(in: ["checkpoints": ["/opt/ComfyUI/models/checkpoints", "/data/checkpoints"]]) == "/opt/ComfyUI/models")
        #expect(AgentRunner.modelsRoot(in: ["checkpoints": ["/opt/ComfyUI/models/checkpoints/"]]) == "/opt/ComfyUI/models")
        #expect(AgentRunner.modelsRoot(in: ["checkpoints": ["/srv/ckpt"]]) == nil, "not named so: no guess")
        #expect(AgentRunner.modelsRoot(in: ["loras": ["/opt/ComfyUI/models/loras"]]) == nil)
    }

    @Test(
        "end to end: a registered model reaches ComfyUI's models folder (the agent asks ComfyUI where it is), and a task needing it runs only once it is in place, byte-equal"
    )
    func endToEnd() async throws {
        try await Self.withServeAndComfyUI { app, client, session, fake, root in
            let bytes = Self.bytes(3 << 20)
            _ = try await app.registerSyncedModel(
                client, session: session, bytes: bytes, type: "checkpoints", path: "models/checkpoints/sdxl/base.safetensors")
            _ = try await app.importWorkflow(
                client, session: session, body: try TestApp.invertImport(requiredModels: ["checkpoints/sdxl/base.safetensors"]))
            // Submitted before the agent connects: offered the moment it may take it.
            let task = try await app.run(client)
            try await EndToEndTests.withAgent(app, client, comfyUI: fake.baseURL) {
                let file = root.appendingPathComponent("checkpoints/sdxl/base.safetensors")
                var inPlaceWhenRunning: Bool?
                let stream = try await app.followEvents(port: client.port!, task) { text in
                    if inPlaceWhenRunning == nil, text.contains(#""status":"running""#) {
                        inPlaceWhenRunning = FileManager.default.fileExists(atPath: file.path)
                    }
                }
                #expect(stream.contains("event: completed"))
                #expect(inPlaceWhenRunning == true)
                #expect(try Data(contentsOf: file) == Data(bytes))
            }
        }
    }
}
