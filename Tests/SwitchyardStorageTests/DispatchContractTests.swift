import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

extension StorageContractTests {
    func assignment(_ agent: String) -> AttemptAssignment {
        AttemptAssignment(attemptId: UUIDv7.make(at: now), agentId: agent, agentLabels: ["gpu", "sd15"], gatewayId: "gw-test", gpuType: "GPU")
    }

    @Test(
        "replica leases: heartbeats say who is alive; an attempt moves off a dead replica once, to one replica; a dead replica's agents disconnect",
        arguments: TestBackend.available)
    func replicaLeases(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            try await storage.heartbeatReplica(gatewayId: "gw-old", at: now.addingTimeInterval(-30))
            try await storage.heartbeatReplica(gatewayId: "gw-a", at: now.addingTimeInterval(-30))
            try await storage.heartbeatReplica(gatewayId: "gw-a", at: now)
            #expect(try await storage.liveReplicas(since: now.addingTimeInterval(-10)) == ["gw-a"])

            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            let task = taskRecord(team: team.id, workflow: workflow.id)
            try await submit(storage, task)
            var attempt = assignment("a")
            attempt.gatewayId = "gw-old"
            _ = try #require(try await storage.assignTask(id: task.id, to: attempt, at: now))
            let (id, attemptId) = (task.id, attempt.attemptId)
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for replica in ["gw-a", "gw-b", "gw-c"] {
                    group.addTask { try await storage.takeOverAttempt(taskId: id, attemptId: attemptId, from: "gw-old", to: replica) }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(winners == 1)
            #expect(try await storage.takeOverAttempt(taskId: id, attemptId: UUID(), from: "gw-old", to: "gw-a") == false)

            for (agentId, gateway) in [("on-old", "gw-old"), ("on-a", "gw-a")] {
                try await storage.upsertAgent(
                    AgentRecord(
                        teamId: team.id, agentId: agentId, credentialId: UUID(), status: .idle, labels: [], region: nil, communityOptIn: false,
                        capacity: 1, agentVersion: "t", tool: "comfyui", toolVersion: nil, systemStats: [:], gatewayId: gateway, connectedAt: now,
                        lastHeartbeatAt: now))
            }
            #expect(try await storage.disconnectAgents(notOn: ["gw-a"], at: now) == 1)
            let connected = try await storage.agents(teamId: team.id, includeDisconnected: false, page: PageRequest())
            #expect(connected.items.map(\.agentId) == ["on-a"])
        }
    }

