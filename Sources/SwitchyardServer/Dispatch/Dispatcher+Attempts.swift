import Foundation
import SwitchyardCore
import SwitchyardWire

/// Attempts: adopting those found running after a restart, starting one, and which agent holds which.
extension Dispatcher {
    /// At start: this replica's lease row, and the attempts of replicas that are gone (see `checkReplicas`).
    func recoverActiveAttempts() async {
        guard !started else { return }
        started = true
        lastReplicaCheck = clock.now()
        await checkReplicas(lastReplicaCheck)
    }

    /// Renews this replica's lease and looks for replicas whose lease expired (killed, or this one before a restart):
    /// their agent rows are marked disconnected, and their attempts are kept for `reconnectGrace` — an agent that
    /// reconnects here listing one in `held_attempts` keeps it; the rest go back to waiting as a platform fault (no
    /// retry used). Attempts of live replicas are never touched. Moving an attempt between replicas is one
    /// conditional write (`takeOverAttempt`), so two replicas never both act on it.
    func checkReplicas(_ now: Date) async {
        do {
            try await storage.heartbeatReplica(gatewayId: gatewayId, at: now)
            var live = try await storage.liveReplicas(since: now.addingTimeInterval(-settings.replicaLeaseTimeout))
            live.insert(gatewayId)
            let disconnected = try await storage.disconnectAgents(notOn: live, at: now)
            if disconnected > 0 { logger.info("agents of a stopped replica marked disconnected", metadata: ["count": "\(disconnected)"]) }
            await settleOrphans(live: live, now: now)
            let deadline = now.addingTimeInterval(settings.reconnectGrace)
            for task in try await storage.activeTasks() {
                guard let attemptId = task.attemptId, let agentId = task.agentId, leases[attemptId] == nil else { continue }
                let owner = task.gatewayId ?? ""
                guard !live.contains(owner) else { continue }
                leases[attemptId] = Lease(
                    attemptId: attemptId, taskId: task.id, teamId: task.teamId, agent: AgentKey(teamId: task.teamId, agentId: agentId),
                    ackDeadline: nil, runDeadline: nil, timeout: TimeInterval(task.taskTimeout), ackedAt: task.startedAt, orphanDeadline: deadline,
                    orphanOf: owner)
            }
        } catch {
            logger.error("could not check the other replicas", metadata: ["error": "\(error)"])
        }
    }

    /// Orphans whose grace ended go back to waiting (unless another replica's agent reclaimed them first); claims on
    /// a replica that has now died are taken over, claims on one that is alive after all are handed back.
    private func settleOrphans(live: Set<String>, now: Date) async {
        for lease in leases.values {
            guard let owner = lease.orphanOf else { continue }
            if live.contains(owner) {
                if let deadline = lease.claimDeadline, deadline <= now {
                    leases[lease.attemptId] = nil
                    release(lease.agent)
                    sessions[lease.agent]?.connection.send(.cancel(AttemptRef(attemptId: lease.attemptId.lowercased)))
                }
                continue
            }
            if lease.claimDeadline != nil {
                if await adopt(lease) {
                    leases[lease.attemptId]?.claimDeadline = nil
                    if let ackedAt = lease.ackedAt, lease.timeout > 0 {
                        leases[lease.attemptId]?.runDeadline = ackedAt.addingTimeInterval(lease.timeout)
                    }
                } else {
                    release(lease.agent)
                    sessions[lease.agent]?.connection.send(.cancel(AttemptRef(attemptId: lease.attemptId.lowercased)))
                }
            } else if let deadline = lease.orphanDeadline, deadline <= now, await adopt(lease) {
                await endAttempt(
                    lease, event: .released,
                    error:
                        "the replica holding the task stopped and agent \(lease.agent.agentId) did not reclaim it within \(Self.seconds(settings.reconnectGrace))"
                )
            }
        }
    }

    /// An agent lists an attempt this replica has no lease for: it may have been connected to another replica that
    /// died. If the task's row still names this agent's attempt, the attempt is taken over now (its replica is gone)
    /// or claimed until that replica's lease says whether it is (`claimDeadline`).
    func claimHeldElsewhere(_ attemptId: UUID, agent key: AgentKey, now: Date) async -> Lease? {
        guard let tasks = await write({ try await self.storage.activeTasks() }),
            let task = tasks.first(where: { $0.attemptId == attemptId }), task.teamId == key.teamId, task.agentId == key.agentId,
            let owner = task.gatewayId, owner != gatewayId
        else { return nil }
        var lease = Lease(
            attemptId: attemptId, taskId: task.id, teamId: task.teamId, agent: key, ackDeadline: nil, runDeadline: nil,
            timeout: TimeInterval(task.taskTimeout), ackedAt: task.startedAt, orphanOf: owner)
        let live = await write { try await self.storage.liveReplicas(since: now.addingTimeInterval(-self.settings.replicaLeaseTimeout)) } ?? []
        guard !live.contains(owner) else {
            lease.claimDeadline = now.addingTimeInterval(settings.replicaLeaseTimeout + 2 * settings.replicaHeartbeatInterval)
            return lease
        }
        leases[attemptId] = lease
        guard await adopt(lease) else { return nil }
        lease.orphanOf = nil
        if let ackedAt = lease.ackedAt, lease.timeout > 0 { lease.runDeadline = ackedAt.addingTimeInterval(lease.timeout) }
        return lease
    }

