import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// A stand-in for Comfy Cloud built from `spec/comfy-cloud.md` and Comfy API v2 (`openapi-v2.yaml`), running its jobs
/// on the fake ComfyUI underneath (as the service runs them on ComfyUI workers):
///
/// - every route is under `/api`; a key is required (`X-API-Key` on v1, `Authorization: Bearer` on v2; 401
///   `{"error": {"code": "unauthorized"}}` otherwise); `GET /api/user` answers `{"status": "active"|"waitlisted"}`;
/// - `POST /api/v2/assets` (multipart `file`, `content_type`, `file_path`) mints an asset, which a graph references
///   as `{"__type": "core/ASSET", "info": {"id": …}}` (an unknown id: 422 `missing_asset`; files over the upload
///   limit: 413);
/// - `POST /api/v2/jobs {workflow}` with a single-use `Idempotency-Key` (a reused key: 422 `idempotency_key_reuse`),
///   201 with the `Job`; `GET /api/v2/jobs/{id}` the authoritative view (`queued → running → succeeded | failed |
///   canceled | expired`, `progress`, `outputs` as they are committed, `error`); `POST …/cancel` (idempotent; a
///   queued job leaves the queue, a running one is interrupted: `canceling → canceled`);
/// - `GET /api/v2/jobs/{id}/events`: SSE — the current `status` (and `progress`) on connect, then each change, ending
///   after the terminal `status` (no ids, no replay, as documented);
/// - `GET /api/v2/assets/{id}/content` answers `302` to a signed storage URL on this server, which refuses a
///   request that carries the API key (the docs' warning) and counts it.
///
/// Faults a test can turn on: no credits (402), a full queue (429 with `Retry-After`), the service unavailable (503),
/// jobs lost on its side (`expired`), and keys that stop being accepted.
public final class FakeComfyCloud: Sendable {
    public enum Fault: Sendable, Equatable {
        /// `POST /api/v2/jobs` answers 402 `insufficient_credits`.
        case noCredits
        /// The next `count` job submissions answer 429 `queue_full` with `Retry-After: 1`.
        case queueFull(count: Int)
        /// The next `count` requests of any kind answer 503.
        case unavailable(count: Int)
        /// The next `count` jobs that start running are lost: each ends `expired` and its prompt is interrupted.
        case loseRunningJobs(count: Int)
    }

    let state: CloudState
    public let comfy: FakeComfyUI
    public let port: Int

    init(state: CloudState, comfy: FakeComfyUI, port: Int) {
        self.state = state
        self.comfy = comfy
        self.port = port
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Keys it accepts (active accounts) and keys of waitlisted accounts.
    public func accept(_ key: String, waitlisted: Bool = false) async { await state.accept(key, waitlisted: waitlisted) }
    /// Stops accepting a key (the account's key was revoked on the platform).
    public func revoke(_ key: String) async { await state.revoke(key) }
    public func inject(_ fault: Fault?) async { await state.setFault(fault) }
    /// Every request it answered, as `METHOD path`.
    public func requests() async -> [String] { await state.requestLog }
    /// Requests to the signed storage URLs that carried the API key (must stay 0).
    public func credentialsSentToStorage() async -> Int { await state.credentialsSentToStorage }
    /// How many jobs were created.
    public func jobsCreated() async -> Int { await state.jobs.count }
    /// How many job event streams were opened.
    public func eventStreamsOpened() async -> Int { await state.streamsOpened }
    /// The most jobs that ran at once for one key.
    public func maximumRunning() async -> Int { await state.maximumRunning }
    /// A job's status as the service has it.
    public func status(ofJob id: String) async -> String? { await state.jobs[id]?.status }
    /// Returns once a job has reached `status` (at once if it has).
    public func job(_ id: String, reached status: String) async { await state.wait(for: id, status: status) }
    /// Returns once `count` jobs have been created.
    public func jobsCreated(atLeast count: Int) async { await state.waitForJobs(count) }

    /// Starts the stand-in and a fake ComfyUI under it on free ports, runs `body`, and stops both.
    public static func with<T: Sendable>(
        comfy options: FakeComfyUI.Options = FakeComfyUI.Options(), maximumUploadSize: Int = 50 * 1024 * 1024,
        _ body: @Sendable (FakeComfyCloud) async throws -> T
    ) async throws -> T {
        try await FakeComfyUI.with(options) { comfy in
            let state = CloudState(engine: comfy.engine, comfyBaseURL: comfy.baseURL, maximumUploadSize: maximumUploadSize)
            let router = Router()
            FakeComfyCloudRoutes(state: state).add(to: router)
            let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
            var logger = Logger(label: "fake-comfy-cloud")
            logger.logLevel = .warning
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "FakeComfyCloud"),
                onServerRunning: { channel in
                    portContinuation.yield(channel.localAddress?.port ?? 0)
                    portContinuation.finish()
                },
                logger: logger)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
                group.addTask { try await serviceGroup.run() }
                var ports = portStream.makeAsyncIterator()
                guard let port = await ports.next() else { throw CancellationError() }
                await state.setOrigin("http://127.0.0.1:\(port)")
                let listener = Task { await state.listen() }
                let result: Result<T, any Error>
                do { result = .success(try await body(FakeComfyCloud(state: state, comfy: comfy, port: port))) } catch { result = .failure(error) }
                listener.cancel()
                group.cancelAll()
                return try result.get()
            }
        }
    }
}

