import Foundation
import SwitchyardCore
import SwitchyardWire

/// Agents' sessions: registering one after its `hello`, its end, and every message it sends.
extension Dispatcher {
    // MARK: Sessions

    /// Registers an agent after its `hello`; returns the `welcome`, or the `goodbye` that ends the session.
    func connect(_ connection: AgentConnection, hello: AgentMessage.Hello) async -> GatewayMessage {
        let key = connection.key
        guard hello.agentId != Self.cloudAgentId else {
            return .goodbye(
                .init(reason: "agent id \(Self.cloudAgentId) is reserved for the server's Comfy Cloud runner; choose another", retry: false))
        }
        if sessions[key] == nil, let refusal = await admissionRefusal(teamId: key.teamId, agentId: hello.agentId) {
            return .goodbye(.init(reason: refusal, retry: false))
        }
        var seen = Set<UUID>()
        let held = hello.heldAttempts.compactMap(UUID.init(text:)).filter { seen.insert($0).inserted }
        if let previous = sessions[key] {
            // Reconnected before the old socket was noticed gone: the attempts it still holds move to the new session.
            previous.connection.close(reason: "the agent connected again", retry: false)
            await feed(.disconnected(key, why: "it connected again"))
        }
        let now = clock.now()
        let region = hello.region?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let candidate = AgentCandidate(
            id: hello.agentId, teamId: key.teamId, labels: Set(hello.labels),
            status: hello.status == .unhealthy || hello.status == .syncing ? hello.status! : .idle, capacity: max(1, hello.capacity),
            running: 0, region: region?.isEmpty == false ? region : nil, communityOptIn: hello.communityOptIn && settings.communityPool,
            gpuVRAM: hello.systemStats.gpuDevices.map(\.vramTotal), cachedModels: Set(hello.models ?? []),
            prefetch: min(max(hello.prefetch ?? 0, 0), 64))
        let record = AgentRecord(
            teamId: key.teamId, agentId: hello.agentId, credentialId: connection.credentialId, status: .idle,
            labels: hello.labels.sorted(), region: candidate.region, communityOptIn: candidate.communityOptIn, capacity: candidate.capacity,
            agentVersion: hello.agentVersion, tool: hello.tool, toolVersion: hello.toolVersion, systemStats: Self.json(hello.systemStats),
            gatewayId: gatewayId,
            modelReport: hello.modelSync == true ? Self.modelReport(held: candidate.cachedModels.sorted(), broken: []) : nil, connectedAt: now,
            lastHeartbeatAt: now)
        sessions[key] = Session(connection: connection, record: record, modelSync: hello.modelSync == true)
        // The row is written before the machine hears of the agent: a task keeps the stack it grew until it ends, so
        // the connecting task waits for the database with a shallow stack, not with the dispatch frames behind it
        // (ten thousand agents connecting at once wait here together).
        var row = record
        row.status = candidate.status
        await persist(row)
        guard sessions[key]?.connection === connection else {
            return .goodbye(.init(reason: "the agent connected again while this session was starting", retry: false))
        }
        let agent = DispatchMachine.Agent(
            candidate: candidate, credentialId: connection.credentialId, reportsStart: hello.prefetch != nil, lastSeen: now)
        // Claims the attempts it still holds and tells it to drop the ones it no longer owns; its offers wait in the
        // outbox behind the welcome.
        await feed(.connected(key, agent, holding: held))
        if let record = currentRecord(key), record.status != row.status { await persist(record) }
        // Attempts claimed from a replica that is alive: it hands them over when it hears (rather than failing them
        // when its grace for the agent ends).
        let claimed = machine.leases.held(by: key).filter { $0.claimDeadline != nil }.map(\.attemptId)
        if !claimed.isEmpty {
            storage.notifier.publish(.heldElsewhere(teamId: key.teamId, agentId: key.agentId, gatewayId: gatewayId, attempts: claimed))
        }
        logger.info("agent connected", metadata: ["agent": "\(key)", "labels": "\(hello.labels)", "capacity": "\(hello.capacity)"])
        let kept = held.filter { machine.leases[$0]?.agent == key }.map(\.lowercased)
        // The team's set follows the welcome (the outbox starts behind it); read after this returns, so the welcome
        // does not wait for it.
        if hello.modelSync == true {
            let sent = modelSetsSent[key.teamId, default: 0]
            Task {
                guard let set = await modelSet(teamId: key.teamId), sessions[key]?.connection === connection,
                    modelSetsSent[key.teamId, default: 0] == sent  // a newer set went out meanwhile: it got that one
                else { return }
                connection.send(.models(set))
            }
        }
        return .welcome(.init(agentId: hello.agentId, gatewayId: gatewayId, heartbeatInterval: settings.heartbeatInterval, keptAttempts: kept))
    }

    /// The socket closed (or the session was ended): its attempts fail, its row says when.
    func disconnected(_ connection: AgentConnection) async {
        guard sessions[connection.key]?.connection === connection else { return }
        await feed(.disconnected(connection.key, why: "its connection dropped"))
    }

    /// The agent's row with its status as the machine has it.
    func currentRecord(_ key: AgentKey) -> AgentRecord? {
        guard var record = sessions[key]?.record else { return nil }
        record.status = machine.agents[key]?.status ?? record.status
        return record
    }

    // MARK: Messages

