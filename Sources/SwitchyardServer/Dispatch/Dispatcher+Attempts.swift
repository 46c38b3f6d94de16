import Foundation
import SwitchyardCore
import SwitchyardWire

/// Attempts: the writes that start and end them, taking over those of a replica that died, and which agent holds
/// which.
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
            await feed(.replicasChecked(live: live))
            var orphans: [DispatchMachine.Orphan] = []
            for task in try await storage.activeTasks() {
                guard let attemptId = task.attemptId, let agentId = task.agentId, machine.leases[attemptId] == nil else { continue }
                let owner = task.gatewayId ?? ""
                guard !live.contains(owner) else { continue }
                orphans.append(
                    .init(
                        attemptId: attemptId, taskId: task.id, agent: AgentKey(teamId: task.teamId, agentId: agentId),
                        timeout: TimeInterval(task.taskTimeout), startedAt: task.startedAt, owner: owner))
            }
            if !orphans.isEmpty { await feed(.orphansFound(orphans)) }
        } catch {
            logger.error("could not check the other replicas", metadata: ["error": "\(error)"])
        }
    }

    /// An agent lists an attempt this replica has no lease for: the task's row, and whether the replica it names is
    /// alive (nil when the row names no other replica's attempt).
    func lookUpHeld(_ attemptId: UUID, agent key: AgentKey) async -> DispatchMachine.HeldTask? {
        guard let tasks = await write({ try await self.storage.activeTasks() }),
            let task = tasks.first(where: { $0.attemptId == attemptId }), let agentId = task.agentId,
            let owner = task.gatewayId, owner != gatewayId
        else { return nil }
        let since = clock.now().addingTimeInterval(-settings.replicaLeaseTimeout)
        let live = await write { try await self.storage.liveReplicas(since: since) } ?? []
        return DispatchMachine.HeldTask(
            taskId: task.id, teamId: task.teamId, agentId: agentId, timeout: TimeInterval(task.taskTimeout), startedAt: task.startedAt,
            owner: owner, ownerAlive: live.contains(owner))
    }

    /// Takes an attempt over from the replica its row names; false when another replica took it first or it ended.
    func adopt(_ lease: Lease) async -> Bool {
        guard let from = lease.orphanOf else { return true }
        var taken = await write {
            try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: from, to: self.gatewayId)
        }
        if taken != true {
            // A try whose answer was lost may have taken it over already: then the row names this replica.
            taken = await write {
                try await self.storage.takeOverAttempt(taskId: lease.taskId, attemptId: lease.attemptId, from: self.gatewayId, to: self.gatewayId)
            }
        }
        return taken == true
    }

    /// Writes the attempt's start (`queued → running`); true when the task runs under it — also when a try whose
    /// answer was lost with the connection applied it.
    func writeStart(_ lease: Lease) async -> Bool {
        let now = clock.now()
        let outcome = await writeDurably {
            try await self.storage.applyAttemptEvent(
                taskId: lease.taskId, attemptId: lease.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now)
        }
        if let outcome {
            if case .transition = outcome.action { TaskTransitionLog.record(logger, metrics, outcome.task) }
            return true
        }
        guard let task = await write({ try await self.storage.task(id: lease.taskId, teamId: lease.teamId) }) else { return false }
        return task.attemptId == lease.attemptId && task.status == .running
    }

    /// Writes an attempt's end (its capacity is already free), and puts its task back in line when it waits again.
    func end(_ ending: DispatchMachine.Ending) async {
        let lease = ending.lease
        uploadKeys[lease.attemptId] = nil
        uploadBytes[lease.attemptId] = nil
        progress[lease.attemptId] = nil
        offerTasks[lease.attemptId] = nil
        definitions[lease.taskId] = nil
        guard let event = ending.event else {
            await persistSoon(lease.agent)
            return
        }
        if ending.startFirst { _ = await writeStart(lease) }
        let now = clock.now()
        let outcome = await writeDurably {
            try await self.storage.applyAttemptEvent(
                taskId: lease.taskId, attemptId: lease.attemptId, event: event,
                result: AttemptResult(error: ending.error, output: ending.output), message: ending.error, at: now)
        }
        if let task = outcome?.task {
            if task.status.isTerminal {
                hub.ended(task.id)
            } else {
                hub.clearProgress(task.id)
                hub.signal(task.id)
            }
            TaskTransitionLog.record(
                logger, metrics, taskId: task.id, teamId: task.teamId, status: task.status, attemptId: lease.attemptId, agentId: lease.agent.agentId,
                reason: ending.error)
            if task.status == .waiting { await enqueue(task) }
        }
        await persistSoon(lease.agent)
    }

    /// The attempt id of a message, when it is one; otherwise the message is refused.
    func attempt(_ rawId: String, _ connection: AgentConnection) -> UUID? {
        guard let attemptId = UUID(text: rawId) else {
            refuse(rawId, connection, DispatchMachine.refusal(rawId))
            return nil
        }
        return attemptId
    }

    /// The lease of `attemptId` when this connection's agent holds it; otherwise refuses the message.
    func lease(_ rawId: String, of connection: AgentConnection) -> Lease? {
        guard let attemptId = attempt(rawId, connection) else { return nil }
        guard let lease = machine.lease(attemptId, heldBy: connection.key) else {
            refuse(rawId, connection, DispatchMachine.refusal(rawId))
            return nil
        }
        return lease
    }

    func refuse(_ attemptId: String, _ connection: AgentConnection, _ reason: String) {
        connection.send(.refused(.init(attemptId: attemptId, reason: reason)))
    }

    /// The tasks an agent connected here holds, oldest attempt first.
    func runningTasks(teamId: UUID, agentId: String) -> [UUID] {
        machine.tasks(heldBy: AgentKey(teamId: teamId, agentId: agentId))
    }

    /// Shows the attempt's progress on its event streams (at most once per `progressInterval`; later ticks within
    /// the interval are kept as the latest) and keeps it for the task's log, written coalesced from `tick`.
    func showProgress(_ report: AgentMessage.Progress, lease: Lease, now: Date) {
        guard lease.ackedAt != nil else { return }
        var data: [String: JSONValue] = [
            "task_id": .string(lease.taskId.lowercased), "progress": .number(JSONNumber(min(max(report.progress, 0), 1))),
            "timestamp": .string(RFC3339.format(now)),
        ]
        data["current_node"] = report.currentNode.map(JSONValue.string) ?? .null
        data["step_current"] = report.stepCurrent.map { .number(JSONNumber($0)) } ?? .null
        data["step_total"] = report.stepTotal.map { .number(JSONNumber($0)) } ?? .null
        let event = JSONValue.object(data)
        progress[lease.attemptId, default: Progress()].unlogged = event
        let instant = ContinuousClock.now
        if let shown = progress[lease.attemptId]?.shownAt, shown.duration(to: instant) < .seconds(settings.progressInterval) { return }
        progress[lease.attemptId]?.shownAt = instant
        hub.publishProgress(lease.taskId, event)
    }
}