/// The stand-in's accounts, assets and jobs.
actor CloudState {
    struct Asset {
        let id: String
        let bytes: [UInt8]
        let contentType: String
        let filePath: String
        /// The name the file has in the fake ComfyUI's input folder.
        let comfyName: String
    }

    struct Job {
        let id: String
        let key: String
        var status = "queued"
        var createdAt = Date()
        var startedAt: Date?
        var completedAt: Date?
        var progress: JSONValue = .null
        var outputs: [JSONValue] = []
        var error: JSONValue = .null
        var nodesDone = 0
        let nodesTotal: Int
    }

    let engine: Engine
    let comfyBaseURL: String
    let maximumUploadSize: Int
    var origin = ""
    var keys: [String: Bool] = [:]  // key → waitlisted
    var assets: [String: Asset] = [:]
    var jobs: [String: Job] = [:]
    var usedIdempotencyKeys: Set<String> = []
    var fault: FakeComfyCloud.Fault?
    var requestLog: [String] = []
    var credentialsSentToStorage = 0
    var maximumRunning = 0
    var waiters: [(id: String?, status: String?, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    let signingKey = UUID().uuidString

    init(engine: Engine, comfyBaseURL: String, maximumUploadSize: Int) {
        self.engine = engine
        self.comfyBaseURL = comfyBaseURL
        self.maximumUploadSize = maximumUploadSize
    }

    func setOrigin(_ origin: String) { self.origin = origin }
    func accept(_ key: String, waitlisted: Bool) { keys[key] = waitlisted }
    func revoke(_ key: String) { keys[key] = nil }
    func setFault(_ fault: FakeComfyCloud.Fault?) { self.fault = fault }
    func log(_ line: String) { requestLog.append(line) }
    func storageSawCredentials() { credentialsSentToStorage += 1 }

    /// Whether `key` is accepted, and whether its account is waitlisted.
    func account(_ key: String?) -> Bool? { key.flatMap { keys[$0] } }

    /// Consumes one 503 of an `unavailable` fault.
    func takeUnavailable() -> Bool {
        guard case .unavailable(let count)? = fault else { return false }
        fault = count > 1 ? .unavailable(count: count - 1) : nil
        return true
    }

    /// Consumes one 429 of a `queueFull` fault.
    func takeQueueFull() -> Bool {
        guard case .queueFull(let count)? = fault else { return false }
        fault = count > 1 ? .queueFull(count: count - 1) : nil
        return true
    }

    func addAsset(bytes: [UInt8], contentType: String, filePath: String) async -> Asset {
        let id = UUID().uuidString.lowercased()
        let name = "\(id.prefix(8))_\((filePath as NSString).lastPathComponent)"
        await engine.store(type: "input", subfolder: "", filename: name, bytes: bytes)
        let asset = Asset(id: id, bytes: bytes, contentType: contentType, filePath: filePath, comfyName: name)
        assets[id] = asset
        return asset
    }

    /// Claims a single-use idempotency key; false when it was used before.
    func claim(_ idempotencyKey: String?) -> Bool {
        guard let idempotencyKey else { return true }
        return usedIdempotencyKeys.insert(idempotencyKey).inserted
    }

    func addJob(_ job: Job) {
        jobs[job.id] = job
        settle()
    }

    func removeJob(_ id: String) { jobs[id] = nil }

    /// Who follows each job's events: told of every change.
    var watchers: [String: [AsyncStream<Void>.Continuation]] = [:]
    var streamsOpened = 0

    func watch(_ id: String) -> AsyncStream<Void> {
        streamsOpened += 1
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        watchers[id, default: []].append(continuation)
        return stream
    }

    func update(_ id: String, _ change: (inout Job) -> Void) {
        guard var job = jobs[id] else { return }
        change(&job)
        jobs[id] = job
        for watcher in watchers[id] ?? [] { watcher.yield() }
        if ["succeeded", "failed", "canceled", "expired"].contains(job.status) {
            for watcher in watchers.removeValue(forKey: id) ?? [] { watcher.finish() }
        }
        maximumRunning = max(maximumRunning, jobs.values.filter { $0.status == "running" }.count)
        settle()
    }

    func wait(for id: String, status: String) async {
        guard jobs[id]?.status != status else { return }
        await withCheckedContinuation { waiters.append((id, status, 0, $0)) }
    }

    func waitForJobs(_ count: Int) async {
        guard jobs.count < count else { return }
        await withCheckedContinuation { waiters.append((nil, nil, count, $0)) }
    }

    private func settle() {
        waiters.removeAll { waiter in
            let done = waiter.id.map { jobs[$0]?.status == waiter.status } ?? (jobs.count >= waiter.count)
            if done { waiter.continuation.resume() }
            return done
        }
    }

    /// A signed storage URL for an asset (valid for an hour).
    func signedURL(_ assetId: String) -> String {
        "\(origin)/storage/\(assetId)?expires=\(Int(Date().timeIntervalSince1970) + 3600)&signature=\(signature(assetId))"
    }

    func signature(_ assetId: String) -> String {
        String(UInt64(bitPattern: Int64((signingKey + assetId).hashValue)), radix: 16)
    }

    // MARK: Running jobs on the fake ComfyUI

    static let socketId = "comfy-cloud-worker"

    /// Reads the fake ComfyUI's messages for the stand-in's prompts (prompt id = job id) and moves the jobs.
    func listen() async {
        let frames = await engine.connect(clientId: Self.socketId)
        for await frame in frames {
            guard case .text(let text) = frame, let message = try? JSONValue.parse(Array(text.utf8)),
                let type = message["type"]?.stringValue, let data = message["data"], let id = data["prompt_id"]?.stringValue, jobs[id] != nil
            else { continue }
            await handle(type, data, job: id)
        }
    }

    private func handle(_ type: String, _ data: JSONValue, job id: String) async {
        switch type {
        case "execution_start":
            if case .loseRunningJobs(let count)? = fault {
                fault = count > 1 ? .loseRunningJobs(count: count - 1) : nil
                update(id) { job in
                    job.status = "expired"
                    job.completedAt = Date()
                    job.error = ["code": "job_lost", "message": "the worker running this job was lost"]
                }
                await engine.interrupt(promptId: id)
                return
            }
            update(id) { job in
                guard job.status == "queued" else { return }
                job.status = "running"
                job.startedAt = Date()
            }
        case "executing":
            guard let node = data["node"]?.stringValue else {
                await finish(id)
                return
            }
            update(id) { job in
                job.nodesDone = min(job.nodesDone + 1, job.nodesTotal)
                job.progress = Self.progress(job, node: node, step: nil)
            }
        case "progress":
            let node = data["node"]?.stringValue ?? ""
            let value = data["value"]?.numberValue?.doubleValue ?? 0
            let max = data["max"]?.numberValue?.doubleValue ?? 1
            update(id) { job in job.progress = Self.progress(job, node: node, step: (Int(value.rounded(.down)), Int(max.rounded(.up)))) }
        case "execution_error":
            update(id) { job in
                job.error = [
                    "code": "node_execution_error", "message": data["exception_message"] ?? "", "node_id": data["node_id"] ?? .null,
                    "class_type": data["node_type"] ?? .null, "traceback": .null,
                ]
            }
        case "execution_interrupted":
            update(id) { job in
                if job.status == "running" || job.status == "canceling" { job.status = "canceling" }
            }
        default:
            break
        }
    }

    static func progress(_ job: Job, node: String, step: (Int, Int)?) -> JSONValue {
        let fraction = job.nodesTotal == 0 ? 0 : Double(max(job.nodesDone - 1, 0)) / Double(job.nodesTotal)
        return [
            "value": .number(JSONNumber(min(fraction, 1))), "nodes_done": .number(JSONNumber(max(job.nodesDone - 1, 0))),
            "nodes_total": .number(JSONNumber(job.nodesTotal)), "current_node": .string(node),
            "step": step.map { .number(JSONNumber($0.0)) } ?? .null, "steps": step.map { .number(JSONNumber($0.1)) } ?? .null,
            "message": step.map { .string("node \(node) \($0.0)/\($0.1)") } ?? .null,
        ]
    }

    /// The prompt ended (`executing {node: null}` after its history entry): the job's outputs become assets.
    private func finish(_ id: String) async {
        guard let job = jobs[id], !["expired", "canceled", "failed", "succeeded"].contains(job.status) else { return }
        let entry = await engine.history[id]
        let succeeded = entry?["status"]?["status_str"]?.stringValue == "success"
        var outputs: [JSONValue] = []
        if succeeded, case .object(let nodes)? = entry?["outputs"] {
            for (nodeId, output) in nodes.sorted(by: { $0.key < $1.key }) {
                for (kind, type) in [("images", "image"), ("gifs", "video"), ("video", "video"), ("audio", "audio")] {
                    for file in output[kind]?.arrayValue ?? [] {
                        guard let name = file["filename"]?.stringValue,
                            let bytes = await engine.files[
                                Engine.fileKey(file["type"]?.stringValue ?? "output", file["subfolder"]?.stringValue ?? "", name)]
                        else { continue }
                        let asset = await addAsset(bytes: bytes, contentType: FakeComfyUIRoutes.contentType(of: name), filePath: name)
                        outputs.append([
                            "node_id": .string(nodeId), "name": .string(name), "type": .string(type), "content_type": .string(asset.contentType),
                            "size_bytes": .number(JSONNumber(bytes.count)), "id": .string(asset.id), "hash": .null,
                            "url": .string(signedURL(asset.id)), "url_expires_at": .string(Self.timestamp(Date().addingTimeInterval(3600))),
                            "job_id": .string(id),
                        ])
                    }
                }
            }
        }
        update(id) { job in
            job.completedAt = Date()
            job.outputs = outputs
            if succeeded {
                job.status = "succeeded"
                job.progress = [
                    "value": 1, "nodes_done": .number(JSONNumber(job.nodesTotal)), "nodes_total": .number(JSONNumber(job.nodesTotal)),
                    "current_node": .null, "step": .null, "steps": .null, "message": .null,
                ]
            } else if job.status == "canceling" {
                job.status = "canceled"
            } else {
                job.status = "failed"
                if job.error == .null { job.error = ["code": "execution_failed", "message": "the workflow failed"] }
            }
        }
    }

    /// The `Job` object of Comfy API v2.
    func jobJSON(_ id: String) -> JSONValue? {
        guard let job = jobs[id] else { return nil }
        let path = "/api/v2/jobs/\(id)"
        let queuePosition: JSONValue =
            job.status == "queued"
            ? .number(JSONNumber(jobs.values.filter { $0.status == "queued" && $0.createdAt < job.createdAt }.count)) : .null
        return [
            "id": .string(id), "status": .string(job.status), "created_at": .string(Self.timestamp(job.createdAt)),
            "started_at": job.startedAt.map { .string(Self.timestamp($0)) } ?? .null,
            "completed_at": job.completedAt.map { .string(Self.timestamp($0)) } ?? .null,
            "expires_at": .string(Self.timestamp(job.createdAt.addingTimeInterval(86_400))), "queue_position": queuePosition,
            "progress": job.progress, "outputs": .array(job.outputs), "error": job.error,
            "urls": ["self": .string(path), "events": .string(path + "/events"), "cancel": .string(path + "/cancel")],
        ]
    }

    static func timestamp(_ date: Date) -> String {
        date.ISO8601Format()
    }
}
