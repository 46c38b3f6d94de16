import Foundation
import SwitchyardCore
import Synchronization

/// Why a prompt did not produce its outputs, with what an executor needs to say whose fault it was.
public enum ComfyUIPromptError: Error, Sendable, Equatable, CustomStringConvertible {
    /// ComfyUI could not be reached before the prompt was queued: the machine's engine is down, the task is not
    /// to blame and no work was done.
    case unreachable(String)
    /// `POST /prompt` answered 400, or 200 with `node_errors` (a partly valid graph ComfyUI would run only in part).
    case refused(String)
    /// `POST /prompt` answered 5xx.
    case serverError(String)
    /// `execution_error`: a node raised.
    case failed(String)
    /// Interrupted by someone other than us (ComfyUI's own UI, another client's global interrupt).
    case interrupted(String)
    /// The connection dropped mid-prompt and the prompt could not be followed to its end (ComfyUI died or forgot it).
    case lost(String)
    /// A finished prompt whose outputs could not be read or fetched.
    case outputs(String)
    /// We asked it to stop and it did (or the stop timed out); `at` is when ComfyUI confirmed.
    case stopped(at: Date)

    public var description: String {
        switch self {
        case .unreachable(let text), .refused(let text), .serverError(let text), .failed(let text), .interrupted(let text), .lost(let text),
            .outputs(let text):
            text
        case .stopped(let at): "stopped at \(at)"
        }
    }
}

/// A stop request for one prompt, which may come before it is posted, while it waits in ComfyUI's queue, or
/// while it runs.
public final class ComfyUIStop: Sendable {
    private struct State {
        var requested = false
        var notify: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    public init() {}

    public var isRequested: Bool { state.withLock { $0.requested } }

    public func request() {
        let notify = state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.requested else { return nil }
            state.requested = true
            return state.notify
        }
        notify?()
    }

    /// `action` runs once when a stop is requested (at once when it already was).
    func onRequest(_ action: @escaping @Sendable () -> Void) {
        let already = state.withLock { state -> Bool in
            state.notify = action
            return state.requested
        }
        if already { action() }
    }
}

extension ComfyUIConnection {
    /// Settings of a prompt run.
    public struct RunOptions: Sendable {
        /// How long a stopped prompt may take to confirm before we stop waiting.
        public var stopTimeout: Duration = .seconds(60)
        /// How long to try to reopen a dropped socket before the prompt counts as lost.
        public var reconnectWindow: Duration = .seconds(15)
        /// How long to retry reading a finished prompt's history when it is still empty.
        public var historyWindow: Duration = .seconds(5)

        public init() {}
    }

    private enum Step: Sendable {
        case signal(Signal)
        case stop
        case stopTimedOut
    }

    /// Posts `graph` as `promptId` and follows it to its end over the shared socket: `onEvent` hears every message
    /// (`started` when ComfyUI takes it from its queue), and the outputs come from the prompt's history, read only
    /// after `executing {"node": null}` — ComfyUI sends `execution_success` before it writes that entry. A stop
    /// deletes a queued prompt and interrupts a running one, and ends with `.stopped` once ComfyUI confirmed.
    public func run(
        promptId: String, graph: [String: JSONValue], extraData: [String: JSONValue] = [:], stop: ComfyUIStop, options: RunOptions = RunOptions(),
        onEvent: @escaping @Sendable (ComfyUIEvent) -> Void
    ) async throws(ComfyUIPromptError) -> [ComfyUIOutput] {
        let signals = try await watchPrompt(promptId)
        defer { unwatch(promptId) }
        if stop.isRequested { throw .stopped(at: Date()) }
        let answer: ComfyUIClient.Answer
        do {
            answer = try await client.postPrompt(graph, promptId: promptId, clientId: clientId, extraData: extraData)
        } catch {
            throw .unreachable("ComfyUI at \(client.baseURL) did not take the prompt: \(error)")
        }
        if let refusal = Self.refusal(status: answer.status, body: answer.body) { throw refusal }
        return try await follow(promptId, signals: signals, started: false, stop: stop, options: options, onEvent: onEvent)
    }

