import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardWire
import WSClient

/// `switchyard agent`: dials out to the gateway, says who it is, keeps the session alive with heartbeats and
/// health reports, runs offered attempts on its executor, uploads their outputs and reports how they ended.
/// Reconnects with backoff (1 s doubling to 60 s, with jitter) and lists the attempts it still runs.
public actor AgentRunner {
    public let configuration: AgentConfiguration
    let executor: any ToolExecutor
    let http: HTTPClient
    let logger: Logger

    /// The current session's outbox (nil while disconnected); one writer drains it in order.
    private var outbox: AsyncStream<AgentMessage>.Continuation?
    private var pendingMessages: [AgentMessage] = []
    /// The last report (complete/fail/stopped) of each attempt that ended in the last minute, by attempt id. The
    /// gateway does not confirm reports: one written just before its replica died is lost with it. So the next
    /// session lists these attempts as held and sends their reports again — a gateway that already has them
    /// refuses the repeat and changes nothing; one that adopted the dead replica's attempt records the end.
    private var recentEnds: [String: (message: AgentMessage, at: ContinuousClock.Instant)] = [:]
    static let endReplayWindow = Duration.seconds(60)
    private var attempts: [String: Task<Void, Never>] = [:]
    private var uploadWaiters: [String: CheckedContinuation<GatewayMessage.UploadURL, any Error>] = [:]
    /// Upload requests not answered yet, by request id: sent again at the start of the next session, since one
    /// written into a session that was dying is lost (the attempt would wait for its URL forever).
    private var unansweredUploads: [String: AgentMessage] = [:]
    /// Attempts found in the engine at start (`recoverAttempts`) waiting for the next welcome to say whether the
    /// gateway still gives them to this agent; and decisions made before their attempt asked.
    private var recovering: [String: Recovery] = [:]

    private enum Recovery {
        /// Listed in the hello; the welcome has not said yet.
        case undecided
        /// Its attempt waits for the welcome.
        case waiting(CheckedContinuation<Bool, Never>)
        /// Said (kept or not) before its attempt asked.
        case decided(Bool)
    }
    var status: AgentStatus = .idle
    /// Syncs the team's models when a models root is configured (nil otherwise), and what its sync is doing.
    var models: ModelSync?
    var modelEvents: Task<Void, Never>?
    var modelSyncOffLogged = false
    var modelSyncUnusable = false
    var syncProgress: SyncProgress?
    /// The current session got its `welcome`.
    private var welcomed = false
    /// When `run` probed the engine; the first session uses that answer.
    private var healthProbedAt: ContinuousClock.Instant?
    var health = ToolHealth(healthy: false)
    /// Set by a `goodbye` that says reconnecting cannot help.
    private var fatal: String?

    public init(configuration: AgentConfiguration, executor: any ToolExecutor, http: HTTPClient = .shared, logger: Logger) {
        self.configuration = configuration
        self.executor = executor
        self.http = http
        self.logger = logger
        (postedMessages, posted) = AsyncStream.makeStream(of: AgentMessage.self)
    }

    /// Queues a message behind every earlier posted one; never suspends.
    nonisolated func post(_ message: AgentMessage) {
        posted.yield(message)
    }

    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    /// Messages from attempts, in the order they were posted (progress, started, outputs, the end): one pump moves
    /// them into the session's outbox, so a report never overtakes an earlier one.
    private nonisolated let posted: AsyncStream<AgentMessage>.Continuation
    private let postedMessages: AsyncStream<AgentMessage>

    /// Runs until cancelled, or until the gateway refuses the agent for good.
    public func run() async throws {
        // A ComfyUI that does not answer is said at once; it has nothing to recover from (its list would only time out).
        health = await executor.health()
        healthProbedAt = .now
        if health.healthy {
            recoverAttempts(await executor.recoverable(window: Self.recoveryWindow))
        } else {
            logger.warning(
                "ComfyUI is not answering; connecting as unhealthy",
                metadata: ["comfyui": "\(configuration.comfyUI)", "detail": "\(health.detail ?? "")"])
        }
        defer { modelEvents?.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in self.postedMessages { await self.send(message) }
            }
            group.addTask { await self.watchHealth() }
            defer { group.cancelAll() }
            try await self.sessions()
        }
    }

    /// One session after another. With several servers (replicas) a dropped session moves on to the next one at
    /// once, listing the attempts it holds, and backs off only after each was tried.
    private func sessions() async throws {
        var delay = 1.0
        let urls = configuration.gatewayURLs
        var next = 0
        while !Task.isCancelled {
            let began = ContinuousClock.now
            let url = urls[next % urls.count]
            next += 1
            welcomed = false
            do {
                try await session(url: url)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("gateway session ended", metadata: ["gateway": "\(url)", "error": "\(error)"])
                // The server answered, but not with the upgrade: ask it why (a server that is down is not asked).
                if !welcomed, error as? WebSocketClientError == .webSocketUpgradeFailed,
                    let refusal = await Self.keyRefusal(gateway: url, key: configuration.key)
                {
                    fatal = refusal
                }
            }
            if let fatal { throw Refused(description: fatal) }
            if welcomed, urls.count > 1, began.duration(to: .now) > .seconds(5) {
                // A session that worked dropped: its server is tried again first — it holds this agent's attempts
                // for a while. A server that is gone refuses at once, and the next one is tried.
                next -= 1
                delay = 1
                continue
            }
            if began.duration(to: .now) > .seconds(30) { delay = 1 }
            if urls.count > 1, next % urls.count != 0 || began.duration(to: .now) > .seconds(30) {
                logger.info("trying the next server", metadata: ["gateway": "\(urls[next % urls.count])"])
                continue
            }
            let jittered = delay * Double.random(in: 0.8...1.2)
            logger.info("reconnecting", metadata: ["in_seconds": "\(String(format: "%.1f", jittered))"])
            try? await Task.sleep(for: .milliseconds(Int(jittered * 1000)))
            delay = min(delay * 2, 60)
        }
    }

    // MARK: Session

    private func session(url: String) async throws {
        // Probed again unless the start just did (a ComfyUI that is down takes its whole timeout to say so).
        if healthProbedAt.map({ $0.duration(to: .now) > .seconds(1) }) ?? true { health = await executor.health() }
        healthProbedAt = nil
        if models == nil, configuration.modelSync, !modelSyncUnusable, health.healthy { await startModelSync() }
        // An agent that syncs connects `syncing` until it has checked the team's set (it may have changed meanwhile):
        // only tasks whose models it already holds are offered to it until then.
        if models != nil, syncProgress == nil { syncProgress = ModelSync.checking }
        status = currentStatus()
        var wsConfiguration = WebSocketClientConfiguration(maxFrameSize: 16 * 1024 * 1024)
        wsConfiguration.additionalHeaders[.authorization] = "Bearer \(configuration.key)"
        let hello = AgentMessage.Hello(
            agentId: configuration.agentId, agentVersion: AgentVersion.current, tool: executor.tool, toolVersion: health.toolVersion,
            labels: Self.sessionLabels(configured: configuration.labels, detectGPU: configuration.detectGPU, health: health),
            region: configuration.region, communityOptIn: configuration.communityOptIn,
            capacity: configuration.capacity, prefetch: configuration.prefetch, status: status, systemStats: health.systemStats ?? SystemStats(),
            heldAttempts: Set(attempts.keys).union(replayableEnds().map(\.key)).sorted(), modelSync: models != nil, models: await models?.held)
        // Whatever way the session ends (a reset socket throws), later messages wait for the next one.
        defer { detach() }
        try await WebSocketClient.connect(url: url, configuration: wsConfiguration, logger: logger) { inbound, outbound, _ in
            try await outbound.writeTextMessage(try WireCoding.encode(AgentMessage.hello(hello)))
            var messages = inbound.messages(maxSize: 16 * 1024 * 1024).makeAsyncIterator()
            guard case .text(let text)? = try await messages.next() else { return }
            switch try WireCoding.decodeGatewayMessage(text) {
            case .welcome(let welcome):
                await self.markWelcomed()
                await self.settleRecovered(kept: welcome.keptAttempts)
                let outgoing = await self.attach()
                self.logger.info("connected to the gateway", metadata: ["gateway": "\(welcome.gatewayId)", "agent_id": "\(welcome.agentId)"])
                // The writer: once a write fails, it and every later message wait for the next session. It is not
                // cancelled when the session ends: the outbox is finished, and it drains what is left into the
                // next session's queue, so nothing written into a dying session is lost.
                let writer = Task {
                    var broken = false
                    for await message in outgoing {
                        if !broken {
                            do {
                                try await outbound.writeTextMessage(try WireCoding.encode(message))
                                continue
                            } catch {
                                broken = true
                            }
                        }
                        await self.requeue(message)
                    }
                }
                let heartbeats = Task { try await self.heartbeats(every: welcome.heartbeatInterval) }
                var failure: (any Error)?
                do {
                    while let message = try await messages.next() {
                        guard case .text(let text) = message else { continue }
                        do {
                            try await self.receive(WireCoding.decodeGatewayMessage(text))
                        } catch let error as WireError {
                            self.logger.debug("ignored a gateway message", metadata: ["error": "\(error)"])
                        }
                    }
                } catch {
                    failure = error
                }
                heartbeats.cancel()
                await self.detach()
                await writer.value
                if let failure { throw failure }
            case .goodbye(let goodbye):
                await self.refuse(goodbye)
            default:
                return
            }
        }
    }

    private func markWelcomed() { welcomed = true }

    private func attach() -> AsyncStream<AgentMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: AgentMessage.self)
        outbox = continuation
        let queued = pendingMessages
        pendingMessages = []
        let queuedEnds = Set(queued.compactMap { $0.endsAttempt ? $0.attemptId : nil })
        for (attemptId, end) in replayableEnds() where !queuedEnds.contains(attemptId) { continuation.yield(end.message) }
        let queuedUploads = Set(queued.compactMap { if case .uploadRequest(let request) = $0 { request.requestId } else { nil } })
        for (requestId, request) in unansweredUploads where !queuedUploads.contains(requestId) { continuation.yield(request) }
        for message in queued { continuation.yield(message) }
        return stream
    }

    /// The reports of attempts that ended within `endReplayWindow` (older ones are forgotten).
    private func replayableEnds() -> [String: (message: AgentMessage, at: ContinuousClock.Instant)] {
        let now = ContinuousClock.now
        recentEnds = recentEnds.filter { $0.value.at.duration(to: now) < Self.endReplayWindow }
        return recentEnds
    }

    private func requeue(_ message: AgentMessage) {
        pendingMessages.append(message)
    }

    /// The session ended: messages wait for the next one. Attempts waiting for an upload URL keep waiting — their
    /// requests are sent again — unless the attempt is refused or cancelled meanwhile.
    private func detach() {
        outbox?.finish()
        outbox = nil
    }

    /// Fails the attempt's pending upload waits (it was refused or cancelled: no URL will come).
    private func abandonUploads(of attemptId: String) {
        for (requestId, request) in unansweredUploads where request.attemptId == attemptId {
            unansweredUploads[requestId] = nil
            uploadWaiters.removeValue(forKey: requestId)?.resume(
                throwing: ExecutionFailure("the gateway no longer holds the attempt", fault: .platform))
        }
    }

    private func refuse(_ goodbye: GatewayMessage.Goodbye) {
        logger.error("the gateway ended the session", metadata: ["reason": "\(goodbye.reason)", "retry": "\(goodbye.retry)"])
        if !goodbye.retry { fatal = "the gateway refused this agent: \(goodbye.reason)" }
    }

    /// Messages are written in order by the session's writer; while disconnected, they wait for the next session.
    /// Never suspends, so a cancelled attempt can still report that it stopped.
    private func send(_ message: AgentMessage) {
        if message.endsAttempt, let attemptId = message.attemptId { recentEnds[attemptId] = (message, ContinuousClock.now) }
        if let outbox, case .enqueued = outbox.yield(message) { return }
        pendingMessages.append(message)
    }

    private func heartbeats(every interval: Double) async throws {
        while true {
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            await probe()
            send(.heartbeat(.init(status: status, running: attempts.keys.sorted(), systemStats: health.systemStats)))
        }
    }

    /// Probes the engine and reports a change of state at once (`unhealthy` takes the agent out of dispatch).
    private func probe() async {
        let previous = status
        health = await executor.health()
        status = currentStatus()
        if status != previous {
            if status == .unhealthy || previous == .unhealthy {
                logger.warning(
                    "engine health changed",
                    metadata: ["status": "\(status.rawValue)", "comfyui": "\(configuration.comfyUI)", "detail": "\(health.detail ?? "")"])
            }
            post(.status(.init(status: status, detail: health.detail)))
        }
    }

    /// While the engine is down it is probed every `unhealthyProbeInterval`, so the agent is back in dispatch within
    /// that time of the engine answering again (heartbeats probe it otherwise).
    private func watchHealth() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.unhealthyProbeInterval)
            if status == .unhealthy { await probe() }
        }
    }

    /// An attempt found the engine unreachable: mark the agent unhealthy before the attempt is given back, so the
    /// dispatcher does not hand the task straight back to it.
    private func engineUnavailable(_ detail: String) {
        health = ToolHealth(healthy: false, detail: detail)
        guard status != .unhealthy else { return }
        status = .unhealthy
        post(.status(.init(status: .unhealthy, detail: detail)))
    }

    func currentStatus() -> AgentStatus {
        guard health.healthy else { return .unhealthy }
        if syncProgress != nil { return .syncing }
        return attempts.isEmpty ? .idle : .busy
    }

    // MARK: Attempts

    private func receive(_ message: GatewayMessage) async throws {
        switch message {
        case .offer(let offer):
            guard attempts[offer.attemptId] == nil else { return }
            attempts[offer.attemptId] = Task { await self.runAttempt(offer) }
        case .uploadURL(let url):
            unansweredUploads[url.requestId] = nil
            uploadWaiters.removeValue(forKey: url.requestId)?.resume(returning: url)
        case .cancel(let ref):
            attempts[ref.attemptId]?.cancel()
            abandonUploads(of: ref.attemptId)
            // An ended attempt listed again: the gateway does not hold it, so its report need not be sent again.
            if attempts[ref.attemptId] == nil { recentEnds[ref.attemptId] = nil }
        case .refused(let refusal):
            if let attemptId = refusal.attemptId, attempts[attemptId] == nil, recentEnds.removeValue(forKey: attemptId) != nil {
                // A repeated report the gateway already had (or no longer wants): expected after a reconnect.
                logger.debug("the gateway did not need a repeated report", metadata: ["attempt_id": "\(attemptId)", "reason": "\(refusal.reason)"])
                return
            }
            logger.warning("the gateway refused a message", metadata: ["attempt_id": "\(refusal.attemptId ?? "-")", "reason": "\(refusal.reason)"])
            if let attemptId = refusal.attemptId {
                attempts[attemptId]?.cancel()
                abandonUploads(of: attemptId)
            }
        case .goodbye(let goodbye):
            refuse(goodbye)
            throw CancellationError()
        case .models(let set):
            await models?.update(set)
        case .modelURL(let answer):
            await models?.answerURL(answer)
        case .welcome:
            return
        }
    }

    // MARK: Recovery

    /// How far back finished work in the engine is looked for at start: the gateway keeps a dropped agent's
    /// attempts `dispatch.reconnectGrace` (30 s by default), and a later reconnect would find them ended.
    static let recoveryWindow = Duration.seconds(120)

    /// What an earlier run of this agent left in its engine — it crashed or was restarted mid-attempt — is listed as
    /// held in the first hello. The gateway keeps what it still gives this agent (`kept_attempts` of the welcome):
    /// those are followed to their end and reported, instead of the task running a second time elsewhere; the rest
    /// are stopped in the engine without a report.
    private func recoverAttempts(_ found: [RecoveredAttempt]) {
        guard !found.isEmpty else { return }
        logger.info("found attempts of an earlier run in the engine", metadata: ["count": "\(found.count)"])
        for attempt in found where attempts[attempt.attemptId] == nil {
            recovering[attempt.attemptId] = .undecided
            attempts[attempt.attemptId] = Task { await self.resumeAttempt(attempt) }
        }
    }

    /// The gateway's answer for each recovered attempt still waiting for one (an older gateway says nothing: then
    /// it will refuse or cancel what it does not hold).
    private func settleRecovered(kept: [String]?) {
        for (attemptId, state) in recovering {
            let isKept = kept.map { $0.contains(attemptId) } ?? true
            switch state {
            case .undecided: recovering[attemptId] = .decided(isKept)
            case .waiting(let attempt):
                recovering[attemptId] = nil
                attempt.resume(returning: isKept)
            case .decided: break
            }
        }
    }

    /// Whether the gateway gives the recovered attempt back to this agent: waits for the welcome (false if the
    /// attempt is cancelled meanwhile).
    private func decision(_ attemptId: String) async -> Bool {
        if case .decided(let kept) = recovering[attemptId] {
            recovering[attemptId] = nil
            return kept
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled || recovering[attemptId] == nil {
                    continuation.resume(returning: false)
                } else {
                    recovering[attemptId] = .waiting(continuation)
                }
            }
        } onCancel: {
            Task { await self.cancelledWhileRecovering(attemptId) }
        }
    }

    private func cancelledWhileRecovering(_ attemptId: String) {
        guard case .waiting(let attempt) = recovering.removeValue(forKey: attemptId) else { return }
        attempt.resume(returning: false)
    }

    private func resumeAttempt(_ attempt: RecoveredAttempt) async {
        let attemptId = attempt.attemptId
        guard await decision(attemptId), !Task.isCancelled else {
            logger.info("an attempt of an earlier run is no longer this agent's; stopping it in the engine", metadata: ["attempt_id": "\(attemptId)"])
            await executor.abandon(attempt)
            recovering[attemptId] = nil
            attempts[attemptId] = nil
            return
        }
        logger.info("attempt resumed after a restart", metadata: ["attempt_id": "\(attemptId)", "task_id": "\(attempt.taskId)"])
        // Its ack may have been lost with the crash; a repeat changes nothing.
        post(.ack(.init(attemptId: attemptId)))
        await finish(attemptId, since: .now) { report in try await self.executor.resume(attempt, report: report) }
    }

    // MARK: Attempts

    private func runAttempt(_ offer: GatewayMessage.Offer) async {
        let started = ContinuousClock.now
        let attemptId = offer.attemptId
        post(.ack(.init(attemptId: attemptId)))
        // One line when an attempt arrives and one when it ends, so an attempt's fate can be read from the log.
        logger.info("attempt received", metadata: ["attempt_id": "\(attemptId)", "task_id": "\(offer.taskId)"])
        defer { attempts[attemptId] = nil }
        guard health.healthy else {
            // Offered before the gateway heard that the engine is down: give it back at once, no retry used.
            post(.status(.init(status: .unhealthy, detail: health.detail)))
            post(
                .fail(
                    .init(
                        attemptId: attemptId,
                        error: "agent \(configuration.agentId) cannot run it: \(health.detail ?? "its engine is not reachable")", fault: .platform)))
            return
        }
        if let models, let required = offer.requiredModels, !required.isEmpty {
            // Its models first (the task stays queued meanwhile: its timeout counts from the engine's start).
            defer { Task { await models.release(attemptId) } }
            let note: @Sendable (String) -> Void = { [weak self] message in self?.post(.note(.init(attemptId: attemptId, message: message))) }
            if let problem = await models.ensure(required, for: attemptId, fetching: note) {
                logger.warning("attempt cannot run here: a model is missing", metadata: ["attempt_id": "\(attemptId)", "reason": "\(problem)"])
                post(.fail(.init(attemptId: attemptId, error: "agent \(configuration.agentId): \(problem)", fault: .agent)))
                return
            }
            await finishAttempt(offer, since: started)
            return
        }
        await finishAttempt(offer, since: started)
    }

    private func finishAttempt(_ offer: GatewayMessage.Offer, since started: ContinuousClock.Instant) async {
        let attemptId = offer.attemptId
        await finish(attemptId, since: started) { report in
            var inputs: [ExecutionJob.Input] = []
            for input in offer.inputs {
                inputs.append(ExecutionJob.Input(offer: input, bytes: try await self.download(input)))
            }
            let job = ExecutionJob(
                attemptId: attemptId, taskId: offer.taskId, definition: try offer.definition(), inputs: inputs,
                keepPreviews: offer.keepPreviews ?? true)
            return try await self.executor.execute(job, report: report)
        }
    }

    /// Runs the attempt's work on the executor, uploads what it produced and reports how it ended.
    private func finish(
        _ attemptId: String, since started: ContinuousClock.Instant,
        work: @escaping @Sendable (@escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput]
    ) async {
        defer { attempts[attemptId] = nil }
        do {
            let produced = try await work { [weak self] report in
                guard let self else { return }
                switch report {
                case .started:
                    self.logger.info("attempt started in the engine", metadata: ["attempt_id": "\(attemptId)"])
                    self.post(.started(.init(attemptId: attemptId)))
                case .progress(let progress):
                    self.post(
                        .progress(
                            .init(
                                attemptId: attemptId, progress: progress.progress, stepCurrent: progress.stepCurrent, stepTotal: progress.stepTotal,
                                currentNode: progress.currentNode)))
                }
            }
            let outputs = try await withThrowingTaskGroup(of: OutputFile.self) { group in
                for output in produced { group.addTask { try await self.upload(output, attemptId: attemptId) } }
                var uploaded: [OutputFile] = []
                while let output = try await group.next() { uploaded.append(output) }
                return uploaded
            }
            try Task.checkCancellation()
            logger.info(
                "attempt completed",
                metadata: ["attempt_id": "\(attemptId)", "outputs": "\(outputs.count)", "seconds": "\(Self.seconds(started.duration(to: .now)))"])
            post(.complete(.init(attemptId: attemptId, outputs: outputs)))
        } catch let stopped as ExecutionStopped {
            logger.info("attempt stopped", metadata: ["attempt_id": "\(attemptId)"])
            post(.cancelled(.init(attemptId: attemptId, stoppedAt: stopped.at, gpuSeconds: Self.seconds(started.duration(to: .now)))))
        } catch is CancellationError {
            logger.info("attempt stopped", metadata: ["attempt_id": "\(attemptId)"])
            post(.cancelled(.init(attemptId: attemptId, stoppedAt: Date(), gpuSeconds: Self.seconds(started.duration(to: .now)))))
        } catch let failure as ExecutionFailure {
            logger.info(
                "attempt failed", metadata: ["attempt_id": "\(attemptId)", "fault": "\(failure.fault.rawValue)", "error": "\(failure.message)"])
            if failure.toolUnavailable {
                engineUnavailable(failure.message)
                post(.fail(.init(attemptId: attemptId, error: "agent \(configuration.agentId) cannot run it: \(failure.message)", fault: .platform)))
            } else {
                post(.fail(.init(attemptId: attemptId, error: failure.message, fault: failure.fault)))
            }
        } catch {
            logger.info("attempt failed", metadata: ["attempt_id": "\(attemptId)", "fault": "agent", "error": "\(error)"])
            post(.fail(.init(attemptId: attemptId, error: "the agent failed: \(error)", fault: .agent)))
        }
    }

    private func download(_ input: OfferInput) async throws -> [UInt8] {
        let response = try await http.execute(HTTPClientRequest(url: input.downloadURL), timeout: .seconds(600))
        guard response.status == .ok else {
            throw ExecutionFailure("could not fetch input \"\(input.parameter)\": the store answered \(response.status.code)", fault: .platform)
        }
        return Array(buffer: try await response.body.collect(upTo: 8 << 30))
    }

    /// Uploads one output: an upload URL from the gateway, then the PUT. A PUT that cannot reach the store (its
    /// replica's embedded store went away with the replica, a connection reset) is tried again with a fresh URL,
    /// three times in all, before the attempt fails — the work is done; only its upload failed.
    private func upload(_ output: ProducedOutput, attemptId: String) async throws -> OutputFile {
        var tries = 0
        while true {
            tries += 1
            do {
                return try await uploadOnce(output, attemptId: attemptId)
            } catch let error as HTTPClientError where tries < 3 {
                logger.warning("an output upload failed; asking for a new URL", metadata: ["attempt_id": "\(attemptId)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200 * tries))
            }
        }
    }

    private func uploadOnce(_ output: ProducedOutput, attemptId: String) async throws -> OutputFile {
        let requestId = UUID().uuidString.lowercased()
        let url = try await withCheckedThrowingContinuation { continuation in
            uploadWaiters[requestId] = continuation
            let request = AgentMessage.uploadRequest(
                .init(
                    attemptId: attemptId, requestId: requestId, fileName: output.fileName, contentType: output.contentType, size: output.bytes.count))
            unansweredUploads[requestId] = request
            send(request)
        }
        var request = HTTPClientRequest(url: url.url)
        request.method = .PUT
        for (name, value) in url.headers where name.lowercased() != "content-length" { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: output.bytes))
        let response = try await http.execute(request, timeout: .seconds(600))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw ExecutionFailure("the store refused output \(output.fileName) (\(response.status.code))", fault: .platform)
        }
        return OutputFile(
            nodeId: output.nodeId, kind: output.kind, index: output.index, fileName: output.fileName, storageKey: url.storageKey,
            contentType: output.contentType, size: output.bytes.count, preview: output.preview ? true : nil, animated: output.animated ? true : nil,
            text: output.text.flatMap { $0.utf8.count <= 65_536 ? $0 : nil })
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
