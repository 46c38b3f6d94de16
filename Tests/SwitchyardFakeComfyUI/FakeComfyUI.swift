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

        public init(
            nodeDuration: Duration = .milliseconds(1), progressTick: Duration = .milliseconds(10), port: Int = 0,
            historyDelay: Duration = .milliseconds(3)
        ) {
            self.nodeDuration = nodeDuration
            self.progressTick = progressTick
            self.port = port
            self.historyDelay = historyDelay
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
    private var wakeUp: AsyncStream<Void>.Continuation
    private let wakeUps: AsyncStream<Void>

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

    private var historyHeld = false
    private var historyWaiters: [CheckedContinuation<Void, Never>] = []

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

    private var queueStatus: JSONValue {
        ["exec_info": ["queue_remaining": .number(JSONNumber(queueRemaining))]]
    }

    private func toClient(_ prompt: Prompt, _ frame: FakeFrame) {
        guard let clientId = prompt.clientId else { return }
        sockets[clientId]?.yield(frame)
    }

    private func toClient(_ prompt: Prompt, _ type: String, _ data: JSONValue) {
        toClient(prompt, .text(Self.message(type, data)))
    }

    /// `progress`/`progress_state` of a prompt without a client go to everyone (as recorded).
    private func progressMessage(_ prompt: Prompt, _ type: String, _ data: JSONValue) {
        if prompt.clientId == nil { broadcast(type, data) } else { toClient(prompt, type, data) }
    }

    private func broadcast(_ type: String, _ data: JSONValue) {
        for socket in sockets.values { socket.yield(.text(Self.message(type, data))) }
    }

    static func message(_ type: String, _ data: JSONValue) -> String {
        JSONValue.object(["type": .string(type), "data": data]).jsonString
    }

    // MARK: Queue

    private var queuedIds: Set<String> = []
    private var queueWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]

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

    // MARK: The worker

    func work() async {
        for await _ in wakeUps {
            while !pending.isEmpty {
                guard !Task.isCancelled else { return }
                pending.sort { $0.number < $1.number }
                let prompt = pending.removeFirst()
                await execute(prompt)
            }
        }
    }

    private func timestamp() -> JSONValue { .number(JSONNumber(Int(Date().timeIntervalSince1970 * 1000))) }

    private func execute(_ prompt: Prompt) async {
        running = prompt
        interruptRequested = false
        broadcast("status", ["status": queueStatus])
        var messages: [JSONValue] = []
        func record(_ type: String, _ data: JSONValue) {
            messages.append([.string(type), data])
        }
        let start: JSONValue = ["prompt_id": .string(prompt.id), "timestamp": timestamp()]
        toClient(prompt, "execution_start", start)
        record("execution_start", start)
        switch fault {
        case .dropSocketsOnStart?:
            closeSockets()
        case .dieOnStart?:
            setAvailable(false)
        default: break
        }
        let order = Self.executionOrder(prompt.graph, outputs: prompt.outputs)
        let signatures = Self.signatures(prompt.graph)
        let cachedNodes = order.filter { cache[signatures[$0] ?? ""] != nil }
        let cached: JSONValue = ["nodes": .array(cachedNodes.map(JSONValue.string)), "prompt_id": .string(prompt.id), "timestamp": timestamp()]
        toClient(prompt, "execution_cached", cached)
        record("execution_cached", cached)

        var states: [(String, String, Double, Double)] = []  // node, state, value, max
        func progressState() {
            var nodes: [String: JSONValue] = [:]
            for (node, state, value, max) in states {
                nodes[node] = [
                    "value": .number(JSONNumber(value)), "max": .number(JSONNumber(max)), "state": .string(state), "node_id": .string(node),
                    "prompt_id": .string(prompt.id), "display_node_id": .string(node), "parent_node_id": .null, "real_node_id": .string(node),
                ]
            }
            progressMessage(prompt, "progress_state", ["prompt_id": .string(prompt.id), "nodes": .object(nodes)])
        }
        func setState(_ node: String, _ state: String, _ value: Double, _ max: Double) {
            if let index = states.firstIndex(where: { $0.0 == node }) {
                states[index] = (node, state, value, max)
            } else {
                states.append((node, state, value, max))
            }
        }

        var outputs: [String: JSONValue] = [:]
        var executed: [String] = []
        var outcome = "success"
        run: for nodeId in order {
            let node = prompt.graph[nodeId] ?? .null
            let classType = node["class_type"]?.stringValue ?? ""
            if let signature = signatures[nodeId], let cachedOutput = cache[signature] {
                // Cached: no `executing`; an output node's UI output is replayed (the same files, none written).
                if cachedOutput != .null {
                    outputs[nodeId] = cachedOutput
                    toClient(
                        prompt, "executed",
                        ["node": .string(nodeId), "display_node": .string(nodeId), "output": cachedOutput, "prompt_id": .string(prompt.id)])
                    setState(nodeId, "finished", 1, 1)
                    progressState()
                }
                executed.append(nodeId)
                continue
            }
            if interruptRequested {
                interrupted(prompt, nodeId: nodeId, classType: classType, executed: executed, record: record)
                outcome = "interrupted"
                break run
            }
            setState(nodeId, "running", 0, 1)
            progressState()
            toClient(prompt, "executing", ["node": .string(nodeId), "display_node": .string(nodeId), "prompt_id": .string(prompt.id)])
            let inputs = node["inputs"] ?? .object([:])
            switch classType {
            case "TestSleep":
                let seconds = inputs["seconds"]?.numberValue.flatMap { Double($0.description) } ?? 1
                let clock = ContinuousClock()
                let began = clock.now
                while true {
                    let elapsed = began.duration(to: clock.now)
                    let value = min(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, seconds)
                    setState(nodeId, "running", max(value, 2.384185791015625e-07), seconds)
                    progressState()
                    progressMessage(
                        prompt, "progress",
                        [
                            "value": .number(JSONNumber(max(value, 2.384185791015625e-07))), "max": .number(JSONNumber(seconds)),
                            "prompt_id": .string(prompt.id), "node": .string(nodeId),
                        ])
                    if interruptRequested {
                        interrupted(prompt, nodeId: nodeId, classType: classType, executed: executed, record: record)
                        outcome = "interrupted"
                        break run
                    }
                    if value >= seconds { break }
                    try? await Task.sleep(for: options.progressTick)
                }
            case "SaveImageWebsocket":
                let batch = Self.batchSize(prompt.graph, from: inputs["images"])
                for index in 0..<batch {
                    setState(nodeId, "running", Double(index), Double(batch))
                    progressState()
                    progressMessage(
                        prompt, "progress",
                        [
                            "value": .number(JSONNumber(index)), "max": .number(JSONNumber(batch)), "prompt_id": .string(prompt.id),
                            "node": .string(nodeId),
                        ])
                    // PREVIEW_IMAGE (1), PNG (2), then the image bytes.
                    toClient(prompt, .binary([0, 0, 0, 1, 0, 0, 0, 2] + Self.fakePNG("\(prompt.id)/\(nodeId)/\(index)")))
                }
            case "SaveImage" where (inputs["filename_prefix"]?.stringValue ?? "").contains(".."):
                let error: JSONValue = [
                    "prompt_id": .string(prompt.id), "node_id": .string(nodeId), "node_type": .string(classType),
                    "executed": .array(executed.reversed().map(JSONValue.string)),
                    "exception_message": "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: /comfyui/output",
                    "exception_type": "Exception", "traceback": ["  File \"execution.py\", line 496, in execute\n"],
                    "current_inputs": ["filename_prefix": [inputs["filename_prefix"] ?? .null]],
                    "current_outputs": .array(prompt.outputs.map(JSONValue.string)),
                    "timestamp": timestamp(),
                ]
                toClient(prompt, "execution_error", error)
                record("execution_error", error)
                outcome = "error"
                break run
            default:
                try? await Task.sleep(for: options.nodeDuration)
                let output = produce(prompt, nodeId: nodeId, classType: classType, inputs: inputs)
                if let output {
                    outputs[nodeId] = output
                    toClient(
                        prompt, "executed",
                        ["node": .string(nodeId), "display_node": .string(nodeId), "output": output, "prompt_id": .string(prompt.id)])
                }
                if classType != "SaveImageWebsocket", let signature = signatures[nodeId] { cache[signature] = output ?? .null }
            }
            executedNodes += 1
            setState(nodeId, "finished", 1, 1)
            progressState()
            executed.append(nodeId)
        }
        if outcome == "success" {
            let success: JSONValue = ["prompt_id": .string(prompt.id), "timestamp": timestamp()]
            toClient(prompt, "execution_success", success)
            record("execution_success", success)
            // The real server writes the history entry only after this message has gone out.
            unwrittenHistory.insert(prompt.id)
            try? await Task.sleep(for: options.historyDelay)
            if historyHeld { await withCheckedContinuation { historyWaiters.append($0) } }
            unwrittenHistory.remove(prompt.id)
        }
        history[prompt.id] = [
            "prompt": [
                .number(JSONNumber(prompt.number)), .string(prompt.id), .object(prompt.graph), prompt.extraData,
                .array(prompt.outputs.map(JSONValue.string)),
            ],
            "outputs": outcome == "success" ? .object(outputs) : [:],
            "status": [
                "status_str": .string(outcome == "success" ? "success" : "error"), "completed": .bool(outcome == "success"),
                "messages": .array(messages),
            ],
            "meta": .object(
                outputs.keys.reduce(into: [String: JSONValue]()) { meta, node in
                    meta[node] = ["node_id": .string(node), "display_node": .string(node), "parent_node": .null, "real_node_id": .string(node)]
                }),
        ]
        if fault == .historyWithoutOutputs, case .object(var entry)? = history[prompt.id] {
            entry["outputs"] = nil
            history[prompt.id] = .object(entry)
        }
        running = nil
        broadcast("status", ["status": queueStatus])
        toClient(prompt, "executing", ["node": .null, "prompt_id": .string(prompt.id)])
        finished += 1
    }

    private func interrupted(_ prompt: Prompt, nodeId: String, classType: String, executed: [String], record: (String, JSONValue) -> Void) {
        let data: JSONValue = [
            "prompt_id": .string(prompt.id), "node_id": .string(nodeId), "node_type": .string(classType),
            "executed": .array(executed.map(JSONValue.string)), "timestamp": timestamp(),
        ]
        broadcast("execution_interrupted", data)
        record("execution_interrupted", data)
    }

    /// What an output node leaves in history, its files stored for `/view`.
    private func produce(_ prompt: Prompt, nodeId: String, classType: String, inputs: JSONValue) -> JSONValue? {
        func save(_ type: String, prefix: String, ext: String, bytes: (Int) -> [UInt8], count: Int) -> [JSONValue] {
            let parts = prefix.split(separator: "/").map(String.init)
            let base = parts.last ?? "ComfyUI"
            let subfolder = parts.dropLast().joined(separator: "/")
            return (0..<count).map { index in
                let counter = fileCounters[prefix, default: 0] + 1
                fileCounters[prefix] = counter
                let filename = String(format: "%@_%05d_.%@", base, counter, ext)
                files[Self.fileKey(type, subfolder, filename)] = bytes(index)
                return ["filename": .string(filename), "subfolder": .string(subfolder), "type": .string(type)]
            }
        }
        let prefix = inputs["filename_prefix"]?.stringValue ?? "ComfyUI"
        switch classType {
        case "SaveImage":
            let count = Self.batchSize(prompt.graph, from: inputs["images"])
            return [
                "images": .array(save("output", prefix: prefix, ext: "png", bytes: { Self.fakePNG("\(prompt.id)/\(nodeId)/\($0)") }, count: count))
            ]
        case "PreviewImage":
            let count = Self.batchSize(prompt.graph, from: inputs["images"])
            return [
                "images": .array(
                    save("temp", prefix: "ComfyUI_temp_fake", ext: "png", bytes: { Self.fakePNG("\(prompt.id)/\(nodeId)/\($0)") }, count: count))
            ]
        case "SaveAudio":
            return ["audio": .array(save("output", prefix: prefix, ext: "flac", bytes: { Array("fLaC audio \(prompt.id) \($0)".utf8) }, count: 1))]
        case "VHS_VideoCombine":
            var files = save("output", prefix: prefix, ext: "mp4", bytes: { Array("mp4 video \(prompt.id) \($0)".utf8) }, count: 1)
            if case .object(var first) = files[0] {
                first["format"] = "video/h264-mp4"
                files[0] = .object(first)
            }
            return ["gifs": .array(files)]
        case "PreviewAny":
            return ["text": [.string(inputs["source"]?.stringValue ?? (inputs["source"]?.jsonString ?? ""))]]
        case "SaveAnimatedWEBP", "SaveAnimatedPNG":
            let ext = classType == "SaveAnimatedWEBP" ? "webp" : "png"
            let images = save("output", prefix: prefix, ext: ext, bytes: { Array("animated \(ext) \(prompt.id) \($0)".utf8) }, count: 1)
            return ["images": .array(images), "animated": [true]]
        case "SaveGLB":
            return ["3d": .array(save("output", prefix: prefix, ext: "glb", bytes: { Array("glTF \(prompt.id) \($0)".utf8) }, count: 1))]
        default:
            return nil
        }
    }

    // MARK: Graph helpers

    static let outputClasses: Set<String> = [
        "SaveImage", "PreviewImage", "SaveImageWebsocket", "SaveAudio", "VHS_VideoCombine", "PreviewAny", "SaveAnimatedWEBP", "SaveAnimatedPNG",
        "SaveGLB",
    ]
    static let knownClasses: Set<String> = outputClasses.union([
        "EmptyImage", "LoadImage", "ImageInvert", "ImageBlur", "ImageSharpen", "ImageScale", "ImageScaleBy", "ImageBatch", "ImageFlip",
        "TestSleep", "CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEDecode", "EmptyLatentImage", "LoraLoader",
    ])

    /// Each node's cache key: its class and inputs, links replaced by the upstream node's key (so a changed input
    /// changes every node after it, as in ComfyUI's cache).
    static func signatures(_ graph: [String: JSONValue]) -> [String: String] {
        var keys: [String: String] = [:]
        func key(_ id: String, _ depth: Int) -> String {
            if let known = keys[id] { return known }
            guard depth < 256, let node = graph[id] else { return "?" }
            var inputs: [String: JSONValue] = [:]
            for (name, value) in node["inputs"]?.objectValue ?? [:] {
                if case .array(let link) = value, link.count == 2, case .string(let source) = link[0] {
                    inputs[name] = .array([.string(key(source, depth + 1)), link[1]])
                } else {
                    inputs[name] = value
                }
            }
            let made = JSONValue.object(["class_type": node["class_type"] ?? .null, "inputs": .object(inputs)]).jsonString
            keys[id] = made
            return made
        }
        for id in graph.keys { _ = key(id, 0) }
        return keys
    }

    /// The nodes `id` depends on (links are `[node_id, output_index]`).
    static func dependencies(_ graph: [String: JSONValue], _ id: String) -> [String] {
        guard case .object(let inputs)? = graph[id]?["inputs"] else { return [] }
        return inputs.keys.sorted().compactMap { key in
            guard case .array(let link) = inputs[key]!, link.count == 2, case .string(let source) = link[0] else { return nil }
            return source
        }
    }

    /// Dependencies first, from each output in id order (ComfyUI does not run nodes in id order either).
    static func executionOrder(_ graph: [String: JSONValue], outputs: [String]) -> [String] {
        var order: [String] = []
        var seen: Set<String> = []
        func visit(_ id: String) {
            guard !seen.contains(id), graph[id] != nil else { return }
            seen.insert(id)
            for dependency in dependencies(graph, id) { visit(dependency) }
            order.append(id)
        }
        for output in outputs { visit(output) }
        return order
    }

    static func batchSize(_ graph: [String: JSONValue], from link: JSONValue?) -> Int {
        guard case .array(let parts)? = link, case .string(let source)? = parts.first else { return 1 }
        if let batch = graph[source]?["inputs"]?["batch_size"]?.numberValue.flatMap({ Int($0.description) }) { return max(1, batch) }
        return batchSize(graph, from: graph[source]?["inputs"]?["image"] ?? graph[source]?["inputs"]?["images"])
    }

    /// Deterministic bytes with a PNG signature, different per seed.
    static func fakePNG(_ seed: String) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array("fake image \(seed)".utf8)
    }
}