    @Test("dispatch: two dispatchers racing for one task — exactly one assignment wins", arguments: TestBackend.available)
    func assignmentRace(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            for _ in 0..<10 {
                let task = taskRecord(team: team.id, workflow: workflow.id)
                try await submit(storage, task)
                let at = now
                let winners = try await withThrowingTaskGroup(of: TaskTransitionOutcome?.self) { group in
                    for agent in ["left", "right", "third"] {
                        let attempt = assignment(agent)
                        group.addTask { try await storage.assignTask(id: task.id, to: attempt, at: at) }
                    }
                    return try await group.reduce(into: [TaskTransitionOutcome]()) { if let outcome = $1 { $0.append(outcome) } }
                }
                #expect(winners.count == 1)
                let stored = try #require(try await storage.task(id: task.id, teamId: team.id))
                #expect(
                    stored.status == .queued && stored.agentId == winners.first?.task.agentId && stored.attemptId == winners.first?.task.attemptId)
                let events = try #require(try await storage.taskEvents(taskId: task.id, teamId: team.id, afterSequence: 0))
                #expect(events.map(\.sequence) == [1, 2])
            }
        }
    }

    @Test(
        "dispatch: attempt events need the current attempt; progress only while running; terminal states are final", arguments: TestBackend.available)
    func attemptEvents(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            let task = taskRecord(team: team.id, workflow: workflow.id)
            try await submit(storage, task)
            #expect(try await storage.dispatchableTasks(limit: 10).map(\.id) == [task.id])
            let waiting = try #require(try await storage.markTaskWaiting(id: task.id, message: "no agent", at: now))
            #expect(waiting.task.status == .waiting)
            #expect(try await storage.markTaskWaiting(id: task.id, message: "again", at: now) == nil)

            let first = assignment("a")
            _ = try #require(try await storage.assignTask(id: task.id, to: first, at: now))
            #expect(try await storage.dispatchableTasks(limit: 10).isEmpty)
            #expect(try await storage.activeTasks().map(\.id) == [task.id])
            #expect(try await storage.appendProgress(taskId: task.id, attemptId: first.attemptId, data: ["progress": 0.1], at: now) == nil)
            // A note while queued (the agent fetches a model first): a status event with the message, status unchanged.
            #expect(try await storage.appendAttemptNote(taskId: task.id, attemptId: UUID(), message: "x", at: now) == nil)
            #expect(try await storage.appendAttemptNote(taskId: task.id, attemptId: first.attemptId, message: "syncing model a", at: now) == 4)
            let note = try #require(try await storage.taskEvents(taskId: task.id, teamId: task.teamId, afterSequence: 3)?.first)
            #expect(note.kind == .status && note.data["status"] == "queued" && note.data["message"] == "syncing model a")
            let stranger = UUID()
            #expect(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: stranger, event: .acknowledged, result: AttemptResult(), message: nil, at: now) == nil)
            let running = try #require(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: first.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now))
            #expect(running.task.status == .running && running.task.startedAt == now)
            #expect(try await storage.appendProgress(taskId: task.id, attemptId: first.attemptId, data: ["progress": 0.5], at: now) == 6)

            // Failed on the agent's side: back to waiting with one retry used, the error kept for pollers.
            let retried = try #require(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: first.attemptId, event: .attemptFailed(retriable: true), result: AttemptResult(error: "agent lost"),
                    message: "agent lost", at: now))
            #expect(retried.task.status == .waiting && retried.task.retryCount == 1 && retried.task.error == "agent lost")
            let second = assignment("b")
            _ = try #require(try await storage.assignTask(id: task.id, to: second, at: now))
            // The old attempt can no longer move the task.
            #expect(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: first.attemptId, event: .succeeded, result: AttemptResult(), message: nil, at: now) == nil)
            _ = try await storage.applyAttemptEvent(
                taskId: task.id, attemptId: second.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now)
            let done = try #require(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: second.attemptId, event: .succeeded, result: AttemptResult(output: ["storage_key": "outputs/x"]),
                    message: nil, at: now))
            #expect(done.task.status == .completed && done.task.error == "" && done.task.output?["storage_key"] == "outputs/x")
            #expect(
                try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: second.attemptId, event: .attemptFailed(retriable: true), result: AttemptResult(error: "late"),
                    message: nil, at: now) == nil)
            #expect(try await storage.recordAttemptStopped(taskId: task.id, attemptId: second.attemptId, stoppedAt: now, gpuSeconds: 2.5))
            #expect(try await !storage.recordAttemptStopped(taskId: task.id, attemptId: first.attemptId, stoppedAt: now, gpuSeconds: nil))
            let stored = try #require(try await storage.task(id: task.id, teamId: team.id))
            #expect(stored.gpuSeconds == 2.5 && stored.stoppedAt == now && stored.agentId == "b")
            let kinds = try #require(try await storage.taskEvents(taskId: task.id, teamId: team.id, afterSequence: 0)).map(\.kind)
            #expect(kinds == [.status, .status, .status, .status, .status, .progress, .status, .status, .status, .completed])
        }
    }

    @Test("dispatch at submission: a task stored already queued, with both events, runs under its attempt", arguments: TestBackend.available)
    func assignedAtInsert(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            for claim in [nil, IdempotencyClaim(key: "k-1", fingerprint: "f")] {
                var task = taskRecord(team: team.id, workflow: workflow.id)
                let attempt = assignment("early")
                #expect(task.assign(attempt, at: now) != nil)
                let events = [
                    TaskEventRecord.statusChange(taskId: task.id, sequence: 1, to: .pending, at: now), task.statusEvent(sequence: 2, at: now),
                ]
                #expect(try await storage.insertTask(task, definition: ["1": [:]], events: events, idempotency: claim) == .created)
                let stored = try #require(try await storage.task(id: task.id, teamId: team.id))
                #expect(
                    stored.status == .queued && stored.attemptId == attempt.attemptId && stored.agentId == "early" && stored.gatewayId == "gw-test")
                #expect(
                    try await storage.taskEvents(taskId: task.id, teamId: team.id, afterSequence: 0)?.map(\.data["status"]) == ["pending", "queued"])
                let running = try await storage.applyAttemptEvent(
                    taskId: task.id, attemptId: attempt.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now)
                #expect(running?.task.status == .running)
            }
        }
    }

    @Test("agents: upsert replaces the team's row; listings are per team, connected first", arguments: TestBackend.available)
    func agentRows(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "other-agents@example.com")
            var agent = AgentRecord(
                teamId: team.id, agentId: "gpu-01", credentialId: UUID(), status: .idle, labels: ["comfyui", "gpu"], region: "eu",
                communityOptIn: false,
                capacity: 2, agentVersion: "1.0", tool: "comfyui", toolVersion: "0.3.64", systemStats: ["gpu_devices": []], gatewayId: "gw-1",
                connectedAt: now, lastHeartbeatAt: now)
            try await storage.upsertAgent(agent)
            agent.status = .syncing
            agent.syncPercent = 0.5
            agent.tasksCompleted = 3
            try await storage.upsertAgent(agent)
            var gone = agent
            gone.agentId = "gpu-00"
            gone.disconnectedAt = now
            try await storage.upsertAgent(gone)
            let connected = try await storage.agents(teamId: team.id, includeDisconnected: false, page: PageRequest())
            #expect(connected.items == [agent] && connected.totalCount == 1)
            let all = try await storage.agents(teamId: team.id, includeDisconnected: true, page: PageRequest())
            #expect(all.items.map(\.agentId) == ["gpu-01", "gpu-00"])
            #expect(try await storage.agents(teamId: other.id, includeDisconnected: true, page: PageRequest()).items.isEmpty)

            // Many rows in one call (agents connecting together): each is written, an existing one replaced.
            var batch = (0..<50).map { index in
                var row = agent
                row.agentId = String(format: "sim-%02d", index)
                return row
            }
            var back = agent
            back.status = .busy
            batch.append(back)
            try await storage.upsertAgents(batch)
            let listed = try await storage.agents(teamId: team.id, includeDisconnected: false, page: PageRequest(perPage: 100))
            #expect(listed.totalCount == 51 && listed.items.first { $0.agentId == "gpu-01" }?.status == .busy)
            try await storage.upsertAgents([])
        }
    }
}

