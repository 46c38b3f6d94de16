import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardServer
import Synchronization

/// A ComfyUI server double, faithful to the protocol recorded in `spec/comfyui-protocol.md` (fixtures in
/// `Tests/Fixtures/comfyui/transcripts`): the same routes (also under `/api`), the same validation answers (400
/// `invalid_prompt`, `prompt_no_outputs`, `prompt_outputs_failed_validation`, 200 with `node_errors` for a partly
/// valid graph, 500 text for a body that is not JSON), one prompt at a time on one worker, the WebSocket sequence
/// of a run (two `status`, `execution_start`, `execution_cached`, cumulative `progress_state`, `executing`,
/// `progress`, binary preview frames, `executed`, `execution_success`/`execution_error`/`execution_interrupted`,
/// `status`, `executing{node:null}`), messages dropped for a client that is not connected, targeted interrupts
/// that land at progress ticks or node boundaries, `/queue {delete}`, history, `/view` and `/upload/image`.
///
/// Nodes it knows: EmptyImage, LoadImage, the image transforms, SaveImage (a `..` in the prefix fails at run time
/// as in c5), PreviewImage, SaveImageWebsocket, TestSleep, SaveAudio, VHS_VideoCombine, PreviewAny (text), and the
/// model loaders, which fail validation with `value_not_in_list` as a server without weights does.
public final class FakeComfyUI: Sendable {
    public struct Options: Sendable {
        /// How long a node without progress takes.
        public var nodeDuration: Duration = .milliseconds(1)
        /// TestSleep's progress period.
        public var progressTick: Duration = .milliseconds(10)
        /// 0 picks a free port.
        public var port: Int = 0
        /// Between `execution_success` and the history entry being written (then `executing {node: null}`): the real
        /// server sends the first from inside its executor and writes the entry afterwards, so a client that reads
        /// the history on `execution_success` sometimes finds none (spec/comfyui-protocol.md, "Ordering that matters").
        public var historyDelay: Duration = .milliseconds(3)
        /// Where it says its models are (`GET /internal/folder_paths`: `<root>/<type>` for each type, as a stock
        /// ComfyUI answers for its `models/` folder); nil answers 404, as a ComfyUI older than that route.
        public var modelsRoot: String?
        /// A ComfyUI started with `--cpu` (or on a machine without a GPU): `/system_stats` lists one device of type
        /// `cpu`, as the real server does (shared/notes/machine.md), instead of a CUDA GPU.
        public var cpuOnly = false

        public init(
            nodeDuration: Duration = .milliseconds(1), progressTick: Duration = .milliseconds(10), port: Int = 0,
            historyDelay: Duration = .milliseconds(3), modelsRoot: String? = nil, cpuOnly: Bool = false
        ) {
            self.cpuOnly = cpuOnly
            self.nodeDuration = nodeDuration
            self.progressTick = progressTick
            self.port = port
            self.historyDelay = historyDelay
            self.modelsRoot = modelsRoot
        }
    }

    /// Misbehaviour to test an executor against (none of it is what a healthy ComfyUI does).
    public enum Fault: Sendable, Equatable {
        /// `POST /prompt` answers 500 with ComfyUI's text body.
        case promptServerError
        /// Every WebSocket is closed as soon as a prompt starts; the server itself stays up.
        case dropSocketsOnStart
        /// The server goes away (every request 503, sockets refused) as soon as a prompt starts.
        case dieOnStart
        /// History entries are written without their `outputs`.
        case historyWithoutOutputs
        /// `/view` answers 404 for every output file.
        case outputFilesMissing
    }

    let engine: Engine
    public let port: Int

