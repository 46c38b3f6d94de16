import Foundation

/// Identifies an agent: agents choose their ids, so they are unique within a team only.
public struct AgentKey: Hashable, Sendable, CustomStringConvertible {
    public let teamId: UUID
    public let agentId: String

    public init(teamId: UUID, agentId: String) {
        self.teamId = teamId
        self.agentId = agentId
    }

    public var description: String { "\(agentId)@\(teamId.lowercased)" }
}

/// The dispatcher's decisions as a value type (DESIGN §8): who is connected and with what room, which attempt each
/// agent holds and until when, which tasks wait. Events go in (`handle`), actions come out — offer, cancel, end an
/// attempt, end a session, write, wake — and the `Dispatcher` actor performs them and feeds their results back as
/// events (`assignmentWritten`, `startWritten`, `takenOver`, …). Nothing here waits, reads a clock or touches a
/// socket or the database, so every transition is tested as a transcript: events in, actions out.
///
/// Capacity is reserved when an assignment is decided, before its write, and given back when the write loses, so
/// the actor may perform several actions at once without over-committing an agent.
public struct DispatchMachine: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Seconds an agent has to `ack` an offer.
        public var ackTimeout: TimeInterval
        /// Silence after which a session ends (three heartbeat intervals).
        public var heartbeatSilence: TimeInterval
        /// Attempts found held by a replica that died wait this long for their agent to reconnect.
        public var reconnectGrace: TimeInterval
        /// How long an attempt claimed from a replica that still looks alive waits for that replica's lease to say.
        public var claimWait: TimeInterval
        /// Consecutive heartbeats that may leave out an attempt before it is taken as lost.
        public var unlistedHeartbeats: Int = 3

        public init(ackTimeout: TimeInterval, heartbeatSilence: TimeInterval, reconnectGrace: TimeInterval, claimWait: TimeInterval) {
            self.ackTimeout = ackTimeout
            self.heartbeatSilence = heartbeatSilence
            self.reconnectGrace = reconnectGrace
            self.claimWait = claimWait
        }

        /// How long a cancelled attempt's agent has to say it stopped before its capacity is taken back anyway.
        public var cancelGrace: TimeInterval { max(ackTimeout, 30) }
    }

    public let settings: Settings
    public private(set) var agents: [AgentKey: Agent] = [:]
    public private(set) var leases = LeaseBook()
    public private(set) var queue = WaitingQueue()
    /// The agents with room, grouped so that choosing one does not look at each.
    private var index = AgentIndex()
    /// Assignments decided and not yet answered: the agent whose capacity they hold, and whether a cancel came.
    private var assigning: [UUID: (taskId: UUID, agent: AgentKey, cancelled: Bool, entry: WaitingQueue.Entry)] = [:]
    /// Reservations made at admission, awaiting the task's commit.
    private var reserved: [UUID: AgentKey] = [:]
    /// Attempts listed by reconnecting agents and looked up in the database, with the capacity they reserve.
    private var lookingUp: [UUID: AgentKey] = [:]
    private var now: Date
    private let makeAttemptId: @Sendable (Date) -> UUID

    public init(settings: Settings, now: Date, makeAttemptId: @escaping @Sendable (Date) -> UUID = { UUIDv7.make(at: $0) }) {
        self.settings = settings
        self.now = now
        self.makeAttemptId = makeAttemptId
    }

    // MARK: Reading

    /// The lease of `attemptId` when `agent` holds it and it was not cancelled.
    public func lease(_ attemptId: UUID, heldBy agent: AgentKey) -> Lease? {
        guard let lease = leases[attemptId], lease.agent == agent, !lease.cancelling else { return nil }
        return lease
    }

    /// Whether the task waits here or one of its attempts is held here.
    public func knows(_ taskId: UUID) -> Bool {
        queue.contains(taskId) || leases.holds(task: taskId) || assigning.values.contains { $0.taskId == taskId }
    }

    /// Whether some connected agent could take a task now (healthy, with room).
    public var hasRoom: Bool { index.hasRoom }

    /// The tasks `agent` holds, oldest attempt first.
    public func tasks(heldBy agent: AgentKey) -> [UUID] {
        leases.held(by: agent).map(\.taskId)
    }

    public static func refusal(_ attemptId: String) -> String {
        "this agent does not hold attempt \(attemptId) (it ended, timed out, was cancelled or went to another agent)"
    }

    public static func seconds(_ value: TimeInterval) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    // MARK: Admission

    /// Dispatch at submission: when nothing is queued ahead and an eligible agent has room, its capacity is
    /// reserved for the task (stored `queued` in the same commit; then `reservationStored` or `reservationDropped`).
    public mutating func admit(_ requirement: DispatchRequirement, at now: Date) -> Admission {
        self.now = now
        guard let chosen = index.choose(for: requirement) else { return .wait(waitingReason(requirement)) }
        guard !queue.hasWork(where: { DispatchPolicy.choose(from: [chosen], for: $0) != nil }) else {
            return .wait("waiting for eligible agent: earlier tasks go first")
        }
        let key = AgentKey(teamId: chosen.teamId, agentId: chosen.id)
        change(key) { $0.running += 1 }
        let attemptId = makeAttemptId(now)
        reserved[attemptId] = key
        return .assign(attemptId: attemptId, agent: key)
    }

    // MARK: Events

    public mutating func handle(_ event: Event, at now: Date) -> [Action] {
        self.now = now
        var actions: [Action] = []
        switch event {
        case .submitted(let taskId, let createdAt, let requirement, let pending):
            guard !knows(taskId) else { return [] }
            queue.insert(taskId, createdAt: createdAt, requirement: requirement, pending: pending)
            pass(&actions)
        case .reservationStored(let attemptId, let taskId, let timeout):
            guard let agent = reserved.removeValue(forKey: attemptId) else { return [] }
            lease(attemptId, taskId: taskId, agent: agent, timeout: timeout, cancelled: false, &actions)
        case .reservationDropped(let attemptId):
            guard let agent = reserved.removeValue(forKey: attemptId) else { return [] }
            release(agent)
            pass(&actions)
        case .assignmentWritten(let attemptId, let timeout):
            guard let pending = assigning.removeValue(forKey: attemptId) else { return [] }
            lease(attemptId, taskId: pending.taskId, agent: pending.agent, timeout: timeout, cancelled: pending.cancelled, &actions)
        case .assignmentLost(let attemptId):
            guard let pending = assigning.removeValue(forKey: attemptId) else { return [] }
            release(pending.agent)
            pass(&actions)
        case .assignmentFailed(let attemptId):
            guard let pending = assigning.removeValue(forKey: attemptId) else { return [] }
            release(pending.agent)
            if !pending.cancelled {
                queue.insert(pending.taskId, createdAt: pending.entry.createdAt, requirement: pending.entry.requirement, pending: false)
            }
            pass(&actions)
        case .offerFailed(let attemptId, let error):
            guard let lease = leases[attemptId] else { return [] }
            end(lease, .released, error: "the platform could not prepare the task: \(error)", &actions)
        case .cancelled(let taskId):
            cancel(taskId, &actions)

        case .connected(let key, let agent, let holding):
            connect(key, agent, holding: holding, &actions)
        case .disconnected(let key, let why):
            disconnect(key, why: why, notice: nil, retry: false, detach: true, &actions)
        case .revoked(let key, let reason):
            disconnect(key, why: reason, notice: reason, retry: false, detach: false, &actions)
        case .seen(let key):
            agents[key]?.lastSeen = now
        case .heartbeat(let key, let holding):
            agents[key]?.lastSeen = now
            reconcile(key, holding: holding, &actions)
        case .statusReported(let key, let status):
            guard let before = agents[key]?.candidate.status else { return [] }
            agents[key]?.lastSeen = now
            // The agent reports idle or busy from its own count; capacity is ours to judge, so only the states that
            // make it ineligible are taken as said.
            let after: AgentStatus = status == .syncing || status == .unhealthy ? status : .idle
            guard before != after else { return [] }
            change(key) { $0.status = after }
            // A syncing agent may take the tasks whose models it holds.
            if after != .unhealthy { pass(&actions) }
        case .modelsHeld(let key, let models):
            guard agents[key]?.candidate.cachedModels != models else { return [] }
            change(key) { $0.cachedModels = models }
            pass(&actions)
        case .acknowledged(let key, let attemptId):
            agents[key]?.lastSeen = now
            guard let lease = held(attemptId, by: key, &actions), lease.ackedAt == nil else { return actions }
            if agents[key]?.reportsStart == true {
                // Held, perhaps behind others in the engine's queue: the task stays `queued` until `started`.
                leases[attemptId]?.ackDeadline = nil
            } else {
                start(lease, &actions)
            }
        case .started(let key, let attemptId):
            agents[key]?.lastSeen = now
            guard let lease = held(attemptId, by: key, &actions), lease.ackedAt == nil else { return actions }
            start(lease, &actions)
        case .startWritten(let attemptId, let applied):
            guard var lease = leases[attemptId] else { return [] }
            lease.starting = false
            guard applied else {
                leases[attemptId] = lease
                return [.refuse(lease.agent, attemptId: attemptId, reason: "the attempt is no longer the task's")]
            }
            lease.ackedAt = now
            lease.ackDeadline = nil
            if !lease.cancelling { lease.runDeadline = lease.timeout > 0 ? now.addingTimeInterval(lease.timeout) : nil }
            leases[attemptId] = lease
            actions.append(.wake(taskId: lease.taskId))
        case .finished(let key, let attemptId, let event, let error, let output):
            agents[key]?.lastSeen = now
            guard let lease = held(attemptId, by: key, &actions) else { return actions }
            // An end reported for an attempt still `queued` here: its `ack`/`started` was lost (written into the
            // session of a replica that died). It ran, so it is marked running first rather than run again.
            let startFirst = lease.ackedAt == nil && event != .released
            end(lease, event, error: error, output: output, startFirst: startFirst, &actions)
        case .stopped(let key, let attemptId):
            agents[key]?.lastSeen = now
            guard let lease = leases[attemptId], lease.agent == key else { return [] }
            end(lease, lease.cancelling ? nil : .released, error: "the agent stopped the attempt", &actions)

        case .orphansFound(let orphans):
            for orphan in orphans where leases[orphan.attemptId] == nil {
                var lease = Lease(
                    attemptId: orphan.attemptId, taskId: orphan.taskId, teamId: orphan.agent.teamId, agent: orphan.agent, timeout: orphan.timeout)
                lease.ackedAt = orphan.startedAt
                lease.orphanOf = orphan.owner
                lease.orphanDeadline = now.addingTimeInterval(settings.reconnectGrace)
                leases[orphan.attemptId] = lease
            }
        case .replicasChecked(let live):
            settleOrphans(live: live, &actions)
        case .takenOver(let attemptId, let taken):
            tookOver(attemptId, taken: taken, &actions)
        case .movedElsewhere(let key, let gateway, let attempts):
            disconnect(
                key, why: "it connected to replica \(gateway)", notice: "the agent connected to another replica", retry: false, detach: true,
                &actions)
            for lease in leases.held(by: key) where lease.detachedUntil != nil && attempts.contains(lease.attemptId) {
                leases[lease.attemptId] = nil
                actions.append(.handOver(lease, to: gateway))
            }
        case .heldLookedUp(let key, let attemptId, let found):
            lookedUp(key, attemptId: attemptId, found: found, &actions)

        case .tick:
            expireDeadlines(&actions)
            // Tasks whose cloud fallback wait has passed go to their team's cloud runner.
            if index.cloudHasRoom, !queue.isEmpty { pass(&actions) }
        }
        return actions
    }

    // MARK: Tasks

    /// While an agent has room: the oldest waiting task some agent can take goes to the best of them (one look per
    /// lane of the queue, no sort). Then tasks still `pending` are marked `waiting`, with the reason.
    private mutating func pass(_ actions: inout [Action]) {
        while hasRoom {
            let now = self.now
            guard let id = queue.next(where: { index.choose(for: $0, waited: now.timeIntervalSince($1)) != nil }), let entry = queue.remove(id),
                let chosen = index.choose(for: entry.requirement, waited: now.timeIntervalSince(entry.createdAt))
            else { break }
            let key = AgentKey(teamId: chosen.teamId, agentId: chosen.id)
            change(key) { $0.running += 1 }
            let attemptId = makeAttemptId(now)
            assigning[attemptId] = (id, key, false, entry)
            actions.append(.assign(taskId: id, attemptId: attemptId, agent: key))
        }
        guard !queue.pending.isEmpty else { return }
        for id in queue.pending.sorted(by: { $0.lowercased < $1.lowercased }) {
            guard let requirement = queue[id]?.requirement else { continue }
            queue.markedWaiting(id)
            let reason = waitingReason(requirement)
            actions.append(.markWaiting(taskId: id, reason: reason))
        }
    }

    /// The assignment is written: the agent holds the attempt until it acknowledges (or `ackTimeout` passes).
    private mutating func lease(
        _ attemptId: UUID, taskId: UUID, agent: AgentKey, timeout: TimeInterval, cancelled: Bool, _ actions: inout [Action]
    ) {
        var lease = Lease(attemptId: attemptId, taskId: taskId, teamId: agent.teamId, agent: agent, timeout: timeout)
        lease.ackDeadline = now.addingTimeInterval(settings.ackTimeout)
        leases[attemptId] = lease
        actions.append(.wake(taskId: taskId))
        if cancelled {
            // Cancelled while the assignment was written: never offered, so nothing to stop.
            end(lease, nil, error: nil, &actions)
        } else if agents[agent] == nil {
            end(lease, .released, error: "agent \(agent.agentId) disconnected before it was offered the task", &actions)
        } else {
            actions.append(.offer(attemptId: attemptId, taskId: taskId, agent: agent))
        }
    }

    /// Forgets the task if it waits; tells the agent holding it to stop, giving it `cancelGrace` to say it did.
    private mutating func cancel(_ taskId: UUID, _ actions: inout [Action]) {
        queue.remove(taskId)
        for (attemptId, pending) in assigning where pending.taskId == taskId { assigning[attemptId]?.cancelled = true }
        for lease in leases.of(task: taskId) where !lease.cancelling {
            let attemptId = lease.attemptId
            leases[attemptId]?.cancelling = true
            leases[attemptId]?.ackDeadline = nil
            leases[attemptId]?.runDeadline = now.addingTimeInterval(settings.cancelGrace)
            actions.append(.cancel(attemptId: attemptId, agent: lease.agent))
        }
    }

    // MARK: Attempts

    /// The lease when `key` holds the attempt, else a refusal.
    private func held(_ attemptId: UUID, by key: AgentKey, _ actions: inout [Action]) -> Lease? {
        guard let lease = lease(attemptId, heldBy: key) else {
            actions.append(.refuse(key, attemptId: attemptId, reason: Self.refusal(attemptId.lowercased)))
            return nil
        }
        return lease
    }

    private mutating func start(_ lease: Lease, _ actions: inout [Action]) {
        guard !lease.starting else { return }
        leases[lease.attemptId]?.starting = true
        actions.append(.writeStart(lease))
    }

    /// Ends an attempt: its capacity is free at once (and offered), its task's change is written.
    private mutating func end(
        _ lease: Lease, _ event: TaskStateMachine.Event?, error: String?, output: JSONValue? = nil, startFirst: Bool = false,
        _ actions: inout [Action]
    ) {
        guard leases.removeValue(forKey: lease.attemptId) != nil else { return }
        // An orphan's capacity was never counted here; a detached one's went with its session.
        if lease.orphanDeadline == nil && lease.detachedUntil == nil { release(lease.agent) }
        actions.append(.end(Ending(lease: lease, event: event, error: error, output: output, startFirst: startFirst)))
        pass(&actions)
    }

    private mutating func release(_ key: AgentKey) {
        change(key) { $0.running = max(0, $0.running - 1) }
    }

    /// Heartbeats list the attempts the agent holds. An attempt leased to it that `unlistedHeartbeats` heartbeats in
    /// a row do not list was lost on the way (an offer that never arrived, an agent that dropped it): it ends as a
    /// platform fault, rather than being held until its task's timeout, or forever when it never started. Not at the
    /// first miss: an offer sent after the agent wrote a heartbeat, or a final report still in its lane, misses one.
    private mutating func reconcile(_ key: AgentKey, holding: Set<UUID>, _ actions: inout [Action]) {
        for lease in leases.held(by: key) where lease.orphanOf == nil && lease.claimDeadline == nil {
            guard !holding.contains(lease.attemptId) else {
                leases[lease.attemptId]?.unlisted = 0
                continue
            }
            let unlisted = lease.unlisted + 1
            leases[lease.attemptId]?.unlisted = unlisted
            guard unlisted >= settings.unlistedHeartbeats else { continue }
            end(
                lease, lease.cancelling ? nil : .released,
                error: "agent \(key.agentId) no longer held the attempt (three heartbeats did not list it)", &actions)
        }
    }

    /// Acknowledge deadlines, run deadlines (`task_timeout` from the ACK; a cancelled attempt's grace), silent agents.
    private mutating func expireDeadlines(_ actions: inout [Action]) {
        for lease in leases.sorted {
            // Orphans and claims are settled by `replicasChecked`, which knows which replicas are alive.
            guard lease.orphanOf == nil, leases[lease.attemptId] != nil else { continue }
            if let deadline = lease.detachedUntil {
                // Its agent is away: no ACK or run deadline is judged until it is back (or the grace ends).
                guard deadline <= now else { continue }
                end(
                    lease, lease.cancelling ? nil : .attemptFailed(retriable: true),
                    error:
                        "agent \(lease.agent.agentId) disconnected while it held the task (\(lease.detachedWhy ?? "its connection dropped")) and did not reconnect within \(Self.seconds(settings.reconnectGrace))",
                    &actions)
            } else if let deadline = lease.ackDeadline, deadline <= now {
                actions.append(.cancel(attemptId: lease.attemptId, agent: lease.agent))
                end(
                    lease, .released,
                    error: "agent \(lease.agent.agentId) did not acknowledge the task within \(Self.seconds(settings.ackTimeout))", &actions)
            } else if let deadline = lease.runDeadline, deadline <= now {
                actions.append(.cancel(attemptId: lease.attemptId, agent: lease.agent))
                end(
                    lease, lease.cancelling ? nil : .attemptFailed(retriable: true),
                    error: "the task timed out after \(Self.seconds(lease.timeout)) (task_timeout counts from the agent's ACK)", &actions)
            }
        }
        for (key, agent) in agents.sorted(by: { $0.key.description < $1.key.description })
        where now.timeIntervalSince(agent.lastSeen) > settings.heartbeatSilence {
            disconnect(
                key, why: "it missed three heartbeats", notice: "no heartbeat for \(Self.seconds(settings.heartbeatSilence))", retry: true,
                detach: true, &actions)
        }
    }

    // MARK: Sessions

    /// Registers the agent, keeps the attempts it still holds (taking over those of a replica that died, looking up
    /// those this replica never knew), tells it to drop the rest, and offers it work.
    private mutating func connect(_ key: AgentKey, _ agent: Agent, holding: [UUID], _ actions: inout [Action]) {
        var agent = agent
        agent.candidate.running = 0
        agents[key] = agent
        index.update(key, agent.candidate)
        for attemptId in holding {
            if var lease = leases[attemptId], lease.agent == key {
                change(key) { $0.running += 1 }
                lease.orphanDeadline = nil
                if lease.detachedUntil != nil {
                    // Back within the grace: the attempt is its again (and a cancel it missed is sent again).
                    lease.detachedUntil = nil
                    lease.detachedWhy = nil
                    if lease.ackDeadline != nil { lease.ackDeadline = now.addingTimeInterval(settings.ackTimeout) }
                    if lease.cancelling { actions.append(.cancel(attemptId: attemptId, agent: key)) }
                }
                if lease.orphanOf != nil {
                    lease.takingOver = .reconnected
                    actions.append(.takeOver(lease))
                } else if lease.ackedAt != nil, lease.runDeadline == nil, lease.timeout > 0, !lease.cancelling {
                    lease.runDeadline = (lease.ackedAt ?? now).addingTimeInterval(lease.timeout)
                }
                leases[attemptId] = lease
            } else if leases[attemptId] == nil, lookingUp[attemptId] == nil {
                change(key) { $0.running += 1 }
                lookingUp[attemptId] = key
                actions.append(.lookUpHeld(key, attemptId: attemptId))
            } else {
                actions.append(.cancel(attemptId: attemptId, agent: key))
            }
        }
        // What it held when its connection dropped and no longer lists, it lost (a restart that could not find it).
        for lease in leases.held(by: key) where lease.detachedUntil != nil {
            end(
                lease, lease.cancelling ? nil : .attemptFailed(retriable: true),
                error:
                    "agent \(key.agentId) disconnected while it held the task (\(lease.detachedWhy ?? "its connection dropped")) and reconnected without it",
                &actions)
        }
        actions.append(.rescan)
        pass(&actions)
    }

    /// Ends the session. Claims on other replicas' attempts are forgotten. The attempts it held are `detach`ed —
    /// kept for `reconnectGrace`, for an agent that reconnects (a dropped socket, a restarted agent that finds its
    /// prompts in its engine) to claim, so that nothing runs twice — or, for a session ended for good (revoked),
    /// end now (failed, retriable).
    private mutating func disconnect(
        _ key: AgentKey, why: String, notice: String?, retry: Bool, detach: Bool, _ actions: inout [Action]
    ) {
        guard agents.removeValue(forKey: key) != nil else { return }
        index.remove(key)
        actions.append(.endSession(key, why: why, notice: notice, retry: retry))
        for lease in leases.held(by: key) {
            if lease.claimDeadline != nil || lease.takingOver == .reconnected || lease.takingOver == .claimed || lease.takingOver == .handedOver {
                // A claim on another replica's attempt was never this replica's to end: it is only forgotten here.
                leases[lease.attemptId] = nil
            } else if lease.orphanDeadline == nil && lease.orphanOf == nil && lease.detachedUntil == nil && detach {
                leases[lease.attemptId]?.detachedUntil = now.addingTimeInterval(settings.reconnectGrace)
                leases[lease.attemptId]?.detachedWhy = why
            } else if lease.orphanDeadline == nil && lease.orphanOf == nil {
                end(
                    lease, lease.cancelling ? nil : .attemptFailed(retriable: true),
                    error: "agent \(key.agentId) disconnected while it held the task (\(why))", &actions)
            }
        }
        pass(&actions)
    }

    // MARK: Replicas

    /// Orphans whose grace ended go back to waiting (unless another replica's agent reclaimed them first); claims on
    /// a replica that has died since are taken over, claims on one still alive when the wait ends are handed back.
    private mutating func settleOrphans(live: Set<String>, _ actions: inout [Action]) {
        for lease in leases.sorted {
            guard let owner = lease.orphanOf, lease.takingOver == nil else { continue }
            if live.contains(owner) {
                // Its replica lives: taken over if that replica handed it over meanwhile (the row names this one now),
                // else handed back.
                if let deadline = lease.claimDeadline, deadline <= now {
                    leases[lease.attemptId]?.takingOver = .handedOver
                    actions.append(.confirmHandOver(lease))
                }
            } else if lease.claimDeadline != nil {
                leases[lease.attemptId]?.takingOver = .claimed
                actions.append(.takeOver(lease))
            } else if let deadline = lease.orphanDeadline, deadline <= now {
                leases[lease.attemptId]?.takingOver = .expired
                actions.append(.takeOver(lease))
            }
        }
    }

    private mutating func tookOver(_ attemptId: UUID, taken: Bool, _ actions: inout [Action]) {
        guard var lease = leases[attemptId], let reason = lease.takingOver else { return }
        lease.takingOver = nil
        guard taken else {
            // Another replica took it first, or it ended.
            leases[attemptId] = nil
            if reason != .expired {
                release(lease.agent)
                actions.append(.cancel(attemptId: attemptId, agent: lease.agent))
                pass(&actions)
            }
            return
        }
        lease.orphanOf = nil
        lease.claimDeadline = nil
        if reason == .expired {
            leases[attemptId] = lease
            end(
                lease, .released,
                error:
                    "the replica holding the task stopped and agent \(lease.agent.agentId) did not reclaim it within \(Self.seconds(settings.reconnectGrace))",
                &actions)
            return
        }
        if let ackedAt = lease.ackedAt, lease.timeout > 0, !lease.cancelling { lease.runDeadline = ackedAt.addingTimeInterval(lease.timeout) }
        leases[attemptId] = lease
    }

    /// An agent listed an attempt this replica had no lease for: it may have been connected to a replica that died.
    /// If the task's row still names this agent's attempt, it is taken over now (its replica is gone) or claimed
    /// until that replica's lease says whether it is.
    private mutating func lookedUp(_ key: AgentKey, attemptId: UUID, found: HeldTask?, _ actions: inout [Action]) {
        guard lookingUp.removeValue(forKey: attemptId) == key else { return }
        guard agents[key] != nil else { return }
        guard let found, found.teamId == key.teamId, found.agentId == key.agentId, leases[attemptId] == nil else {
            release(key)
            actions.append(.cancel(attemptId: attemptId, agent: key))
            pass(&actions)
            return
        }
        var lease = Lease(attemptId: attemptId, taskId: found.taskId, teamId: found.teamId, agent: key, timeout: found.timeout)
        lease.ackedAt = found.startedAt
        lease.orphanOf = found.owner
        if found.ownerAlive {
            lease.claimDeadline = now.addingTimeInterval(settings.claimWait)
        } else {
            lease.takingOver = .claimed
            actions.append(.takeOver(lease))
        }
        leases[attemptId] = lease
    }

    /// Changes a connected agent's candidate, keeping the index in step.
    private mutating func change(_ key: AgentKey, _ body: (inout AgentCandidate) -> Void) {
        guard var agent = agents[key] else { return }
        body(&agent.candidate)
        agents[key] = agent
        index.update(key, agent.candidate)
    }

    /// Why a task needing `requirement` waits: what the first agents that could see it lack.
    private func waitingReason(_ requirement: DispatchRequirement) -> String {
        let visible = agents.values.lazy.map(\.candidate).filter { $0.teamId == requirement.teamId || ($0.communityOptIn && !$0.cloud) }
        return DispatchPolicy.waitingReason(agents: visible, for: requirement)
    }
}
