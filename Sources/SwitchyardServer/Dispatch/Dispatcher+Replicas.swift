import Foundation
import SwitchyardCore
import SwitchyardWire

/// What replicas sharing a database tell each other (`ReplicaNotifier`): submissions to claim, cancels to carry
/// to the agent, log changes for event streams.
extension Dispatcher {
    /// Another replica changed a task: claim a submission when an agent here may take it, stop a cancelled
    /// attempt held here, wake the task's event streams.
    func heard(_ notification: ReplicaNotification) async {
        switch notification {
        case .submitted(let taskId, let teamId, let dispatch):
            // With no agent here the task is read back when one connects.
            guard hasAgents, !machine.knows(taskId) else { return }
            if let dispatch, let workflow = try? await workflow(dispatch.workflowId, version: dispatch.workflowVersion, teamId: teamId) {
                // No read of the task: it is queued from what the notification carries (stored `waiting`; an assignment
                // that finds it taken or cancelled is refused by the database, as for any race).
                // Only agent tasks carry `dispatch` (a comfy_cloud task is read).
                let requirement = withCloud(
                    DispatchRequirement(
                        teamId: teamId, requiredLabels: Set(workflow.requiredLabels), pool: dispatch.pool, minVRAMGB: workflow.minVRAMGB,
                        submitterRegion: dispatch.submitterRegion, requiredModels: Set(workflow.requiredModels)),
                    target: .agent)
                await feed(.submitted(taskId, createdAt: dispatch.createdAt, requirement: requirement, pending: false))
                return
            }
            guard let found = await write({ try await self.storage.task(id: taskId, teamId: teamId) }),
                found.status == .pending || found.status == .waiting
            else { return }
            await enqueue(found)
        case .cancelled(let taskId):
            await stop(taskId: taskId)
        case .changed(let taskId):
            hub.wake(taskId)
        case .heldElsewhere(let teamId, let agentId, let gateway, let attempts):
            guard gateway != gatewayId else { return }
            await feed(.movedElsewhere(AgentKey(teamId: teamId, agentId: agentId), gateway: gateway, attempts: Set(attempts)))
        case .modelsChanged(let teamId):
            await sendModels(teamId: teamId)
        case .cloudChanged:
            break  // the cloud runner listens for it
        case .resync:
            hub.wakeAll()
            await rescan()
        }
    }

    /// A caller cancelled the task (already written): forget it if it waited, or tell its agent to stop — here, and
    /// on the replica whose agent holds it.
    func cancelled(taskId: UUID) async {
        storage.notifier.publish(.cancelled(taskId: taskId))
        await stop(taskId: taskId)
    }

    func stop(taskId: UUID) async {
        definitions[taskId] = nil
        await feed(.cancelled(taskId: taskId))
    }

    // MARK: Admission of agents

    /// At each heartbeat: the session's key must still be active (not revoked, not past `expires_at`, on any
    /// replica) and the member who created it must still be in the team with a role that runs tasks. Otherwise the
    /// session ends now, and the agent is told not to retry.
    func credentialStillValid(_ connection: AgentConnection, now: Date) async -> Bool {
        let key = connection.key
        if let checked = credentialsChecked[connection.credentialId], now.timeIntervalSince(checked) < 1 { return true }
        let problem = await credentialProblem(connection.credentialId, teamId: key.teamId, now: now)
        guard let problem, !problem.isEmpty else {
            if problem != nil { credentialsChecked[connection.credentialId] = now }
            return true
        }
        credentialsChecked[connection.credentialId] = nil
        await credentialsRevoked(teamId: key.teamId, credentialIds: [connection.credentialId], reason: problem)
        return false
    }

    /// Why the key no longer admits agents ("" when it does; nil when storage did not answer). One read per key at a
    /// time: the heartbeats of the agents sharing a key that arrive while it is being read wait for that read, rather
    /// than each reading it (ten thousand agents on one key would otherwise read it together each second).
    private func credentialProblem(_ id: UUID, teamId: UUID, now: Date) async -> String? {
        if credentialChecksInFlight[id] != nil {
            return await withCheckedContinuation { credentialChecksInFlight[id, default: []].append($0) }
        }
        credentialChecksInFlight[id] = []
        let problem: String? = await write {
            guard let credential = try await self.storage.credential(id: id, teamId: teamId), credential.status(at: now) == .active else {
                return "the agent key was revoked or expired"
            }
            if let userId = credential.userId {
                let role = try await self.storage.role(userId: userId, teamId: teamId)
                guard let role, role != .viewer else { return "the member who created the agent key left the team or became a viewer" }
            }
            return ""
        }
        for waiter in credentialChecksInFlight.removeValue(forKey: id) ?? [] { waiter.resume(returning: problem) }
        return problem
    }

    /// Why a new agent of `teamId` may not connect (`maxAgentsPerTeam` reached over every replica), or nil.
    func admissionRefusal(teamId: UUID, agentId: String) async -> String? {
        guard settings.maxAgentsPerTeam > 0 else { return nil }
        let connected = await write { try await self.storage.agents(teamId: teamId, includeDisconnected: false, page: PageRequest(perPage: 100)) }
        let others = (connected?.items.filter { $0.agentId != agentId }.count ?? 0)
        let total = max(others, (connected?.totalCount ?? 0) - (connected?.items.contains { $0.agentId == agentId } == true ? 1 : 0))
        guard total >= settings.maxAgentsPerTeam else { return nil }
        return "the team already has \(total) agents connected, its limit (dispatch.maxAgentsPerTeam = \(settings.maxAgentsPerTeam))"
    }
}