    init(engine: Engine, port: Int) {
        self.engine = engine
        self.port = port
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// While false, every HTTP request answers 503 and sockets are refused (ComfyUI down or restarting).
    public func setAvailable(_ available: Bool) async { await engine.setAvailable(available) }
    /// While held, a finished prompt's history entry (and its `executing {node: null}`) waits after
    /// `execution_success` until `releaseHistory()`: a test steps through the gap the real server has.
    public func holdHistory() async { await engine.setHistoryHeld(true) }
    public func releaseHistory() async { await engine.setHistoryHeld(false) }
    /// How many `GET /history/{id}` came between a prompt's `execution_success` and its history entry (and found
    /// none): what a client that trusts `execution_success` does.
    public func prematureHistoryReads() async -> Int { await engine.prematureHistoryReads }
    /// Turns on misbehaviour (nil: none).
    public func inject(_ fault: Fault?) async { await engine.setFault(fault) }
    /// How many WebSockets were opened.
    public func connections() async -> Int { await engine.connections }
    /// The most prompts that ever waited in the queue at once.
    public func maximumPending() async -> Int { await engine.maximumPending }
    /// How many nodes ran (cached ones do not).
    public func executedNodes() async -> Int { await engine.executedNodes }
    /// How many prompts ran with this `extra_data.switchyard_task_id` (or any key/value of `extra_data`).
    public func promptsRun(extra key: String, _ value: String) async -> Int {
        await engine.history.values.filter { $0["prompt"]?.arrayValue?.dropFirst(3).first?[key]?.stringValue == value }.count
    }
    /// The bytes of a file the server holds (`type/subfolder/filename`).
    public func file(type: String, subfolder: String, filename: String) async -> [UInt8]? {
        await engine.files[Engine.fileKey(type, subfolder, filename)]
    }
    /// Every `POST /prompt`, `/interrupt` and `/queue` the server answered, as `method path body`.
    public func requests() async -> [String] { await engine.requestLog }
    /// Returns once a prompt with this id has been queued (at once if it was).
    public func queued(promptId: String) async { await engine.waitUntilQueued(promptId) }
    /// How many prompts ran to an end (success, error or interrupt).
    public func finishedPrompts() async -> Int { await engine.finished }
    /// How a finished prompt ended, as its history entry says: `success`, or the message that ended it
    /// (`execution_interrupted`, `execution_error`); nil while it has no entry.
    public func ending(promptId: String) async -> String? {
        guard let entry = await engine.history[promptId], case .object(let status)? = entry["status"] else { return nil }
        if status["status_str"] == "success" { return "success" }
        guard case .array(let messages)? = status["messages"], case .array(let last)? = messages.last, case .string(let name)? = last.first
        else { return "error" }
        return name
    }

    /// Starts the server on a free port on 127.0.0.1, runs `body`, and stops it.
    public static func with<T: Sendable>(_ options: Options = Options(), _ body: @Sendable (FakeComfyUI) async throws -> T) async throws -> T {
        let engine = Engine(options: options)
        let router = Router()
        FakeComfyUIRoutes(engine: engine).add(to: router)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "fake-comfyui")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            server: .http1WebSocketUpgradeClosingSilentConnections(configuration: .init(maxFrameSize: 1 << 24)) { request, _, _ in
                await FakeComfyUIRoutes(engine: engine).upgrade(request)
            },
            configuration: .init(address: .hostname("127.0.0.1", port: options.port), serverName: "FakeComfyUI"),
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
            let worker = Task { await engine.work() }
            // Sockets are closed from the server's side first: a client that keeps its WebSocket open (an executor
            // shares one across prompts) would otherwise hold the server's graceful shutdown.
            let result: Result<T, any Error>
            do { result = .success(try await body(FakeComfyUI(engine: engine, port: port))) } catch { result = .failure(error) }
            await engine.closeSockets()
            worker.cancel()
            group.cancelAll()
            return try result.get()
        }
    }
}

/// A message for one socket.
enum FakeFrame: Sendable {
    case text(String)
    case binary([UInt8])
}