    /// Follows a prompt posted before (by an earlier run of this agent, which crashed or was restarted) to its end,
    /// as `run` follows its own: its outputs at once when it finished meanwhile, `.lost` when ComfyUI no longer
    /// knows it. Its messages reach this socket because the client id is the same (`ComfyUIExecutor` derives it from
    /// the agent id).
    public func resume(
        promptId: String, stop: ComfyUIStop, options: RunOptions = RunOptions(), onEvent: @escaping @Sendable (ComfyUIEvent) -> Void
    ) async throws(ComfyUIPromptError) -> [ComfyUIOutput] {
        let signals = try await watchPrompt(promptId)
        defer { unwatch(promptId) }
        if stop.isRequested { throw .stopped(at: Date()) }
        switch await recover(promptId, options: options) {
        case .ended(let entry):
            return try await outputs(from: entry, promptId: promptId, announced: [:], succeeded: false, options: options)
        case .lost(let reason):
            throw .lost(reason)
        case .runs:
            let running = (try? await client.queuePlace(of: promptId)) == .running
            if running { onEvent(.started) }
            return try await follow(promptId, signals: signals, started: running, stop: stop, options: options, onEvent: onEvent)
        }
    }

    private func watchPrompt(_ promptId: String) async throws(ComfyUIPromptError) -> AsyncStream<Signal> {
        do {
            return try await watch(promptId)
        } catch {
            throw .unreachable("ComfyUI at \(client.baseURL) is not reachable: \(error)")
        }
    }

    /// Hears the prompt's messages to its end (see `run`).
    private func follow(
        _ promptId: String, signals: AsyncStream<Signal>, started: Bool, stop: ComfyUIStop, options: RunOptions,
        onEvent: @escaping @Sendable (ComfyUIEvent) -> Void
    ) async throws(ComfyUIPromptError) -> [ComfyUIOutput] {
        let (steps, continuation) = AsyncStream.makeStream(of: Step.self)
        let pump = Task {
            for await signal in signals { continuation.yield(.signal(signal)) }
            continuation.finish()
        }
        defer {
            pump.cancel()
            continuation.finish()
        }
        stop.onRequest { continuation.yield(.stop) }

        var started = started
        var succeeded = false
        var stopping = false
        var finished = false
        var announced: [String: JSONValue] = [:]
        loop: for await step in steps {
            switch step {
            case .signal(.event(let event)):
                switch event {
                case .started:
                    started = true
                case .executed(let node, let output):
                    announced[node] = output
                case .succeeded:
                    succeeded = true
                case .failed(let data):
                    if stopping { throw .stopped(at: Date()) }
                    throw .failed(Self.describeError(data))
                case .interrupted(let data):
                    if stopping { throw .stopped(at: Date()) }
                    throw .interrupted(
                        "ComfyUI interrupted the prompt at node \(Self.nodeName(data)) (stopped on the machine itself, not by Switchyard)")
                case .finished:
                    finished = true
                    break loop
                default: break
                }
                onEvent(event)
            case .signal(.socketLost):
                switch await recover(promptId, options: options) {
                case .runs: continue loop
                case .ended(let entry):
                    if stopping { throw .stopped(at: Date()) }
                    return try await outputs(from: entry, promptId: promptId, announced: announced, succeeded: succeeded, options: options)
                case .lost(let reason): throw .lost(reason)
                }
            case .stop:
                stopping = true
                if !started {
                    // Queued, not running: delete it. It may have started in between; then it is interrupted.
                    try? await client.deleteFromQueue(promptId)
                    let place = (try? await client.queuePlace(of: promptId)) ?? .absent
                    if place != .running { throw .stopped(at: Date()) }
                }
                try? await client.interrupt(promptId)
                let timeout = options.stopTimeout
                Task {
                    try? await Task.sleep(for: timeout)
                    continuation.yield(.stopTimedOut)
                }
            case .stopTimedOut:
                throw .stopped(at: Date())
            }
        }
        if stopping { throw .stopped(at: Date()) }
        guard finished else { throw .lost("the ComfyUI connection closed before the prompt finished") }
        let entry = await readHistory(promptId, window: options.historyWindow)
        return try await outputs(from: entry, promptId: promptId, announced: announced, succeeded: succeeded, options: options)
    }

    private enum Recovery {
        case runs
        case ended(JSONValue?)
        case lost(String)
    }

