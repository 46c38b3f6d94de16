import Foundation
import Hummingbird
import ServiceLifecycle
import SwitchyardCore

/// `/r/tasks` (api.md §2.2, runtime surface): poll, list, cancel and fetch results. A task of another team
/// answers 404 exactly like a missing one.
struct TasksController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    let objects: ObjectStorage
    let dispatcher: Dispatcher
    let hub: TaskEventHub
    let metrics: ServerMetrics
    /// Event streams open per team on this replica (`streams.maxPerTeam`).
    var streams = StreamLimiter(maximumPerTeam: 0)
    /// Seconds between keep-alive comments on an idle event stream.
    var keepAliveInterval: TimeInterval = 15
    /// How often an idle event stream re-reads the log without a wake-up: nil when every change wakes it (one
    /// process; or replicas that notify each other, where this is only a safety net).
    let rereadInterval: Duration?
    /// Seconds outputs live after completion (0: forever), so a result can say they expired even before the
    /// reaper has deleted them.
    let outputRetention: TimeInterval

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get(use: list)
        group.get("{taskId}", use: detail)
        group.get("{taskId}/result", use: result)
        group.get("{taskId}/events", use: events)
        group.post("{taskId}/cancel", use: cancel)
    }

    private func load(_ context: SwitchyardRequestContext) async throws -> TaskRecord {
        let id = try context.parameters.requireUUID("taskId")
        guard let task = try await storage.task(id: id, teamId: try context.requireCaller().requireTeam()) else {
            throw SwitchyardError.notFound("task not found")
        }
        return task
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let task = try await load(context)
        let standing = try await QueueEstimates(storage: storage).standing(of: task, now: clock.now())
        return Presenters.task(task, standing: standing)
    }

    /// A completed task's outputs past retention are reported as expired (`outputs_expired_at`, no URLs)
    /// rather than as URLs that would answer 404.
    @Sendable func result(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let task = try await load(context)
        var expiredAt: Date?
        if task.status == .completed, let completedAt = task.completedAt {
            expiredAt = try await storage.outputsExpiredAt(taskId: task.id, teamId: task.teamId)
            if expiredAt == nil, outputRetention > 0, completedAt.addingTimeInterval(outputRetention) <= clock.now() {
                expiredAt = completedAt.addingTimeInterval(outputRetention)
            }
        }
        let now = clock.now()
        let lifetime = 3600
        let presigner = objects.presigner
        return Presenters.result(
            task, outputsExpiredAt: expiredAt, sign: { key in presigner.presignedGet(key: key, expires: lifetime, now: now) },
            urlsExpireAt: now.addingTimeInterval(TimeInterval(lifetime)))
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<JSONValue> {
        let page = try request.pageRequest
        var status: TaskStatus?
        if let raw = request.uri.formQueryValue("status") {
            guard let parsed = TaskStatus(rawValue: raw) else {
                let allowed = TaskStatus.allCases.map(\.rawValue).joined(separator: ", ")
                throw SwitchyardError.invalid("query parameter \"status\": \"\(raw)\" is not one of \(allowed)")
            }
            status = parsed
        }
        var workflowId: UUID?
        if let raw = request.uri.formQueryValue("workflow_id") {
            guard let parsed = UUID(text: raw) else {
                throw SwitchyardError.invalid("query parameter \"workflow_id\": \"\(raw.prefix(64))\" is not a workflow id (a UUID)")
            }
            workflowId = parsed
        }
        var agentId: String?
        if let raw = request.uri.formQueryValue("agent_id") {
            guard !raw.isEmpty, raw.count <= 128 else {
                throw SwitchyardError.invalid("query parameter \"agent_id\" must be 1 to 128 characters")
            }
            agentId = raw
        }
        let result = try await storage.tasks(
            teamId: try context.requireCaller().requireTeam(), filter: TaskFilter(status: status, workflowId: workflowId, agentId: agentId),
            page: page)
        return Listing("task_list", result.items.map { Presenters.task($0, summary: true) }, page: page, totalCount: result.totalCount)
    }

    /// api.md §2.2: pending/waiting/queued/running → cancelled; a finished task is a successful no-op.
    @Sendable func cancel(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let id = try context.parameters.requireUUID("taskId")
        guard let outcome = try await storage.applyTaskEvent(id: id, teamId: try caller.requireTeam(), event: .cancel, at: clock.now()) else {
            throw SwitchyardError.notFound("task not found")
        }
        if case .transition = outcome.action {
            TaskTransitionLog.record(context.logger, metrics, outcome.task, reason: "cancelled by the caller")
            hub.ended(id)
            await dispatcher.cancelled(taskId: id)
        }
        return Success()
    }

    /// `GET /r/tasks/{id}/events` (api.md §3.2): the task's log as Server-Sent Events — every event with an
    /// `id:` (its sequence number), replayed after `Last-Event-ID` (header, or `last_event_id` in the query),
    /// then live until the terminal event, after which the stream closes. Idle streams get a keep-alive comment;
    /// a failed read of the log is an `error` event and the stream goes on.
    @Sendable func events(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let task = try await load(context)
        let lastEventId = request.headers[.init("Last-Event-ID")!] ?? request.uri.formQueryValue("last_event_id")
        var after = 0
        if let lastEventId, !lastEventId.isEmpty {
            guard let parsed = Int(lastEventId.trimmingCharacters(in: .whitespaces)), parsed >= 0 else {
                throw SwitchyardError.invalid("Last-Event-ID: \"\(lastEventId)\" is not an event id of this stream (a non-negative integer)")
            }
            after = parsed
        }
        guard let slot = streams.acquire(task.teamId) else {
            throw SwitchyardError.tooManyRequests(
                "the team has \(streams.maximumPerTeam) event streams open on this server, its limit (streams.maxPerTeam); close one, or poll "
                    + "GET /r/tasks/{id} instead", retryAfter: 5)
        }
        let (storage, hub, clock) = (self.storage, self.hub, self.clock)
        let (keepAlive, reread, first) = (keepAliveInterval, rereadInterval, after)
        let body = ResponseBody { writer in
            // Given back before the stream's end is sent, so a client that saw it end can open another at once.
            defer { slot.release() }
            let signal = hub.subscribe(task.id)
            defer { hub.unsubscribe(task.id, signal) }
            var last = first
            var progressVersion = 0
            var closing = false
            var shownProgress: JSONValue?
            var lastWrite = clock.now()
            try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
            // A graceful shutdown ends the stream (the client reconnects with Last-Event-ID), so an open stream never
            // holds a restart up until its task ends.
            let stopping = StopFlag()
            try await withGracefulShutdownHandler {
                streaming: while !stopping.isSet {
                    do {
                        let events = try await storage.taskEvents(taskId: task.id, teamId: task.teamId, afterSequence: last) ?? []
                        var text = ""
                        var finished = false
                        for event in events {
                            last = event.sequence
                            // A persisted tick this stream already showed live is not shown twice.
                            if event.kind == .progress, event.data == shownProgress { continue }
                            text += "id: \(event.sequence)\nevent: \(event.kind.rawValue)\ndata: \(event.data.jsonString)\n\n"
                            if event.kind == .completed || event.kind == .failed || event.kind == .cancelled {
                                finished = true
                                break
                            }
                        }
                        // Live progress from memory (not in the log yet, so without an id: a reconnect resumes from the log).
                        if !finished, let tick = hub.progress(of: task.id, after: progressVersion) {
                            progressVersion = tick.version
                            shownProgress = tick.data
                            text += "event: progress\ndata: \(tick.data.jsonString)\n\n"
                        }
                        if !text.isEmpty {
                            try await writer.write(ByteBuffer(string: text))
                            lastWrite = clock.now()
                        }
                        if finished { break streaming }
                        // Resumed past the terminal event: nothing more comes. (One more read first: the terminal event may
                        // have been written between the read of the log and the read of the task.)
                        if events.isEmpty {
                            if closing { break streaming }
                            if try await storage.task(id: task.id, teamId: task.teamId)?.status.isTerminal ?? true {
                                closing = true
                                continue streaming
                            }
                        }
                    } catch let error where !(error is CancellationError) {
                        let data: JSONValue = ["task_id": .uuid(task.id), "error": .string("could not read the task's events; retrying")]
                        try await writer.write(ByteBuffer(string: "event: error\ndata: \(data.jsonString)\n\n"))
                        lastWrite = clock.now()
                    }
                    // Sleep until woken (or the safety re-read is due), with keep-alive comments meanwhile.
                    let rereadAt = reread.map { ContinuousClock.now + $0 }
                    while true {
                        var timeout = Duration.seconds(max(0.05, keepAlive - clock.now().timeIntervalSince(lastWrite)))
                        if let rereadAt { timeout = min(timeout, max(.zero, ContinuousClock.now.duration(to: rereadAt))) }
                        if await signal.wait(timeout: timeout) { break }
                        if clock.now().timeIntervalSince(lastWrite) >= keepAlive {
                            try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                            lastWrite = clock.now()
                        }
                        if let rereadAt, ContinuousClock.now >= rereadAt { break }
                    }
                }
            } onGracefulShutdown: {
                stopping.set()
                signal.notify()
            }
            slot.release()
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"],
            body: body)
    }
}
