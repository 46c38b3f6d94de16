import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// Matches waiting tasks to connected agents and keeps every attempt's lease (DESIGN §3, api.md §3.5).
///
/// Decisions are made in memory (who is connected, their capacity, the attempts they hold); every change to a
/// task is one conditional write (`DispatchRepository`), so two dispatchers on one database — or a message about
/// an attempt the agent lost — can never move a task twice. Capacity is reserved before the write and released
/// if the write loses, so the actor may interleave at its awaits without over-committing an agent.
public actor Dispatcher: Service {
    typealias Settings = DispatchSettings

    struct Session {
        let connection: AgentConnection
        var candidate: AgentCandidate
        var record: AgentRecord
        var lastSeen: Date
        /// The agent prefetches: its `ack` only says it holds the attempt, `started` that it runs.
        var reportsStart: Bool
        /// The status its row last got, and since when the row lags behind counters that changed since (written
        /// from `tick`, at most once per `progressPersistInterval`, unless the status itself changes).
        var persistedStatus: AgentStatus?
        var unpersistedSince: Date?
        /// When its row was last written: a heartbeat that changes nothing but the time is written at most every
        /// `heartbeatPersistInterval`.
        var persistedAt: Date?
    }

    struct Lease {
        let attemptId: UUID
        let taskId: UUID
        let teamId: UUID
        let agent: AgentKey
        var ackDeadline: Date?
        var runDeadline: Date?
        var timeout: TimeInterval
        var ackedAt: Date?
        /// Cancelled by a caller: the agent was told to stop; capacity stays reserved until it says it did.
        var cancelling: Bool = false
        /// Found held by a replica that died (or by this one before a restart): the agent must reconnect and claim
        /// it by this time. `orphanOf` is the dead replica the task's row still names.
        var orphanDeadline: Date?
        var orphanOf: String?
        /// Listed as held by an agent that connected here while the replica the row names still looked alive: taken
        /// over when that replica's lease expires; handed back (the agent told to drop it) if it is still alive then.
        var claimDeadline: Date?
        /// The latest progress tick not yet in the task's log, and when one last went there.
        var unloggedProgress: JSONValue?
        var progressLoggedAt: Date?
        /// When a tick last went to the event streams (`progressInterval` apart at most; real time, not the wall
        /// clock, which tests move by hand).
        var progressShownAt: ContinuousClock.Instant?
        /// Bytes the upload URLs issued for this attempt may carry in all.
        var uploadBytes = 0
        /// Consecutive heartbeats of its agent that did not list it (`Dispatcher.reconcile`).
        var unlisted = 0
    }

    let gatewayId: String
    let storage: any SwitchyardStorage
    let objects: ObjectStorage
    let snapshots: SnapshotCache
    let hub: TaskEventHub
    let clock: any WallClock
    let logger: Logger
    let settings: Settings

    var sessions: [AgentKey: Session] = [:] {
        didSet { sessionCount.store(sessions.count, ordering: .relaxed) }
    }
    /// How many agents are connected here, readable without entering the actor: submissions skip the hop to
    /// `reserve` when there are none.
    private nonisolated let sessionCount = Atomic<Int>(0)
    nonisolated var hasAgents: Bool { sessionCount.load(ordering: .relaxed) > 0 }
    /// The tasks waiting for an agent: ids and requirements (labels, pool, VRAM, models, region), in lanes.
    var queue = WaitingQueue()
    /// Definitions handed over by the submitter, so an offer needs no read of the task's definition.
    var definitions: [UUID: JSONValue] = [:]
    var leases: [UUID: Lease] = [:]
    var uploadKeys: [UUID: [String: String]] = [:]
    private var passRunning = false
    private var passAgain = false
    private var lastRescan = Date.distantPast
    var lastReplicaCheck = Date.distantPast
    var lastExpiryCheck = Date.distantPast
    /// When each agent key was last found valid: heartbeats of the agents sharing a key re-read it at most once a
    /// second between them, not once per heartbeat (10,000 agents on one key heartbeat 1,000 times a second).
    var credentialsChecked: [UUID: Date] = [:]
    private let tickLock = AsyncLock()
    var started = false

    init(
        storage: any SwitchyardStorage, objects: ObjectStorage, snapshots: SnapshotCache, hub: TaskEventHub, clock: any WallClock,
        settings: Settings, logger: Logger, gatewayId: String = Dispatcher.makeGatewayId()
    ) {
        self.storage = storage
        self.objects = objects
        self.snapshots = snapshots
        self.hub = hub
        self.clock = clock
        self.settings = settings
        self.gatewayId = gatewayId
        var logger = logger
        logger[metadataKey: "component"] = "dispatcher"
        self.logger = logger
    }

    /// `gw-` and eight hex digits, new on every start.
    static func makeGatewayId() -> String {
        "gw-" + String(UUID().uuidString.lowercased().prefix(8))
    }

    // MARK: Service

    public func run() async throws {
        await recoverActiveAttempts()
        let tick = settings.tickInterval
        let notifications = storage.notifier.notifications()
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    for await notification in notifications { await self.heard(notification) }
                }
                while true {
                    try await Task.sleep(for: tick)
                    await self.tick()
                }
            }
        }
        for session in sessions.values { session.connection.close(reason: "the server is shutting down", retry: true) }
    }

    // MARK: Tasks

    /// A task was accepted on this replica: dispatch it now rather than at the next rescan.
    func enqueue(_ task: TaskRecord, definition: JSONValue? = nil, workflow: WorkflowDefinition? = nil) async {
        guard task.dispatchTarget == .agent, task.status == .pending || task.status == .waiting, !queue.contains(task.id) else { return }
        var requirement: DispatchRequirement
        if let workflow { requirement = Self.requirement(task, workflow) } else { requirement = await self.requirement(for: task) }
        queue.insert(task.id, createdAt: task.createdAt, requirement: requirement, pending: task.status == .pending)
        if let definition { definitions[task.id] = definition }
        // Tasks queued earlier were already offered to every agent with room: a pass looks at each lane's head once.
        await pass()
        // Still waiting: the definition is read again when it is offered, rather than held for who knows how long.
        if queue.contains(task.id) { definitions[task.id] = nil }
    }

    /// The scheduler's decision for a task being submitted, written in the same commit that stores it.
    enum Admission: Sendable {
        /// An idle eligible agent's capacity is reserved: store the task `queued` under this attempt, then call
        /// `offerReserved` (or `releaseReservation` if it was not stored).
        case assign(AttemptAssignment)
        /// Store it `waiting`, with this reason, then `enqueue` it.
        case wait(String)
    }

    /// The reason a task submitted while no agent is connected waits.
    static let noAgentsReason = "waiting for eligible agent: none connected"

    /// Dispatch at submission: when nothing is queued ahead and an eligible agent has room, the task is given to
    /// it in the transaction that stores it; otherwise it is stored `waiting` with the reason. Either way the
    /// scheduler's first decision costs no second commit.
    func admit(_ task: TaskRecord, workflow: WorkflowDefinition) -> Admission {
        let requirement = Self.requirement(task, workflow)
        guard let chosen = DispatchPolicy.choose(from: sessions.values.lazy.map(\.candidate), for: requirement) else {
            let agents = sessions.values.lazy.map(\.candidate).filter { $0.teamId == task.teamId || $0.communityOptIn }
            return .wait(DispatchPolicy.waitingReason(agents: Array(agents), for: requirement))
        }
        let key = AgentKey(teamId: chosen.teamId, agentId: chosen.id)
        guard !queue.hasWork(where: { DispatchPolicy.choose(from: [chosen], for: $0) != nil }), let session = sessions[key] else {
            return .wait("waiting for eligible agent: earlier tasks go first")
        }
        sessions[key]?.candidate.running += 1
        return .assign(
            AttemptAssignment(
                attemptId: UUIDv7.make(at: clock.now()), agentId: key.agentId, agentLabels: session.record.labels, gatewayId: gatewayId,
                gpuType: Self.gpuType(session.record.systemStats)))
    }

    /// The reserved task is stored (as `queued`): lease it and send the offer.
    func offerReserved(_ task: TaskRecord, definition: JSONValue, workflow: WorkflowDefinition) async {
        guard let attemptId = task.attemptId, let agentId = task.agentId else { return }
        let key = AgentKey(teamId: task.teamId, agentId: agentId)
        let now = clock.now()
        let lease = Lease(
            attemptId: attemptId, taskId: task.id, teamId: task.teamId, agent: key, ackDeadline: now.addingTimeInterval(settings.ackTimeout),
            runDeadline: nil, timeout: TimeInterval(task.taskTimeout))
        leases[attemptId] = lease
        guard sessions[key] != nil else {
            // The agent left between the reservation and the commit: the task waits for another (no retry used).
            definitions[task.id] = definition
            await endAttempt(lease, event: .released, error: "agent \(agentId) disconnected before it was offered the task")
            return
        }
        if var session = sessions[key] {
            session.record.status = Self.status(of: session.candidate)
            sessions[key] = session
        }
        definitions[task.id] = definition
        hub.signal(task.id)
        do {
            let message = try await makeOffer(task, attemptId: attemptId, now: now)
            guard let connection = sessions[key]?.connection, leases[attemptId] != nil else { return }
            connection.send(.offer(message))
        } catch {
            logger.error("could not build an offer", metadata: ["task_id": "\(task.id)", "error": "\(error)"])
            await endAttempt(lease, event: .released, error: "the platform could not prepare the task: \(error)")
        }
    }

    /// A reservation whose task was not stored (refused, or an idempotent replay): give the capacity back.
    func releaseReservation(_ assignment: AttemptAssignment, teamId: UUID) async {
        release(AgentKey(teamId: teamId, agentId: assignment.agentId))
        await pass()
    }

    /// Credentials were revoked: sessions of `teamId` opened with one of `credentialIds` (every session of the team
    /// when nil) end now, rather than at their next reconnect.
    func credentialsRevoked(teamId: UUID, credentialIds: Set<UUID>?, reason: String) async {
        for (key, session) in sessions where key.teamId == teamId && (credentialIds?.contains(session.connection.credentialId) ?? true) {
            session.connection.close(reason: reason, retry: false)
            await endSession(key, why: reason)
        }
    }

    // MARK: Sessions

    /// Registers an agent after its `hello`; returns the `welcome`, or the `goodbye` that ends the session.
    func connect(_ connection: AgentConnection, hello: AgentMessage.Hello) async -> GatewayMessage {
        if sessions[connection.key] == nil, let refusal = await admissionRefusal(teamId: connection.key.teamId, agentId: hello.agentId) {
            return .goodbye(.init(reason: refusal, retry: false))
        }
        let now = clock.now()
        let held = Set(hello.heldAttempts.compactMap(UUID.init(text:)))
        if let previous = sessions[connection.key] {
            // Reconnected before the old socket was noticed gone: the attempts it still holds move to the new session.
            previous.connection.close(reason: "the agent connected again", retry: false)
            await endSession(previous.connection.key, why: "it connected again", keeping: held)
        }
        let region = hello.region?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let candidate = AgentCandidate(
            id: hello.agentId, teamId: connection.key.teamId, labels: Set(hello.labels),
            status: hello.status == .unhealthy || hello.status == .syncing ? hello.status! : .idle, capacity: max(1, hello.capacity),
            running: 0, region: region?.isEmpty == false ? region : nil, communityOptIn: hello.communityOptIn,
            gpuVRAM: hello.systemStats.gpuDevices.map(\.vramTotal), prefetch: min(max(hello.prefetch ?? 0, 0), 64))
        let record = AgentRecord(
            teamId: connection.key.teamId, agentId: hello.agentId, credentialId: connection.credentialId, status: .idle,
            labels: hello.labels.sorted(), region: candidate.region, communityOptIn: hello.communityOptIn, capacity: candidate.capacity,
            agentVersion: hello.agentVersion, tool: hello.tool, toolVersion: hello.toolVersion, systemStats: Self.json(hello.systemStats),
            gatewayId: gatewayId, connectedAt: now, lastHeartbeatAt: now)
        var session = Session(connection: connection, candidate: candidate, record: record, lastSeen: now, reportsStart: hello.prefetch != nil)

        // Claim the attempts it still holds; tell it to drop the ones it no longer owns.
        for attemptId in held {
            if var lease = leases[attemptId], lease.agent == connection.key, await adopt(lease) {
                lease.orphanDeadline = nil
                lease.orphanOf = nil
                if lease.ackedAt != nil, lease.runDeadline == nil, lease.timeout > 0 {
                    lease.runDeadline = (lease.ackedAt ?? now).addingTimeInterval(lease.timeout)
                }
                leases[attemptId] = lease
                session.candidate.running += 1
            } else if leases[attemptId] == nil, let claim = await claimHeldElsewhere(attemptId, agent: connection.key, now: now) {
                leases[attemptId] = claim
                session.candidate.running += 1
            } else {
                connection.send(.cancel(AttemptRef(attemptId: attemptId.lowercased)))
            }
        }
        session.record.status = Self.status(of: session.candidate)
        sessions[connection.key] = session
        await persist(session.record)
        logger.info("agent connected", metadata: ["agent": "\(connection.key)", "labels": "\(hello.labels)", "capacity": "\(hello.capacity)"])
        // Tasks submitted while no agent was connected are in the database only: read them now.
        Task { await self.rescan() }
        return .welcome(.init(agentId: hello.agentId, gatewayId: gatewayId, heartbeatInterval: settings.heartbeatInterval))
    }

    /// The socket closed (or the session was ended): its attempts fail, its row says when.
    func disconnected(_ connection: AgentConnection) async {
        guard sessions[connection.key]?.connection === connection else { return }
        await endSession(connection.key, why: "its connection dropped")
    }

    private func endSession(_ key: AgentKey, why: String, keeping kept: Set<UUID> = []) async {
        guard var session = sessions.removeValue(forKey: key) else { return }
        session.connection.finish()
        let now = clock.now()
        session.record.disconnectedAt = now
        await persist(session.record)
        // A claim on another replica's attempt was never this replica's to end: it is only forgotten here.
        for lease in leases.values where lease.agent == key && lease.claimDeadline != nil && !kept.contains(lease.attemptId) {
            leases[lease.attemptId] = nil
        }
        for lease in leases.values where lease.agent == key && lease.orphanDeadline == nil && !kept.contains(lease.attemptId) {
            await endAttempt(
                lease, event: lease.cancelling ? nil : .attemptFailed(retriable: true),
                error: "agent \(key.agentId) disconnected while it held the task (\(why))")
        }
        logger.info("agent disconnected", metadata: ["agent": "\(key)", "why": "\(why)"])
        await pass()
    }

    // MARK: Messages

    /// Acts on one message from an agent; messages about an attempt it does not hold are refused.
    func handle(_ message: AgentMessage, from connection: AgentConnection) async {
        let key = connection.key
        guard sessions[key]?.connection === connection else { return }
        let now = clock.now()
        sessions[key]?.lastSeen = now
        switch message {
        case .hello:
            connection.send(.refused(.init(attemptId: nil, reason: "hello is only the first message of a session")))
        case .heartbeat(let heartbeat):
            guard await credentialStillValid(connection, now: now) else { return }
            sessions[key]?.record.lastHeartbeatAt = now
            if let stats = heartbeat.systemStats { sessions[key]?.record.systemStats = Self.json(stats) }
            await reconcile(key, holding: heartbeat.running)
            await changeStatus(key, to: heartbeat.status, detail: nil, percent: nil, now: now)
        case .status(let change):
            await changeStatus(key, to: change.status, detail: change.detail, percent: change.syncPercent, now: now)
        case .ack(let ref):
            guard let lease = lease(ref.attemptId, of: connection) else { return }
            guard lease.ackedAt == nil else { return }
            if sessions[key]?.reportsStart == true {
                // Held, perhaps behind others in the engine's queue: the task stays `queued` until `started`.
                leases[lease.attemptId]?.ackDeadline = nil
                return
            }
            await started(lease, at: now, connection: connection)
        case .started(let ref):
            guard let lease = lease(ref.attemptId, of: connection) else { return }
            guard lease.ackedAt == nil else { return }
            await started(lease, at: now, connection: connection)
        case .progress(let progress):
            guard let lease = lease(progress.attemptId, of: connection) else { return }
            var data: [String: JSONValue] = [
                "task_id": .string(lease.taskId.lowercased), "progress": .number(JSONNumber(min(max(progress.progress, 0), 1))),
                "timestamp": .string(RFC3339.format(now)),
            ]
            data["current_node"] = progress.currentNode.map(JSONValue.string) ?? .null
            data["step_current"] = progress.stepCurrent.map { .number(JSONNumber($0)) } ?? .null
            data["step_total"] = progress.stepTotal.map { .number(JSONNumber($0)) } ?? .null
            guard lease.ackedAt != nil else { return }
            // Streams get it from memory now; the log gets it coalesced, from `tick` (no commit per tick).
            let event = JSONValue.object(data)
            leases[lease.attemptId]?.unloggedProgress = event
            // Rate-limited: an agent sending a flood of ticks costs one wake-up per interval, not one per tick.
            let instant = ContinuousClock.now
            if let shown = lease.progressShownAt, shown.duration(to: instant) < .seconds(settings.progressInterval) { return }
            leases[lease.attemptId]?.progressShownAt = instant
            hub.publishProgress(lease.taskId, event)
        case .uploadRequest(let request):
            guard let lease = lease(request.attemptId, of: connection) else { return }
            requestUpload(request, lease: lease, connection: connection, now: now)
        case .complete(let completion):
            guard let lease = lease(completion.attemptId, of: connection) else { return }
            await markRunning(lease, at: now, connection: connection)
            await complete(completion, lease: lease)
        case .fail(let failure):
            guard let lease = lease(failure.attemptId, of: connection) else { return }
            if failure.fault != .platform { await markRunning(lease, at: now, connection: connection) }
            let event: TaskStateMachine.Event =
                switch failure.fault {
                case .task: .attemptFailed(retriable: false)
                case .agent: .attemptFailed(retriable: true)
                case .platform: .released
                }
            await endAttempt(lease, event: event, error: failure.error)
        case .cancelled(let cancelled):
            guard let attemptId = UUID(text: cancelled.attemptId), let lease = leases[attemptId], lease.agent == key else { return }
            _ = await write {
                try await self.storage.recordAttemptStopped(
                    taskId: lease.taskId, attemptId: attemptId, stoppedAt: cancelled.stoppedAt, gpuSeconds: cancelled.gpuSeconds)
            }
            await endAttempt(lease, event: lease.cancelling ? nil : .released, error: "the agent stopped the attempt")
        }
    }

    /// A heartbeat or status report. Only a change is written at once (and, back to idle, offered work); a
    /// heartbeat that changes nothing but the time is written at most every `heartbeatPersistInterval`, so many
    /// agents cost the database little.
    private func changeStatus(_ key: AgentKey, to status: AgentStatus, detail: String?, percent: Double?, now: Date) async {
        guard var session = sessions[key] else { return }
        let before = (session.candidate.status, session.record.syncDetail, session.record.syncPercent)
        // The agent reports idle or busy from its own count; capacity is ours to judge, so only the states that
        // make it ineligible are taken as said.
        session.candidate.status = status == .syncing || status == .unhealthy ? status : .idle
        session.record.status = Self.status(of: session.candidate)
        session.record.syncDetail = status == .syncing || status == .unhealthy ? detail : nil
        session.record.syncPercent = status == .syncing ? percent : nil
        sessions[key] = session
        guard before != (session.candidate.status, session.record.syncDetail, session.record.syncPercent) else {
            if session.persistedAt.map({ now.timeIntervalSince($0) >= settings.heartbeatPersistInterval }) ?? true { await persistSoon(key) }
            return
        }
        await persist(session.record)
        if session.candidate.status == .idle { await pass() }
    }

    // MARK: Attempts

    /// Ends an attempt: applies `event` to the task (nil: the task already ended, as for a cancel), releases the
    /// agent's capacity, and puts the task back in the queue when it waits again.
    func endAttempt(_ lease: Lease, event: TaskStateMachine.Event?, error: String? = nil, output: JSONValue? = nil) async {
        guard leases.removeValue(forKey: lease.attemptId) != nil else { return }
        uploadKeys[lease.attemptId] = nil
        if lease.orphanDeadline == nil, var session = sessions[lease.agent] {
            session.candidate.running = max(0, session.candidate.running - 1)
            session.record.status = Self.status(of: session.candidate)
            sessions[lease.agent] = session
        }
        guard let event else {
            await persistSoon(lease.agent)
            await pass()
            return
        }
        let now = clock.now()
        // The freed capacity is offered while the attempt's end is written: the next assignment joins the same
        // group commit instead of waiting for this one.
        async let written = writeDurably {
            try await self.storage.applyAttemptEvent(
                taskId: lease.taskId, attemptId: lease.attemptId, event: event, result: AttemptResult(error: error, output: output),
                message: error, at: now)
        }
        await pass()
        let outcome = await written
        if let task = outcome?.task {
            if task.status.isTerminal {
                hub.ended(task.id)
            } else {
                hub.clearProgress(task.id)
                hub.signal(task.id)
            }
            logger.info(
                "attempt ended",
                metadata: [
                    "task_id": "\(task.id)", "attempt_id": "\(lease.attemptId)", "status": "\(task.status.rawValue)", "error": "\(error ?? "")",
                ])
            if task.status == .waiting { await enqueue(task) }
        }
        await persistSoon(lease.agent)
    }

    /// Deadlines: ACKs, run timeouts, heartbeats, orphans, start deadlines; then a rescan for tasks accepted
    /// elsewhere. Runs every `tickInterval`; tests call it to step past a deadline without waiting. Ticks run one
    /// after another, so when a call returns, every deadline up to the clock's time at the call has been acted on.
    public func tick() async {
        _ = try? await tickLock.withLock { await self.tickOnce() }
    }

    private func tickOnce() async {
        let now = clock.now()
        if now.timeIntervalSince(lastReplicaCheck) >= settings.replicaHeartbeatInterval {
            lastReplicaCheck = now
            await checkReplicas(now)
        }
        await logProgress(now)
        if now.timeIntervalSince(lastExpiryCheck) >= 1 {
            lastExpiryCheck = now
            await expireOverdue(now)
        }
        for session in sessions.values {
            if let since = session.unpersistedSince, now.timeIntervalSince(since) >= settings.progressPersistInterval {
                await persist(session.record)
            }
        }
        for lease in leases.values {
            // Orphans and claims are settled by `checkReplicas`, which knows which replicas are alive.
            guard lease.orphanOf == nil else { continue }
            if let deadline = lease.ackDeadline, deadline <= now {
                sessions[lease.agent]?.connection.send(.cancel(AttemptRef(attemptId: lease.attemptId.lowercased)))
                await endAttempt(
                    lease, event: .released,
                    error: "agent \(lease.agent.agentId) did not acknowledge the task within \(Self.seconds(settings.ackTimeout))")
            } else if let deadline = lease.runDeadline, deadline <= now {
                sessions[lease.agent]?.connection.send(.cancel(AttemptRef(attemptId: lease.attemptId.lowercased)))
                await endAttempt(
                    lease, event: lease.cancelling ? nil : .attemptFailed(retriable: true),
                    error: "the task timed out after \(Self.seconds(lease.timeout)) (task_timeout counts from the agent's ACK)")
            }
        }
        let silence = settings.heartbeatInterval * 3
        for session in sessions.values where now.timeIntervalSince(session.lastSeen) > silence {
            session.connection.close(reason: "no heartbeat for \(Self.seconds(silence))", retry: true)
            await endSession(session.connection.key, why: "it missed three heartbeats")
        }
        // Tasks accepted elsewhere can only move when an agent here has room (the first scan also marks stray
        // `pending` tasks as waiting).
        if now.timeIntervalSince(lastRescan) >= settings.rescanInterval, hasRoom || lastRescan == .distantPast {
            lastRescan = now
            await rescan()
        }
    }

    // MARK: The dispatch pass

    /// Offers every waiting task, oldest first, to the best eligible agent. One pass at a time; a request for a
    /// pass during one runs another right after.
    func pass() async {
        guard !passRunning else {
            passAgain = true
            return
        }
        passRunning = true
        defer { passRunning = false }
        repeat {
            passAgain = false
            await passOnce()
        } while passAgain
    }

    /// Whether some connected agent could take a task now (healthy, with room). Without one a pass only marks
    /// `pending` tasks as waiting, so a backlog costs nothing per submission.
    private var hasRoom: Bool {
        sessions.values.contains {
            ($0.candidate.status == .idle || $0.candidate.status == .busy) && $0.candidate.running < $0.candidate.capacity + $0.candidate.prefetch
        }
    }

    /// While an agent has room: the oldest waiting task some agent can take goes to the best of them (one look per
    /// lane of the queue, no sort). Then tasks still `pending` are marked `waiting`, with the reason.
    private func passOnce() async {
        while !Task.isCancelled, hasRoom {
            let candidates = sessions.values.lazy.map(\.candidate)
            guard let id = queue.next(where: { DispatchPolicy.choose(from: candidates, for: $0) != nil }), let entry = queue.remove(id),
                let chosen = DispatchPolicy.choose(from: candidates, for: entry.requirement)
            else { break }
            let key = AgentKey(teamId: chosen.teamId, agentId: chosen.id)
            sessions[key]?.candidate.running += 1
            await offer(taskId: id, to: key)
        }
        guard !queue.pending.isEmpty else { return }
        let candidates = sessions.values.map(\.candidate)
        for id in queue.pending {
            guard let requirement = queue[id]?.requirement else { continue }
            queue.markedWaiting(id)
            let reason = DispatchPolicy.waitingReason(
                agents: candidates.filter { $0.teamId == requirement.teamId || $0.communityOptIn }, for: requirement)
            let now = clock.now()
            if await write({ try await self.storage.markTaskWaiting(id: id, message: reason, at: now) }) != nil { hub.signal(id) }
        }
    }

    /// Writes the assignment, then sends the offer. Capacity for `key` is already reserved; it is given back if
    /// the write loses (another dispatcher, a cancel) or the offer cannot be built.
    private func offer(taskId: UUID, to key: AgentKey) async {
        let now = clock.now()
        let attemptId = UUIDv7.make(at: now)
        guard let session = sessions[key] else { return }
        let assignment = AttemptAssignment(
            attemptId: attemptId, agentId: key.agentId, agentLabels: session.record.labels, gatewayId: gatewayId,
            gpuType: Self.gpuType(session.record.systemStats))
        let assigned = await write { try await self.storage.assignTask(id: taskId, to: assignment, at: now) }
        guard let assigned else {
            release(key)
            definitions[taskId] = nil
            return
        }
        let task = assigned.task
        let lease = Lease(
            attemptId: attemptId, taskId: task.id, teamId: task.teamId, agent: key, ackDeadline: now.addingTimeInterval(settings.ackTimeout),
            runDeadline: nil, timeout: TimeInterval(task.taskTimeout))
        leases[attemptId] = lease
        if var session = sessions[key] {
            session.record.status = Self.status(of: session.candidate)
            sessions[key] = session
        }
        hub.signal(task.id)
        do {
            let message = try await makeOffer(task, attemptId: attemptId, now: now)
            guard let connection = sessions[key]?.connection, leases[attemptId] != nil else { return }
            connection.send(.offer(message))
        } catch {
            logger.error("could not build an offer", metadata: ["task_id": "\(task.id)", "error": "\(error)"])
            await endAttempt(lease, event: .released, error: "the platform could not prepare the task: \(error)")
        }
    }
}