    /// After the socket dropped: reopen it, then learn from `/history` and `/queue` whether the prompt ended
    /// meanwhile, still runs or waits, or is gone (ComfyUI restarted).
    private func recover(_ promptId: String, options: RunOptions) async -> Recovery {
        let clock = ContinuousClock()
        let deadline = clock.now + options.reconnectWindow
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await open()
                if let entry = try await client.history(promptId) { return .ended(entry) }
                switch try await client.queuePlace(of: promptId) {
                case .running, .pending: return .runs
                case .absent:
                    // Finished between the two reads, or forgotten by a restarted server.
                    if let entry = try await client.history(promptId) { return .ended(entry) }
                    return .lost("ComfyUI at \(client.baseURL) no longer knows the prompt (it restarted mid-prompt)")
                }
            } catch {
                guard clock.now < deadline else {
                    return .lost("lost the connection to ComfyUI at \(client.baseURL) mid-prompt and could not reconnect: \(error)")
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// The history entry of a finished prompt. After `executing {"node": null}` it exists; the bounded retry covers a
    /// server that answers before it is written.
    private func readHistory(_ promptId: String, window: Duration) async -> JSONValue? {
        let clock = ContinuousClock()
        let deadline = clock.now + window
        var delay = Duration.milliseconds(2)
        while true {
            if let entry = try? await client.history(promptId) { return entry }
            guard clock.now < deadline else { return nil }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(250))
        }
    }

    /// A finished prompt's outputs from its history entry; when ComfyUI never wrote one, from the `executed`
    /// messages of a prompt that reported success.
    private func outputs(from entry: JSONValue?, promptId: String, announced: [String: JSONValue], succeeded: Bool, options: RunOptions)
        async throws(ComfyUIPromptError) -> [ComfyUIOutput]
    {
        guard let entry else {
            guard succeeded else { throw .outputs("ComfyUI finished the prompt but its history has no entry for it") }
            return ComfyUIOutput.list(.object(announced))
        }
        let status = entry["status"]
        if status?["status_str"]?.stringValue == "error" {
            let last = status?["messages"]?.arrayValue?.last?.arrayValue
            let kind = last?.first?.stringValue
            let data = last?.dropFirst().first ?? .null
            if kind == "execution_interrupted" {
                throw .interrupted("ComfyUI interrupted the prompt at node \(Self.nodeName(data)) (stopped on the machine itself, not by Switchyard)")
            }
            throw .failed(kind == "execution_error" ? Self.describeError(data) : "ComfyUI reports the prompt failed")
        }
        guard let outputs = entry["outputs"], outputs.objectValue != nil else {
            throw .outputs("ComfyUI's history for the prompt lists no outputs (nodes that ran: \(announced.keys.sorted().joined(separator: ", ")))")
        }
        return ComfyUIOutput.list(outputs)
    }

    // MARK: Readable errors

    /// A refused `POST /prompt` (400, or 200 with `node_errors`) as a readable error; nil when accepted.
    public static func refusal(status: Int, body: [UInt8]) -> ComfyUIPromptError? {
        guard let answer = try? JSONValue.parse(body) else {
            guard status != 200 else { return nil }
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            return status >= 500
                ? .serverError("ComfyUI failed on POST /prompt (\(status)): \(text)")
                : .refused("ComfyUI answered POST /prompt with \(status): \(text)")
        }
        var problems: [String] = []
        if let nodeErrors = answer["node_errors"]?.objectValue {
            for nodeId in nodeErrors.keys.sorted(by: ComfyUIOutput.nodeOrder) {
                let node = nodeErrors[nodeId] ?? .null
                let classType = node["class_type"]?.stringValue ?? "?"
                for error in node["errors"]?.arrayValue ?? [] {
                    let message = error["message"]?.stringValue ?? "error"
                    let details = error["details"]?.stringValue ?? ""
                    problems.append("node \(nodeId) (\(classType)): \(message)\(details.isEmpty ? "" : ": \(details)")")
                }
            }
        }
        if status == 200 && problems.isEmpty { return nil }
        if status >= 500 { return .serverError("ComfyUI failed on POST /prompt (\(status))") }
        if problems.isEmpty, let error = answer["error"] {
            let details = error["details"]?.stringValue ?? ""
            problems.append((error["message"]?.stringValue ?? "ComfyUI refused the prompt") + (details.isEmpty ? "" : " (\(details))"))
        }
        return .refused("ComfyUI refused the workflow: " + problems.joined(separator: "; "))
    }

    /// `node 3 (SaveImage) failed: Exception: …` from an `execution_error`.
    public static func describeError(_ data: JSONValue) -> String {
        let type = data["exception_type"]?.stringValue ?? "error"
        let message = (data["exception_message"]?.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return "node \(nodeName(data)) failed: \(type): \(message)"
    }

    static func nodeName(_ data: JSONValue) -> String {
        "\(data["node_id"]?.stringValue ?? "?") (\(data["node_type"]?.stringValue ?? "?"))"
    }
}
