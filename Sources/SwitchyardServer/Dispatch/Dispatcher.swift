import Foundation
import Logging
import ServiceLifecycle
import SwitchyardConcurrency
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// Matches waiting tasks to connected agents and keeps every attempt's lease (DESIGN §3, api.md §3.5).
///
/// Every decision is made by `DispatchMachine`, a value type: this actor turns what it hears (agent messages,
/// submissions, notifications from other replicas, the clock) into the machine's events, performs the actions the
/// machine answers — storage writes, messages to agents, wake-ups of event streams — and feeds their results back
/// as events. Every change to a task is one conditional write (`DispatchRepository`), so two dispatchers on one
/// database — or a message about an attempt the agent lost — can never move a task twice. Submissions arrive
/// through one ordered inbox (`post`), drained by `run`.
public actor Dispatcher: Service {
    typealias Settings = DispatchSettings
    typealias Lease = DispatchMachine.Lease

    /// What the actor keeps beside the machine for a connected agent: its socket and the row the API shows.
    struct Session {
        let connection: AgentConnection
        var record: AgentRecord
        /// The agent syncs the team's models (its hello said so): it gets `models` on connect and on every change.
        var modelSync = false
        /// The status its row last got, and since when the row lags behind counters that changed since (written
        /// from `tick`, at most once per `progressPersistInterval`, unless the status itself changes).
        var persistedStatus: AgentStatus?
        var unpersistedSince: Date?
        /// When its row was last written: a heartbeat that changes nothing but the time is written at most every
        /// `heartbeatPersistInterval`.
        var persistedAt: Date?
    }

    /// A running attempt's progress: the latest tick not yet in the task's log, when one last went there, and when
    /// one last went to the event streams (real time, not the wall clock, which tests move by hand).
    struct Progress {
        var unlogged: JSONValue?
        var loggedAt: Date?
        var shownAt: ContinuousClock.Instant?
    }

    /// What reaches the dispatcher from a submission, in order.
    enum Inbound: Sendable {
        /// Stored `pending`: queue it.
        case created(TaskRecord, definition: JSONValue, workflow: WorkflowDefinition)
        /// Stored `queued` under the attempt `admit` reserved: offer it.
        case reserved(TaskRecord, definition: JSONValue, workflow: WorkflowDefinition)
        /// Read back the waiting tasks this replica may not know.
        case rescan
    }

    let gatewayId: String
    let storage: any SwitchyardStorage
    let objects: ObjectStorage
    let snapshots: SnapshotCache
    let hub: TaskEventHub
    let clock: any WallClock
    let logger: Logger
    let metrics: ServerMetrics
    let settings: Settings

    var machine: DispatchMachine
    var sessions: [AgentKey: Session] = [:] {
        didSet { sessionCount.store(sessions.count, ordering: .relaxed) }
    }
    /// How many agents are connected here, readable without entering the actor: submissions skip the hop to
    /// `admit` when there are none.
    private nonisolated let sessionCount = Atomic<Int>(0)
    nonisolated var hasAgents: Bool { sessionCount.load(ordering: .relaxed) > 0 }
    private nonisolated let inbox: AsyncStream<Inbound>
    private nonisolated let inboxInput: AsyncStream<Inbound>.Continuation
    /// Definitions handed over by the submitter, so an offer needs no read of the task's definition.
    var definitions: [UUID: JSONValue] = [:]
    /// An assignment written and not yet offered: the task's record, and when the dispatcher decided (for
    /// `switchyard_dispatch_latency_seconds`).
    struct PendingOffer {
        var task: TaskRecord
        var decidedAt: ContinuousClock.Instant
    }

    /// The task records of assignments written and not yet offered.
    var offerTasks: [UUID: PendingOffer] = [:]
    var uploadKeys: [UUID: [String: String]] = [:]
    /// Bytes the upload URLs issued for an attempt may carry in all.
    var uploadBytes: [UUID: Int] = [:]
    var progress: [UUID: Progress] = [:]
    private var rescanning = false
    /// A rescan asked for through the inbox has not started yet.
    private var rescanQueued = false
    private var lastRescan = Date.distantPast
    var lastReplicaCheck = Date.distantPast
    var lastExpiryCheck = Date.distantPast
    /// When each agent key was last found valid: heartbeats of the agents sharing a key re-read it at most once a
    /// second between them, not once per heartbeat (10,000 agents on one key heartbeat 1,000 times a second).
    var credentialsChecked: [UUID: Date] = [:]
    /// Keys being read now, and the heartbeats waiting for that read.
    var credentialChecksInFlight: [UUID: [CheckedContinuation<String?, Never>]] = [:]
    private let tickLock = AsyncSemaphore()
    var started = false
    var agentRows = AgentRows()
    /// How many model sets went to each team's syncing agents (a set read for a new session is not sent when a newer
    /// one went out while it was read).
    var modelSetsSent: [UUID: Int] = [:]
    /// Teams whose cloud runner is connected here with `cloud_fallback` on: how long their agent tasks wait for an
    /// agent before they go to the cloud (`Dispatcher+Cloud`).
    var cloudFallback: [UUID: TimeInterval] = [:]

    init(
        storage: any SwitchyardStorage, objects: ObjectStorage, snapshots: SnapshotCache, hub: TaskEventHub, clock: any WallClock,
        settings: Settings, logger: Logger, metrics: ServerMetrics, gatewayId: String = Dispatcher.makeGatewayId()
    ) {
        self.storage = storage
        self.metrics = metrics
        self.objects = objects
        self.snapshots = snapshots
        self.hub = hub
        self.clock = clock
        self.settings = settings
        self.gatewayId = gatewayId
        var logger = logger
        logger[metadataKey: "component"] = "dispatcher"
        self.logger = logger
        self.machine = DispatchMachine(
            settings: .init(
                ackTimeout: settings.ackTimeout, heartbeatSilence: settings.heartbeatInterval * 3, reconnectGrace: settings.reconnectGrace,
                claimWait: settings.replicaLeaseTimeout + 2 * settings.replicaHeartbeatInterval),
            now: clock.now())
        (inbox, inboxInput) = AsyncStream.makeStream(of: Inbound.self)
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
                group.addTask { await self.drainInbox() }
                while true {
                    try await Task.sleep(for: tick)
                    await self.tick()
                }
            }
        }
        inboxInput.finish()
        for session in sessions.values { session.connection.close(reason: "the server is shutting down", retry: true) }
    }

    /// Hands a submission to the dispatcher without waiting for it (no task per submission): decisions are made in
    /// the order of the inbox; their writes and offers run side by side, so they share group commits.
    nonisolated func post(_ inbound: Inbound) {
        inboxInput.yield(inbound)
    }

    private func drainInbox() async {
        await withDiscardingTaskGroup { group in
            for await inbound in inbox {
                if case .rescan = inbound {
                    // Many agents connecting at once ask for one rescan, not one each.
                    guard !rescanQueued else { continue }
                    rescanQueued = true
                    group.addTask { await self.rescan() }
                    continue
                }
                let actions = decide(inbound)
                guard !actions.isEmpty else { continue }
                group.addTask { await self.perform(actions) }
            }
        }
    }

    private func decide(_ inbound: Inbound) -> [DispatchMachine.Action] {
        let now = clock.now()
        switch inbound {
        case .created(let task, let definition, let workflow):
            guard task.status == .pending || task.status == .waiting else { return [] }
            let actions = machine.handle(
                .submitted(
                    task.id, createdAt: task.createdAt, requirement: withCloud(Self.requirement(task, workflow), target: task.dispatchTarget),
                    pending: task.status == .pending),
                at: now)
            // Offered at once: its definition goes with the offer; still waiting, it is read again when offered.
            if Self.assigns(actions, task.id) { definitions[task.id] = definition }
            return actions
        case .reserved(let task, let definition, _):
            guard let attemptId = task.attemptId else { return [] }
            definitions[task.id] = definition
            offerTasks[attemptId] = PendingOffer(task: task, decidedAt: .now)
            metrics.taskAssigned(waited: now.timeIntervalSince(task.createdAt))
            return machine.handle(.reservationStored(attemptId: attemptId, taskId: task.id, timeout: TimeInterval(task.taskTimeout)), at: now)
        case .rescan:
            return []
        }
    }

    // MARK: Events and actions

    /// Hands one event to the machine and performs what it answers.
    func feed(_ event: DispatchMachine.Event) async {
        await perform(machine.handle(event, at: clock.now()))
    }

    /// Messages and wake-ups go out at once, in order; writes (and what their answers lead to) run side by side, so
    /// the end of one attempt and the assignment of the next share a group commit.
    func perform(_ actions: [DispatchMachine.Action]) async {
        var writes: [DispatchMachine.Action] = []
        for action in actions {
            switch action {
            case .cancel(let attemptId, let agent):
                sessions[agent]?.connection.send(.cancel(AttemptRef(attemptId: attemptId.lowercased)))
            case .refuse(let agent, let attemptId, let reason):
                sessions[agent]?.connection.send(.refused(.init(attemptId: attemptId.lowercased, reason: reason)))
            case .wake(let taskId):
                hub.signal(taskId)
            case .endSession(let key, let why, let notice, let retry):
                guard var session = sessions.removeValue(forKey: key) else { continue }
                if let notice { session.connection.close(reason: notice, retry: retry) }
                session.connection.finish()
                session.record.disconnectedAt = clock.now()
                logger.info("agent disconnected", metadata: ["agent": "\(key)", "why": "\(why)"])
                disconnectedRows[key] = session.record
                writes.append(action)
            case .rescan:
                post(.rescan)
            default:
                writes.append(action)
            }
        }
        switch writes.count {
        case 0: return
        case 1: await performWrite(writes[0])
        default:
            await withDiscardingTaskGroup { group in
                for action in writes { group.addTask { await self.performWrite(action) } }
            }
        }
    }

    /// Rows of sessions just ended, written by `performWrite`.
    var disconnectedRows: [AgentKey: AgentRecord] = [:]
    /// Who waits for a session to end (`sessionEnded`), and for the writes in flight to finish (`writesSettled`).
    private var sessionEndWaiters: [AgentKey: [CheckedContinuation<Void, Never>]] = [:]
    private var writesInFlight = 0
    private var settledWaiters: [CheckedContinuation<Void, Never>] = []

    /// Returns once the agent's session here has ended and its row says so (at once when it has none): what waits
    /// for an agent to be gone waits on this, not on the clock.
    public func sessionEnded(teamId: UUID, agentId: String) async {
        let key = AgentKey(teamId: teamId, agentId: agentId)
        guard sessions[key] != nil || disconnectedRows[key] != nil else { return }
        await withCheckedContinuation { sessionEndWaiters[key, default: []].append($0) }
    }

    /// Returns once every write the dispatcher has started (and what their answers led to) has finished.
    public func writesSettled() async {
        guard writesInFlight > 0 else { return }
        await withCheckedContinuation { settledWaiters.append($0) }
    }

    func writeBegan() {
        writesInFlight += 1
    }

    func writeEnded() {
        writesInFlight -= 1
        guard writesInFlight == 0 else { return }
        for waiter in settledWaiters { waiter.resume() }
        settledWaiters = []
    }

    /// Who waits for the session to end hears, once it has ended here and its row says so.
    func sessionEndSettled(_ key: AgentKey) {
        guard sessions[key] == nil, disconnectedRows[key] == nil else { return }
        for waiter in sessionEndWaiters.removeValue(forKey: key) ?? [] { waiter.resume() }
    }

    private func performWrite(_ action: DispatchMachine.Action) async {
        writeBegan()
        defer { writeEnded() }
        switch action {
        case .assign(let taskId, let attemptId, let agent):
            await assign(taskId, attemptId: attemptId, to: agent)
        case .offer(let attemptId, let taskId, let agent):
            await offer(attemptId, taskId: taskId, to: agent)
        case .writeStart(let lease):
            let applied = await writeStart(lease)
            await feed(.startWritten(attemptId: lease.attemptId, applied: applied))
        case .end(let ending):
            await end(ending)
        case .markWaiting(let taskId, let reason):
            let now = clock.now()
            if await write({ try await self.storage.markTaskWaiting(id: taskId, message: reason, at: now) }) != nil {
                hub.signal(taskId)
                TaskTransitionLog.record(logger, metrics, taskId: taskId, teamId: nil, status: .waiting, reason: reason)
            }
        case .endSession(let key, _, _, _):
            // Forgotten once written (`rowWritten`): `sessionEnded` waits for the row, not only for the socket. Not
            // waited for here: agents that leave together are written together.
            if let record = disconnectedRows[key] { queueRow(record) } else { sessionEndSettled(key) }
        case .takeOver(let lease):
            let taken = await adopt(lease)
            await feed(.takenOver(attemptId: lease.attemptId, taken: taken))
        case .handOver(let lease, let gateway):
            let handed = await write {
                try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: self.gatewayId, to: gateway)
            }
            logger.info(
                "attempt handed over to the replica its agent reconnected to",
                metadata: ["attempt_id": "\(lease.attemptId.lowercased)", "gateway": "\(gateway)", "handed": "\(handed ?? false)"])
        case .confirmHandOver(let lease):
            let handed = await write {
                try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: self.gatewayId, to: self.gatewayId)
            }
            await feed(.takenOver(attemptId: lease.attemptId, taken: handed == true))
        case .lookUpHeld(let key, let attemptId):
            let found = await lookUpHeld(attemptId, agent: key)
            await feed(.heldLookedUp(key, attemptId: attemptId, found: found))
        case .cancel, .refuse, .wake, .rescan:
            break
        }
    }

    // MARK: Tasks

    /// A task was accepted on this replica, or waits again: dispatch it now rather than at the next rescan.
    func enqueue(_ task: TaskRecord, definition: JSONValue? = nil, workflow: WorkflowDefinition? = nil) async {
        guard task.status == .pending || task.status == .waiting, !machine.knows(task.id) else { return }
        let requirement: DispatchRequirement
        if let workflow {
            requirement = withCloud(Self.requirement(task, workflow), target: task.dispatchTarget)
        } else {
            requirement = await self.requirement(for: task)
        }
        let actions = machine.handle(
            .submitted(task.id, createdAt: task.createdAt, requirement: requirement, pending: task.status == .pending), at: clock.now())
        if let definition, Self.assigns(actions, task.id) { definitions[task.id] = definition }
        await perform(actions)
    }

    static func assigns(_ actions: [DispatchMachine.Action], _ taskId: UUID) -> Bool {
        actions.contains { if case .assign(let id, _, _) = $0 { id == taskId } else { false } }
    }

    /// The scheduler's decision for a task being submitted, written in the same commit that stores it.
    enum Admission: Sendable {
        /// An idle eligible agent's capacity is reserved: store the task `queued` under this attempt, then `post`
        /// it as `reserved` (or call `releaseReservation` if it was not stored).
        case assign(AttemptAssignment)
        /// Store it `waiting`, with this reason, then `post` it as `created`.
        case wait(String)
    }

    /// The reason a task submitted while no agent is connected waits.
    static let noAgentsReason = "waiting for eligible agent: none connected"

    /// Dispatch at submission: when nothing is queued ahead and an eligible agent has room, the task is given to
    /// it in the transaction that stores it; otherwise it is stored `waiting` with the reason. Either way the
    /// scheduler's first decision costs no second commit.
    func admit(_ task: TaskRecord, workflow: WorkflowDefinition) -> Admission {
        switch machine.admit(withCloud(Self.requirement(task, workflow), target: task.dispatchTarget), at: clock.now()) {
        case .wait(let reason):
            return .wait(reason)
        case .assign(let attemptId, let agent):
            let record = sessions[agent]?.record
            return .assign(
                AttemptAssignment(
                    attemptId: attemptId, agentId: agent.agentId, agentLabels: record?.labels ?? [], gatewayId: gatewayId,
                    gpuType: record.flatMap { Self.gpuType($0.systemStats) }))
        }
    }

    /// A reservation whose task was not stored (refused, or an idempotent replay): give the capacity back.
    func releaseReservation(_ assignment: AttemptAssignment) async {
        await feed(.reservationDropped(attemptId: assignment.attemptId))
    }

    /// Writes the assignment; the machine hears whether it won (another dispatcher or a cancel may have moved the
    /// task first).
    private func assign(_ taskId: UUID, attemptId: UUID, to key: AgentKey) async {
        let decided = ContinuousClock.now
        let now = clock.now()
        guard let record = sessions[key]?.record else {
            await feed(.assignmentFailed(attemptId: attemptId))
            return
        }
        let assignment = AttemptAssignment(
            attemptId: attemptId, agentId: key.agentId, agentLabels: record.labels, gatewayId: gatewayId, gpuType: Self.gpuType(record.systemStats))
        // A task this replica was told about (or read back) has no definition here: it is read while the assignment
        // is written, not after (one round trip less before the offer).
        let storage = self.storage
        let teamId = key.teamId
        let known = definitions[taskId] != nil
        async let definition: JSONValue?? =
            known ? nil : try? await withDeadline(Self.storageDeadline) { try await storage.taskDefinition(id: taskId, teamId: teamId) }
        let written: TaskTransitionOutcome??
        do {
            written = .some(try await withDeadline(Self.storageDeadline) { try await storage.assignTask(id: taskId, to: assignment, at: now) })
        } catch {
            logger.error("could not write an assignment", metadata: ["task_id": "\(taskId.lowercased)", "error": "\(error)"])
            written = nil
        }
        guard let outcome = written, let assigned = outcome else {
            _ = await definition
            definitions[taskId] = nil
            await feed(written == nil ? .assignmentFailed(attemptId: attemptId) : .assignmentLost(attemptId: attemptId))
            return
        }
        if let read = await definition, let read, definitions[taskId] == nil { definitions[taskId] = read }
        offerTasks[attemptId] = PendingOffer(task: assigned.task, decidedAt: decided)
        if assigned.task.retryCount == 0 { metrics.taskAssigned(waited: now.timeIntervalSince(assigned.task.createdAt)) }
        TaskTransitionLog.record(logger, metrics, assigned.task)
        await feed(.assignmentWritten(attemptId: attemptId, timeout: TimeInterval(assigned.task.taskTimeout)))
    }

    /// Builds the offer and sends it, unless the attempt ended or was cancelled meanwhile.
    private func offer(_ attemptId: UUID, taskId: UUID, to key: AgentKey) async {
        guard let pending = offerTasks.removeValue(forKey: attemptId) else {
            await feed(.offerFailed(attemptId: attemptId, error: "the task's record is missing"))
            return
        }
        do {
            let message = try await makeOffer(pending.task, attemptId: attemptId, now: clock.now())
            guard machine.lease(attemptId, heldBy: key) != nil, let connection = sessions[key]?.connection else { return }
            metrics.offerSent(after: .now - pending.decidedAt)
            connection.send(.offer(message))
        } catch {
            logger.error("could not build an offer", metadata: ["task_id": "\(taskId.lowercased)", "error": "\(error)"])
            await feed(.offerFailed(attemptId: attemptId, error: "\(error)"))
        }
    }

    /// Credentials were revoked: sessions of `teamId` opened with one of `credentialIds` (every session of the team
    /// when nil) end now, rather than at their next reconnect.
    func credentialsRevoked(teamId: UUID, credentialIds: Set<UUID>?, reason: String) async {
        for (key, session) in sessions where key.teamId == teamId && (credentialIds?.contains(session.connection.credentialId) ?? true) {
            await feed(.revoked(key, reason: reason))
        }
    }

    // MARK: Ticks

    /// Deadlines: ACKs, run timeouts, heartbeats, orphans, start deadlines; then a rescan for tasks accepted
    /// elsewhere. Runs every `tickInterval`; tests call it to step past a deadline without waiting. Ticks run one
    /// after another, so when a call returns, every deadline up to the clock's time at the call has been acted on.
    public func tick() async {
        _ = try? await tickLock.withPermit { await self.tickOnce() }
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
        await persist(
            sessions.compactMap { key, session in
                guard let since = session.unpersistedSince, now.timeIntervalSince(since) >= settings.progressPersistInterval else { return nil }
                return currentRecord(key)
            })
        await feed(.tick)
        // Tasks accepted elsewhere can only move when an agent here has room (the first scan also marks stray
        // `pending` tasks as waiting).
        if now.timeIntervalSince(lastRescan) >= settings.rescanInterval, machine.hasRoom || lastRescan == .distantPast {
            lastRescan = now
            await rescan()
        }
    }

    /// Picks up dispatchable tasks this replica has not seen (accepted by another replica, or before a restart).
    func rescan() async {
        rescanQueued = false
        guard !rescanning else { return }
        rescanning = true
        defer { rescanning = false }
        guard let tasks = await write({ try await self.storage.dispatchableTasks(limit: 1000) }) else { return }
        var actions: [DispatchMachine.Action] = []
        for task in tasks where !machine.knows(task.id) {
            let requirement = await requirement(for: task)
            actions += machine.handle(
                .submitted(task.id, createdAt: task.createdAt, requirement: requirement, pending: task.status == .pending), at: clock.now())
        }
        await perform(actions)
    }
}