    /// Takes an orphaned attempt over from the dead replica its row names; false (and the lease forgotten) when
    /// another replica took it first or it ended. Leases that are not orphans are this replica's already.
    func adopt(_ lease: Lease) async -> Bool {
        guard let from = lease.orphanOf else { return true }
        var taken = await write {
            try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: from, to: self.gatewayId)
        }
        if taken != true {
            // Another of this replica's checks may have taken it over in between (the actor interleaves at awaits):
            // then the row names this replica already.
            taken = await write {
                try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: self.gatewayId, to: self.gatewayId)
            }
        }
        guard taken == true else {
            leases[lease.attemptId] = nil
            return false
        }
        leases[lease.attemptId]?.orphanOf = nil
        return true
    }

    /// An end reported for an attempt still `queued` here: its `ack`/`started` was lost (written into the session of
    /// a replica that died). It ran, so it is marked running first and the end applies, rather than the end being
    /// refused and the task run again.
    func markRunning(_ lease: Lease, at now: Date, connection: AgentConnection) async {
        guard lease.ackedAt == nil, let current = leases[lease.attemptId], current.ackedAt == nil else { return }
        await started(lease, at: now, connection: connection)
    }

    /// The attempt runs (`queued → running`): `task_timeout` counts from here (api.md §2.1; 0 means no limit).
    func started(_ lease: Lease, at now: Date, connection: AgentConnection) async {
        let outcome = await writeDurably {
            try await self.storage.applyAttemptEvent(
                taskId: lease.taskId, attemptId: lease.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now)
        }
        // Not applied: the attempt lost the task — unless a try whose answer was lost with the connection applied it.
        var applied = outcome != nil
        if !applied, let task = await write({ try await self.storage.task(id: lease.taskId, teamId: lease.teamId) }) {
            applied = task.attemptId == lease.attemptId && task.status == .running
        }
        guard applied else {
            refuse(lease.attemptId.lowercased, connection, "the attempt is no longer the task's")
            return
        }
        leases[lease.attemptId]?.ackedAt = now
        leases[lease.attemptId]?.ackDeadline = nil
        leases[lease.attemptId]?.runDeadline = lease.timeout > 0 ? now.addingTimeInterval(lease.timeout) : nil
        hub.signal(lease.taskId)
    }

    /// Heartbeats list the attempts the agent holds. An attempt leased to it that three heartbeats in a row do not
    /// list was lost on the way (an offer that never arrived, an agent that dropped it): it is ended as a platform
    /// fault — back to waiting, no retry used — rather than held until its task's timeout, or forever when it never
    /// started. Three, because an offer sent after the agent wrote a heartbeat, or a final report still in its
    /// attempt's lane, misses one legitimately.
    func reconcile(_ key: AgentKey, holding running: [String]) async {
        let held = Set(running.compactMap(UUID.init(text:)))
        for lease in leases.values where lease.agent == key && lease.orphanOf == nil && lease.claimDeadline == nil {
            guard !held.contains(lease.attemptId) else {
                leases[lease.attemptId]?.unlisted = 0
                continue
            }
            leases[lease.attemptId]?.unlisted += 1
            guard lease.unlisted + 1 >= 3 else { continue }
            logger.warning("an attempt its agent does not hold is ended", metadata: ["attempt_id": "\(lease.attemptId)", "agent": "\(key)"])
            await endAttempt(
                lease, event: lease.cancelling ? nil : .released,
                error: "agent \(key.agentId) no longer held the attempt (three heartbeats did not list it)")
        }
    }

    /// The lease of `attemptId` when this connection's agent holds it; otherwise refuses the message.
    func lease(_ rawId: String, of connection: AgentConnection) -> Lease? {
        guard let attemptId = UUID(text: rawId), let lease = leases[attemptId], lease.agent == connection.key, !lease.cancelling else {
            refuse(rawId, connection, "this agent does not hold attempt \(rawId) (it ended, timed out, was cancelled or went to another agent)")
            return nil
        }
        return lease
    }

    func refuse(_ attemptId: String, _ connection: AgentConnection, _ reason: String) {
        connection.send(.refused(.init(attemptId: attemptId, reason: reason)))
    }

    /// The tasks an agent connected here holds, oldest attempt first.
    func runningTasks(teamId: UUID, agentId: String) -> [UUID] {
        let key = AgentKey(teamId: teamId, agentId: agentId)
        return leases.values.filter { $0.agent == key }.sorted { $0.attemptId.lowercased < $1.attemptId.lowercased }.map(\.taskId)
    }

    func release(_ key: AgentKey) {
        guard var session = sessions[key] else { return }
        session.candidate.running = max(0, session.candidate.running - 1)
        sessions[key] = session
    }
}