extension StorageContractTests {
    @Test(
        "waiting: start deadlines expire once and never a started task; backlog and queue standing count the team's tasks ahead",
        arguments: TestBackend.available)
    func waitingTasks(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let team = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "bob@example.com")
            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            var tasks: [TaskRecord] = []
            for index in 0..<4 {
                var task = taskRecord(team: team.id, workflow: workflow.id, at: now.addingTimeInterval(Double(index)))
                if index < 3 { task.startDeadline = now.addingTimeInterval(60) }
                if index == 3 { task.requiredLabels = ["cpu"] }
                try await submit(storage, task)
                tasks.append(task)
            }
            #expect(try await storage.backlog(teamId: team.id) == 4)
            #expect(try await storage.backlog(teamId: other.id) == 0)
            #expect(try await storage.queueStanding(of: tasks[0]).ahead == 0)
            #expect(try await storage.queueStanding(of: tasks[2]).ahead == 2)
            // Other labels compete for other agents: not ahead.
            #expect(try await storage.queueStanding(of: tasks[3]).ahead == 0)

            // Task 1 starts (and goes back to waiting after a platform fault): past its start, it never expires.
            let attempt = assignment("a")
            _ = try #require(try await storage.assignTask(id: tasks[1].id, to: attempt, at: now))
            _ = try #require(
                try await storage.applyAttemptEvent(
                    taskId: tasks[1].id, attemptId: attempt.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now))
            _ = try #require(
                try await storage.applyAttemptEvent(
                    taskId: tasks[1].id, attemptId: attempt.attemptId, event: .released, result: AttemptResult(), message: nil, at: now))

            #expect(try await storage.tasksPastStartDeadline(at: now.addingTimeInterval(59), limit: 10).isEmpty)
            let due = try await storage.tasksPastStartDeadline(at: now.addingTimeInterval(60), limit: 10)
            #expect(Set(due) == [tasks[0].id, tasks[1].id, tasks[2].id])
            var expired: [UUID] = []
            for id in due {
                let early = try await storage.changeTask(id: id, .expire(message: "expired: test"), at: now.addingTimeInterval(30))
                #expect(early == nil)
                if let outcome = try await storage.changeTask(id: id, .expire(message: "expired: test"), at: now.addingTimeInterval(60)) {
                    #expect(outcome.task.status == .failed && outcome.task.error == "expired: test")
                    expired.append(id)
                }
                // A second replica's try finds it ended.
                #expect(try await storage.changeTask(id: id, .expire(message: "expired: test"), at: now.addingTimeInterval(61)) == nil)
            }
            #expect(Set(expired) == [tasks[0].id, tasks[2].id])
            let stored = try #require(try await storage.task(id: tasks[0].id, teamId: team.id))
            #expect(stored.startDeadline == now.addingTimeInterval(60) && stored.status == .failed)
            #expect(try await storage.taskEvents(taskId: tasks[0].id, teamId: team.id, afterSequence: 0)?.last?.kind == .failed)
            #expect(try await storage.backlog(teamId: team.id) == 2)
        }
    }
}