/// The server's state: queue, worker, history, files, sockets.
actor Engine {
    struct Prompt: Sendable {
        let id: String
        let number: Double
        let graph: [String: JSONValue]
        let clientId: String?
        let extraData: JSONValue
        let outputs: [String]
    }

    let options: FakeComfyUI.Options
    var available = true
    var files: [String: [UInt8]] = [:]
    var history: [String: JSONValue] = [:]
    var pending: [Prompt] = []
    var running: Prompt?
    var interruptRequested = false
    var sockets: [String: AsyncStream<FakeFrame>.Continuation] = [:]
    var nextNumber = 0.0
    var fileCounters: [String: Int] = [:]
    var requestLog: [String] = []
    var finished = 0
    var executedNodes = 0
    var connections = 0
    var maximumPending = 0
    var fault: FakeComfyUI.Fault?
    /// UI outputs of nodes by signature (class, inputs, upstream signatures): an identical node is not run again.
    var cache: [String: JSONValue] = [:]
    var wakeUp: AsyncStream<Void>.Continuation
    let wakeUps: AsyncStream<Void>

    init(options: FakeComfyUI.Options) {
        self.options = options
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    static func fileKey(_ type: String, _ subfolder: String, _ filename: String) -> String { "\(type)/\(subfolder)/\(filename)" }

    func setAvailable(_ value: Bool) {
        available = value
        if !value { closeSockets() }
    }

    func log(_ line: String) { requestLog.append(line) }

    func setFault(_ fault: FakeComfyUI.Fault?) { self.fault = fault }

    /// Prompts that reported success whose history entry is not written yet.
    var unwrittenHistory: Set<String> = []
    var prematureHistoryReads = 0

    func historyEntry(_ id: String) -> JSONValue? {
        if unwrittenHistory.contains(id) { prematureHistoryReads += 1 }
        return history[id]
    }

    var historyHeld = false
    var historyWaiters: [CheckedContinuation<Void, Never>] = []

    func setHistoryHeld(_ held: Bool) {
        historyHeld = held
        if !held {
            for waiter in historyWaiters { waiter.resume() }
            historyWaiters.removeAll()
        }
    }

    // MARK: Sockets

    func connect(clientId: String) -> AsyncStream<FakeFrame> {
        let (stream, continuation) = AsyncStream.makeStream(of: FakeFrame.self)
        connections += 1
        sockets[clientId]?.finish()
        sockets[clientId] = continuation
        var greeting: [String: JSONValue] = ["status": queueStatus, "sid": .string(clientId)]
        if let running, running.clientId == clientId {
            // A client reconnecting mid-run hears which node runs, without a prompt id (as recorded).
            continuation.yield(.text(Self.message("status", .object(greeting))))
            greeting = [:]
            continuation.yield(.text(Self.message("executing", ["node": .string(running.outputs.first ?? "")])))
        } else {
            continuation.yield(.text(Self.message("status", .object(greeting))))
        }
        return stream
    }

    func closeSockets() {
        for socket in sockets.values { socket.finish() }
        sockets.removeAll()
    }

    func disconnect(clientId: String) {
        sockets[clientId] = nil
    }

    var queueRemaining: Int { pending.count + (running == nil ? 0 : 1) }

    var queueStatus: JSONValue {
        ["exec_info": ["queue_remaining": .number(JSONNumber(queueRemaining))]]
    }

    func toClient(_ prompt: Prompt, _ frame: FakeFrame) {
        guard let clientId = prompt.clientId else { return }
        sockets[clientId]?.yield(frame)
    }

    func toClient(_ prompt: Prompt, _ type: String, _ data: JSONValue) {
        toClient(prompt, .text(Self.message(type, data)))
    }

    /// `progress`/`progress_state` of a prompt without a client go to everyone (as recorded).
    func progressMessage(_ prompt: Prompt, _ type: String, _ data: JSONValue) {
        if prompt.clientId == nil { broadcast(type, data) } else { toClient(prompt, type, data) }
    }

    func broadcast(_ type: String, _ data: JSONValue) {
        for socket in sockets.values { socket.yield(.text(Self.message(type, data))) }
    }

    static func message(_ type: String, _ data: JSONValue) -> String {
        JSONValue.object(["type": .string(type), "data": data]).jsonString
    }

    // MARK: Queue

    var queuedIds: Set<String> = []
    var queueWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func waitUntilQueued(_ id: String) async {
        guard !queuedIds.contains(id) else { return }
        await withCheckedContinuation { queueWaiters[id, default: []].append($0) }
    }

    func enqueue(_ prompt: Prompt) {
        queuedIds.insert(prompt.id)
        for waiter in queueWaiters.removeValue(forKey: prompt.id) ?? [] { waiter.resume() }
        pending.append(prompt)
        maximumPending = max(maximumPending, pending.count)
        broadcast("status", ["status": queueStatus])
        wakeUp.yield()
    }

    func makeNumber(front: Bool, explicit: Double?) -> Double {
        if let explicit { return explicit }
        defer { nextNumber += 1 }
        return front ? -nextNumber : nextNumber
    }

    func interrupt(promptId: String?) {
        guard let running else { return }
        if promptId == nil || promptId == running.id { interruptRequested = true }
    }

    func delete(_ ids: [String]) {
        pending.removeAll { ids.contains($0.id) }
        broadcast("status", ["status": queueStatus])
    }

    func clearQueue() {
        pending.removeAll()
        broadcast("status", ["status": queueStatus])
    }

    var queueJSON: JSONValue {
        func entry(_ prompt: Prompt) -> JSONValue {
            [
                .number(JSONNumber(prompt.number)), .string(prompt.id), .object(prompt.graph), prompt.extraData,
                .array(prompt.outputs.map(JSONValue.string)),
            ]
        }
        return ["queue_running": .array(running.map { [entry($0)] } ?? []), "queue_pending": .array(pending.map(entry))]
    }

    // MARK: Files

    func store(type: String, subfolder: String, filename: String, bytes: [UInt8]) {
        files[Self.fileKey(type, subfolder, filename)] = bytes
    }

    /// `/upload/image`: same bytes under the same name dedup; different bytes get `name (1).ext` unless overwrite.
    func upload(name: String, subfolder: String, type: String, bytes: [UInt8], overwrite: Bool) -> String {
        var candidate = name
        var suffix = 1
        while !overwrite, let existing = files[Self.fileKey(type, subfolder, candidate)], existing != bytes {
            let ext = (name as NSString).pathExtension
            let base = (name as NSString).deletingPathExtension
            candidate = ext.isEmpty ? "\(base) (\(suffix))" : "\(base) (\(suffix)).\(ext)"
            suffix += 1
        }
        files[Self.fileKey(type, subfolder, candidate)] = bytes
        return candidate
    }

    func hasInput(_ reference: String) -> Bool {
        let parts = reference.split(separator: "/").map(String.init)
        let name = parts.last ?? ""
        let subfolder = parts.dropLast().joined(separator: "/")
        return files[Self.fileKey("input", subfolder, name)] != nil
    }
}