    /// Acts on one message from an agent; messages about an attempt it does not hold are refused.
    func handle(_ message: AgentMessage, from connection: AgentConnection) async {
        let key = connection.key
        guard sessions[key]?.connection === connection else { return }
        let now = clock.now()
        switch message {
        case .hello:
            connection.send(.refused(.init(attemptId: nil, reason: "hello is only the first message of a session")))
        case .heartbeat(let heartbeat):
            _ = machine.handle(.seen(key), at: now)
            guard await credentialStillValid(connection, now: now) else { return }
            sessions[key]?.record.lastHeartbeatAt = now
            if let stats = heartbeat.systemStats { sessions[key]?.record.systemStats = Self.json(stats) }
            await feed(.heartbeat(key, holding: Set(heartbeat.running.compactMap(UUID.init(text:)))))
            // A heartbeat in the same state keeps what the last status report said of it (a sync's progress).
            let last = machine.agents[key]?.candidate.status == heartbeat.status ? sessions[key]?.record : nil
            await changeStatus(
                key, to: heartbeat.status, detail: last?.syncDetail, percent: last?.syncPercent, phase: last?.syncPhase.flatMap(SyncPhase.init),
                now: now)
        case .status(let change):
            await changeStatus(key, to: change.status, detail: change.detail, percent: change.syncPercent, phase: change.syncPhase, now: now)
        case .note(let note):
            _ = machine.handle(.seen(key), at: now)
            guard let lease = lease(note.attemptId, of: connection) else { return }
            let message = String(note.message.prefix(500))
            let written = await write {
                try await self.storage.appendAttemptNote(taskId: lease.taskId, attemptId: lease.attemptId, message: message, at: now)
            }
            if written ?? nil != nil { hub.signal(lease.taskId) }
        case .models(let report):
            await modelsReported(key, report)
        case .modelURLRequest(let request):
            await answerModelURL(request, connection: connection)
        case .ack(let ref):
            guard let attemptId = attempt(ref.attemptId, connection) else { return }
            await feed(.acknowledged(key, attemptId: attemptId))
        case .started(let ref):
            guard let attemptId = attempt(ref.attemptId, connection) else { return }
            await feed(.started(key, attemptId: attemptId))
        case .progress(let report):
            _ = machine.handle(.seen(key), at: now)
            guard let lease = lease(report.attemptId, of: connection) else { return }
            showProgress(report, lease: lease, now: now)
        case .uploadRequest(let request):
            _ = machine.handle(.seen(key), at: now)
            guard let lease = lease(request.attemptId, of: connection) else { return }
            requestUpload(request, lease: lease, connection: connection, now: now)
        case .complete(let completion):
            guard let lease = lease(completion.attemptId, of: connection) else { return }
            await complete(completion, lease: lease)
        case .fail(let failure):
            guard let attemptId = attempt(failure.attemptId, connection) else { return }
            let event: TaskStateMachine.Event =
                switch failure.fault {
                case .task: .attemptFailed(retriable: false)
                case .agent: .attemptFailed(retriable: true)
                case .platform: .released
                }
            await feed(.finished(key, attemptId: attemptId, event: event, error: failure.error, output: nil))
        case .cancelled(let cancelled):
            guard let attemptId = UUID(text: cancelled.attemptId), let lease = machine.leases[attemptId], lease.agent == key else { return }
            _ = await write {
                try await self.storage.recordAttemptStopped(
                    taskId: lease.taskId, attemptId: attemptId, stoppedAt: cancelled.stoppedAt, gpuSeconds: cancelled.gpuSeconds)
            }
            // `stopped_at` is part of what the task shows: whoever follows it is told.
            hub.signal(lease.taskId)
            await feed(.stopped(key, attemptId: attemptId))
        }
    }

    /// A heartbeat or status report. Only a change is written at once (and, back to idle, offered work); a
    /// heartbeat that changes nothing but the time is written at most every `heartbeatPersistInterval`, so many
    /// agents cost the database little.
    func changeStatus(_ key: AgentKey, to status: AgentStatus, detail: String?, percent: Double?, phase: SyncPhase?, now: Date) async {
        guard var session = sessions[key], let before = machine.agents[key] else { return }
        let was = (before.candidate.status, session.record.syncDetail, session.record.syncPercent, session.record.syncPhase)
        let actions = machine.handle(.statusReported(key, status), at: now)
        let after = machine.agents[key]?.candidate.status ?? before.candidate.status
        session.record.syncDetail = status == .syncing || status == .unhealthy ? detail : nil
        session.record.syncPercent = status == .syncing ? percent.map { min(max($0, 0), 1) } : nil
        session.record.syncPhase = status == .syncing ? phase?.rawValue : nil
        sessions[key] = session
        if was != (after, session.record.syncDetail, session.record.syncPercent, session.record.syncPhase) {
            if let record = currentRecord(key) { await persist(record) }
        } else if session.persistedAt.map({ now.timeIntervalSince($0) >= settings.heartbeatPersistInterval }) ?? true {
            await persistSoon(key)
        }
        await perform(actions)
    }
}

extension Dispatcher {
    /// The agents connected to this replica, by the status the dispatcher holds for them (`switchyard_agents`).
    func connectedAgentsByStatus() -> [AgentStatus: Int] {
        var counts: [AgentStatus: Int] = [:]
        for (key, session) in sessions { counts[machine.agents[key]?.status ?? session.record.status, default: 0] += 1 }
        return counts
    }
}

extension Dispatcher {
    /// An agent's reported system stats as the JSON its row keeps.
    static func json(_ stats: SystemStats) -> JSONValue {
        guard let data = try? JSONEncoder().encode(stats), let value = try? JSONValue.parse(Array(data)) else { return .object([:]) }
        return value
    }

    static func gpuType(_ stats: JSONValue) -> String? {
        guard case .array(let devices)? = stats["gpu_devices"], case .string(let name)? = devices.first?["name"] else { return nil }
        return name
    }
}