extension StorageContractTests {
    @Test("task census: every team's unfinished tasks by status and the oldest still waiting; pool usage", arguments: TestBackend.available)
    func taskCensus(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            #expect(try await storage.taskCensus() == TaskCensus(counts: [:], oldestWaitingSince: nil))
            let team = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "bob@example.com")
            let (workflow, _) = try await storage.importWorkflow(id: UUID(), teamId: team.id, definition: definition(), status: nil, at: now)
            let (otherWorkflow, _) = try await storage.importWorkflow(id: UUID(), teamId: other.id, definition: definition(), status: nil, at: now)
            var tasks: [TaskRecord] = []
            for index in 0..<4 {
                let task = taskRecord(team: team.id, workflow: workflow.id, at: now.addingTimeInterval(Double(index)))
                try await submit(storage, task)
                tasks.append(task)
            }
            try await submit(storage, taskRecord(team: other.id, workflow: otherWorkflow.id, at: now.addingTimeInterval(5)))
            let queued = assignment("a")
            _ = try #require(try await storage.assignTask(id: tasks[0].id, to: queued, at: now))
            let running = assignment("b")
            _ = try #require(try await storage.assignTask(id: tasks[1].id, to: running, at: now))
            _ = try #require(
                try await storage.applyAttemptEvent(
                    taskId: tasks[1].id, attemptId: running.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now))
            _ = try #require(try await storage.changeTask(id: tasks[2].id, .markWaiting(message: "no agent"), at: now))

            let census = try await storage.taskCensus()
            #expect(census.counts == [.pending: 2, .waiting: 1, .queued: 1, .running: 1])
            #expect(census.oldestWaitingSince == now.addingTimeInterval(2))
            let pool = storage.poolUsage
            #expect(pool.maximumConnections >= 1 && pool.operationsInFlight == 0)
        }
    }
}
