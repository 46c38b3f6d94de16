import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardPostgres
@testable import SwitchyardSQLite

extension StorageContractTests {
    func definition(_ slug: String = "text-to-image", prompt: String = "a cat") -> WorkflowDefinition {
        WorkflowDefinition(
            slug: slug, displayName: "Text to image",
            graph: ["6": ["class_type": "CLIPTextEncode", "inputs": ["text": .string(prompt)]]],
            parameters: [ParameterDefinition(key: "prompt", kind: .string, isRequired: true, nodeId: "6", field: "text")],
            requiredLabels: ["gpu"], maxRetries: 2
        )
    }

    func taskRecord(team: UUID, workflow: UUID, at date: Date? = nil) -> TaskRecord {
        let date = date ?? now
        return TaskRecord(
            id: UUIDv7.make(at: date), teamId: team, workflowId: workflow, workflowVersion: 1, source: .apiKey, userId: nil,
            credentialId: UUID(), parameters: ["prompt": "a cat", "seed": .number(try! JSONValue.parse("18446744073709551615").numberValue!)],
            dispatchTarget: .agent, targetPool: .team, submitterRegion: "us-east", toolType: .comfyui, requiredLabels: ["gpu", "sd15"],
            taskTimeout: 300, maxRetries: 1, createdAt: date
        )
    }

    /// Inserts a task with its first event; returns what the storage did.
    @discardableResult
    func submit(_ storage: any SwitchyardStorage, _ task: TaskRecord, claim: IdempotencyClaim? = nil) async throws -> TaskInsertOutcome {
        try await storage.insertTask(
            task, definition: ["6": ["inputs": ["text": "a cat"]]],
            firstEvent: .statusChange(taskId: task.id, sequence: 1, to: .pending, at: task.createdAt), idempotency: claim)
    }

    @Test(
        "workflows: import creates version 1, re-import of the slug is version + 1 with the same id, every save is a snapshot",
        arguments: TestBackend.available)
    func workflowImport(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let (first, created) = try await storage.importWorkflow(id: UUID(), teamId: mine.id, definition: definition(), status: nil, at: now)
            #expect(created && first.version == 1 && first.status == .active)
            let later = now.addingTimeInterval(60)
            let (second, createdAgain) = try await storage.importWorkflow(
                id: UUID(), teamId: mine.id, definition: definition(prompt: "a dog"), status: .disabled, at: later)
            #expect(!createdAgain && second.id == first.id && second.version == 2 && second.status == .disabled)
            #expect(second.createdAt == now && second.updatedAt == later)

            let stored = try #require(try await storage.workflow(id: first.id, teamId: mine.id))
            #expect(stored == second)
            #expect(try await storage.workflow(slug: "text-to-image", teamId: mine.id) == second)
            #expect(
                try await storage.workflowHead(slug: "text-to-image", teamId: mine.id)
                    == WorkflowHead(id: first.id, slug: "text-to-image", version: 2, status: .disabled))
            let snapshots = try #require(try await storage.workflowSnapshots(workflowId: first.id, teamId: mine.id, page: PageRequest()))
            #expect(snapshots.totalCount == 2 && snapshots.items.map(\.version) == [2, 1])
            #expect(snapshots.items.last?.definition == definition())
            #expect(try await storage.workflowSnapshot(workflowId: first.id, teamId: mine.id, version: 1)?.definition.graph == definition().graph)
            #expect(try await storage.workflowSnapshot(workflowId: first.id, teamId: mine.id, version: 3) == nil)
        }
    }

    @Test("workflows: another team's look missing; the same slug in two teams is two workflows", arguments: TestBackend.available)
    func workflowIsolation(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let theirs = team("Theirs")
            try await storage.insertTeam(
                theirs,
                owner: Membership(
                    teamId: theirs.id, userId: (try await storage.user(emailAddress: "ada@example.com"))!.id, role: .owner, createdAt: now))
            let (ours, _) = try await storage.importWorkflow(id: UUID(), teamId: mine.id, definition: definition(), status: nil, at: now)
            let (other, created) = try await storage.importWorkflow(id: UUID(), teamId: theirs.id, definition: definition(), status: nil, at: now)
            #expect(created && other.id != ours.id)
            #expect(try await storage.workflow(id: ours.id, teamId: theirs.id) == nil)
            #expect(try await storage.workflowHead(id: ours.id, teamId: theirs.id) == nil)
            #expect(try await storage.workflowSnapshots(workflowId: ours.id, teamId: theirs.id, page: PageRequest()) == nil)
            #expect(try await storage.workflowSnapshot(workflowId: ours.id, teamId: theirs.id, version: 1) == nil)
            #expect(try await storage.updateWorkflow(id: ours.id, teamId: theirs.id, at: now, note: nil) { ($0.definition, .disabled) } == nil)
            #expect(try await storage.deleteWorkflow(id: ours.id, teamId: theirs.id) == false)
            #expect(try await storage.workflow(id: ours.id, teamId: mine.id) != nil)
        }
    }

    @Test(
        "workflows: update bumps the version inside one transaction; a taken slug conflicts; delete removes snapshots",
        arguments: TestBackend.available)
    func workflowUpdate(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let (a, _) = try await storage.importWorkflow(id: UUID(), teamId: mine.id, definition: definition("a-flow"), status: nil, at: now)
            _ = try await storage.importWorkflow(
                id: UUID(), teamId: mine.id, definition: definition("b-flow"), status: nil, at: now.addingTimeInterval(1))
            let renamed = try #require(
                try await storage.updateWorkflow(id: a.id, teamId: mine.id, at: now.addingTimeInterval(5), note: "restored from version 1") {
                    current in
                    var next = current.definition
                    next.slug = "c-flow"
                    return (next, .disabled)
                })
            #expect(renamed.version == 2 && renamed.definition.slug == "c-flow" && renamed.status == .disabled)
            #expect(try await storage.workflowHead(slug: "c-flow", teamId: mine.id)?.id == a.id)
            #expect(try await storage.workflowHead(slug: "a-flow", teamId: mine.id) == nil)
            #expect(try await storage.workflowSnapshot(workflowId: a.id, teamId: mine.id, version: 2)?.note == "restored from version 1")

            await #expect(throws: SwitchyardError.conflict("a workflow with this workflow_slug already exists")) {
                try await storage.updateWorkflow(id: a.id, teamId: mine.id, at: now, note: nil) { current in
                    var next = current.definition
                    next.slug = "b-flow"
                    return (next, current.status)
                }
            }
            #expect(try await storage.workflow(id: a.id, teamId: mine.id)?.version == 2, "a failed update leaves no trace")

            let page = try await storage.workflows(teamId: mine.id, page: PageRequest(currentPage: 1, perPage: 1))
            #expect(page.totalCount == 2 && page.items.map(\.definition.slug) == ["b-flow"])
            #expect(try await storage.deleteWorkflow(id: a.id, teamId: mine.id))
            #expect(try await storage.workflow(id: a.id, teamId: mine.id) == nil)
            #expect(try await storage.workflowSnapshot(workflowId: a.id, teamId: mine.id, version: 1) == nil)
            #expect(try await storage.deleteWorkflow(id: a.id, teamId: mine.id) == false)
        }
    }

    @Test("workflows: concurrent saves of one slug never lose or repeat a version", arguments: TestBackend.available)
    func concurrentImports(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let now = self.now
            let definition = self.definition()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<12 {
                    group.addTask { _ = try await storage.importWorkflow(id: UUID(), teamId: mine.id, definition: definition, status: nil, at: now) }
                }
                try await group.waitForAll()
            }
            let head = try #require(try await storage.workflowHead(slug: definition.slug, teamId: mine.id))
            #expect(head.version == 12)
            let snapshots = try #require(try await storage.workflowSnapshots(workflowId: head.id, teamId: mine.id, page: PageRequest(perPage: 100)))
            #expect(snapshots.items.map(\.version) == Array((1...12).reversed()))
            #expect(try await storage.workflows(teamId: mine.id, page: PageRequest()).totalCount == 1)
        }
    }

    @Test("tasks: a submission is stored whole with its definition and first event; reads are team-scoped", arguments: TestBackend.available)
    func taskInsert(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let task = taskRecord(team: mine.id, workflow: UUID())
            #expect(try await submit(storage, task) == .created)
            #expect(try await storage.task(id: task.id, teamId: mine.id) == task)
            #expect(try await storage.task(id: task.id, teamId: UUID()) == nil)
            #expect(try await storage.taskDefinition(id: task.id, teamId: mine.id) == ["6": ["inputs": ["text": "a cat"]]])
            #expect(try await storage.taskDefinition(id: task.id, teamId: UUID()) == nil)
            let events = try #require(try await storage.taskEvents(taskId: task.id, teamId: mine.id, afterSequence: 0))
            #expect(events == [.statusChange(taskId: task.id, sequence: 1, to: .pending, at: now)])
            #expect(try await storage.taskEvents(taskId: task.id, teamId: UUID(), afterSequence: 0) == nil)
            // The 64-bit seed comes back exactly.
            #expect(try await storage.task(id: task.id, teamId: mine.id)?.parameters["seed"]?.numberValue?.text == "18446744073709551615")
        }
    }

    @Test("tasks: list newest first, filtered by status, workflow and agent, paginated", arguments: TestBackend.available)
    func taskList(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            var ids: [UUID] = []
            var workflows: [UUID] = []
            for offset in 0..<5 {
                var task = taskRecord(team: mine.id, workflow: offset == 4 ? workflows[0] : UUID(), at: now.addingTimeInterval(TimeInterval(offset)))
                if offset >= 3 { task.agentId = "gpu-\(offset)" }
                try await submit(storage, task)
                ids.append(task.id)
                workflows.append(task.workflowId)
            }
            let ofWorkflow = try await storage.tasks(teamId: mine.id, filter: TaskFilter(workflowId: workflows[0]), page: PageRequest())
            #expect(ofWorkflow.totalCount == 2 && ofWorkflow.items.map(\.id) == [ids[4], ids[0]])
            let onAgent = try await storage.tasks(teamId: mine.id, filter: TaskFilter(agentId: "gpu-3"), page: PageRequest())
            #expect(onAgent.totalCount == 1 && onAgent.items.first?.id == ids[3])
            let both = TaskFilter(status: .pending, workflowId: workflows[0], agentId: "gpu-4")
            #expect(try await storage.tasks(teamId: mine.id, filter: both, page: PageRequest()).items.map(\.id) == [ids[4]])
            #expect(try await storage.tasks(teamId: UUID(), filter: TaskFilter(workflowId: workflows[0]), page: PageRequest()).totalCount == 0)
            _ = try await storage.applyTaskEvent(id: ids[1], teamId: mine.id, event: .cancel, at: now.addingTimeInterval(10))
            let all = try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest(currentPage: 2, perPage: 2))
            #expect(all.totalCount == 5 && all.items.map(\.id) == [ids[2], ids[1]])
            let cancelled = try await storage.tasks(teamId: mine.id, status: .cancelled, page: PageRequest())
            #expect(cancelled.totalCount == 1 && cancelled.items.first?.id == ids[1])
            #expect(try await storage.tasks(teamId: mine.id, status: .pending, page: PageRequest()).totalCount == 4)
            #expect(try await storage.tasks(teamId: UUID(), status: nil, page: PageRequest()).totalCount == 0)
        }
    }

    @Test("tasks: lifecycle events follow the state machine; terminal states are written once", arguments: TestBackend.available)
    func taskLifecycle(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let task = taskRecord(team: mine.id, workflow: UUID())
            try await submit(storage, task)
            let at = { (seconds: Double) in self.now.addingTimeInterval(seconds) }

            await #expect(throws: TaskStateMachine.Refusal.illegal(from: .pending, event: .acknowledged)) {
                try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .acknowledged, at: at(1))
            }
            #expect(try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .scheduled, at: at(1))?.task.status == .waiting)
            #expect(try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .assigned, at: at(2))?.task.status == .queued)
            let running = try #require(try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .acknowledged, at: at(3)))
            #expect(running.task.status == .running && running.task.startedAt == at(3))
            // max_retries 1: the first failed attempt goes back to waiting.
            let retried = try #require(
                try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .attemptFailed(retriable: true), at: at(4)))
            #expect(retried.action == .transition(to: .waiting, retryCount: 1) && retried.task.retryCount == 1)
            _ = try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .assigned, at: at(5))
            _ = try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .acknowledged, at: at(6))
            let done = try #require(try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .succeeded, at: at(7)))
            #expect(done.task.status == .completed && done.task.completedAt == at(7) && done.task.startedAt == at(3))

            await #expect(throws: TaskStateMachine.Refusal.alreadyTerminal(.completed)) {
                try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .attemptFailed(retriable: false), at: at(8))
            }
            let cancel = try #require(try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .cancel, at: at(9)))
            #expect(cancel.action == .none && cancel.task.status == .completed && cancel.task.completedAt == at(7))
            #expect(try await storage.task(id: task.id, teamId: mine.id)?.status == .completed)
            #expect(try await storage.applyTaskEvent(id: task.id, teamId: UUID(), event: .cancel, at: at(9)) == nil)

            let events = try #require(try await storage.taskEvents(taskId: task.id, teamId: mine.id, afterSequence: 0))
            #expect(events.map(\.sequence) == Array(1...8))
            #expect(
                events.map { $0.data["status"]?.stringValue ?? "" } == [
                    "pending", "waiting", "queued", "running", "waiting", "queued", "running", "completed",
                ])
            #expect(events.last?.kind == .completed)
            #expect(try await storage.taskEvents(taskId: task.id, teamId: mine.id, afterSequence: 6)?.map(\.sequence) == [7, 8])
        }
    }

    @Test("tasks: concurrent cancels write one terminal event", arguments: TestBackend.available)
    func concurrentCancel(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let task = taskRecord(team: mine.id, workflow: UUID())
            try await submit(storage, task)
            let now = self.now
            let actions = try await withThrowingTaskGroup(of: TaskStateMachine.Action?.self) { group in
                for _ in 0..<8 { group.addTask { try await storage.applyTaskEvent(id: task.id, teamId: mine.id, event: .cancel, at: now)?.action } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(actions.filter { $0 == .transition(to: .cancelled, retryCount: 0) }.count == 1)
            #expect(actions.filter { $0 == TaskStateMachine.Action.none }.count == 7)
            #expect(try await storage.taskEvents(taskId: task.id, teamId: mine.id, afterSequence: 0)?.count == 2)
        }
    }

    @Test(
        "idempotency: same key and fingerprint replay, another fingerprint conflicts, keys are per team and expire after 24 h",
        arguments: TestBackend.available)
    func idempotency(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let claim = IdempotencyClaim(key: "order-42", fingerprint: "aaaa")
            let first = taskRecord(team: mine.id, workflow: UUID())
            #expect(try await submit(storage, first, claim: claim) == .created)
            let again = taskRecord(team: mine.id, workflow: UUID(), at: now.addingTimeInterval(3600))
            #expect(try await submit(storage, again, claim: claim) == .replayed(taskId: first.id))
            #expect(try await storage.task(id: again.id, teamId: mine.id) == nil, "a replay stores nothing")
            await #expect(
                throws: SwitchyardError.conflict(
                    "Idempotency-Key was already used within the last 24 hours for a different request; use a new key for a new request")
            ) {
                try await submit(storage, taskRecord(team: mine.id, workflow: UUID()), claim: IdempotencyClaim(key: "order-42", fingerprint: "bbbb"))
            }
            let theirs = team("Theirs")
            try await storage.insertTeam(
                theirs,
                owner: Membership(
                    teamId: theirs.id, userId: (try await storage.user(emailAddress: "ada@example.com"))!.id, role: .owner, createdAt: now))
            #expect(try await submit(storage, taskRecord(team: theirs.id, workflow: UUID()), claim: claim) == .created)
            let dayLater = taskRecord(team: mine.id, workflow: UUID(), at: now.addingTimeInterval(IdempotencyClaim.window + 1))
            #expect(try await submit(storage, dayLater, claim: IdempotencyClaim(key: "order-42", fingerprint: "cccc")) == .created)
            #expect(
                try await submit(
                    storage, taskRecord(team: mine.id, workflow: UUID(), at: dayLater.createdAt),
                    claim: IdempotencyClaim(key: "order-42", fingerprint: "cccc")) == .replayed(taskId: dayLater.id))
        }
    }

    @Test("idempotency: concurrent submissions with one key create one task", arguments: TestBackend.available)
    func concurrentIdempotency(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let claim = IdempotencyClaim(key: "burst", fingerprint: "ffff")
            let tasks = (0..<16).map { _ in taskRecord(team: mine.id, workflow: UUID()) }
            let outcomes = try await withThrowingTaskGroup(of: TaskInsertOutcome.self) { group in
                for task in tasks { group.addTask { try await submit(storage, task, claim: claim) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = outcomes.filter { $0 == .created }.count
            #expect(created == 1)
            let replayedIds = Set(
                outcomes.compactMap { outcome -> UUID? in
                    if case .replayed(let id) = outcome { return id }
                    return nil
                })
            #expect(replayedIds.count == 1)
            #expect(try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest()).totalCount == 1)
            #expect(try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest()).items.first?.id == replayedIds.first)
        }
    }

    @Test("tasks: hundreds of concurrent submissions are all durable, each with its first event", arguments: TestBackend.available)
    func concurrentSubmissions(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let tasks = (0..<300).map { _ in taskRecord(team: mine.id, workflow: UUID()) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in tasks {
                    group.addTask {
                        let outcome = try await submit(storage, task)
                        #expect(outcome == .created)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest()).totalCount == 300)
            for task in tasks.shuffled().prefix(20) {
                #expect(try await storage.taskEvents(taskId: task.id, teamId: mine.id, afterSequence: 0)?.count == 1)
            }
        }
    }

    /// Writes `tasks` as one group-commit batch, with the backend's own flush: called directly, the batch is certain
    /// rather than left to the timing of concurrent submissions.
    func flushOneBatch(_ storage: any SwitchyardStorage, _ tasks: [TaskRecord], claims: [IdempotencyClaim?]? = nil) async -> [Result<
        TaskInsertOutcome, any Error
    >] {
        let definition: JSONValue = ["6": ["inputs": ["text": "a cat"]]]
        let claims = claims ?? tasks.map { _ in nil }
        let events = { (task: TaskRecord) in [TaskEventRecord.statusChange(taskId: task.id, sequence: 1, to: .pending, at: task.createdAt)] }
        if let sqlite = storage as? SQLiteStorage {
            let items = zip(tasks, claims).map { PendingTaskInsert(task: $0, definition: definition, events: events($0), idempotency: $1) }
            return await SQLiteStorage.flushTaskInserts(items, writer: sqlite.writer, lock: sqlite.writeLock)
        }
        let postgres = storage as! PostgresStorage
        let items = tasks.map { PendingPostgresInsert(task: $0, definition: definition, events: events($0)) }
        return await PostgresStorage.flushTaskInserts(items, client: postgres.client, logger: postgres.logger)
    }

    @Test("a submission for a team that does not exist fails alone, not its batch", arguments: TestBackend.available)
    func batchIsolation(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let good = (0..<20).map { _ in taskRecord(team: mine.id, workflow: UUID()) }
            let bad = taskRecord(team: UUID(), workflow: UUID())
            let batch = Array(good[..<10]) + [bad] + Array(good[10...])
            let results = await flushOneBatch(storage, batch)
            #expect(results.count == 21)
            for (task, result) in zip(batch, results) {
                if task.id == bad.id {
                    #expect(throws: (any Error).self) { try result.get() }
                } else {
                    #expect((try? result.get()) == .created)
                }
            }
            #expect(try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest()).totalCount == 20)
            #expect(try await storage.taskEvents(taskId: good[15].id, teamId: mine.id, afterSequence: 0)?.count == 1)
        }
    }

    @Test("SQLite: a batch with idempotency keys writes each submission in its own savepoint; a key taken earlier in the batch replays")
    func savepointBatch() async throws {
        try await withStorage(.sqlite) { storage async throws in
            let mine = try await seedTeam(storage)
            let claim = IdempotencyClaim(key: "k", fingerprint: "f")
            let tasks = (0..<3).map { _ in taskRecord(team: mine.id, workflow: UUID()) } + [taskRecord(team: UUID(), workflow: UUID())]
            let results = await flushOneBatch(storage, tasks, claims: [claim, nil, claim, nil])
            #expect((try? results[0].get()) == .created)
            #expect((try? results[1].get()) == .created)
            #expect((try? results[2].get()) == .replayed(taskId: tasks[0].id))
            #expect(throws: (any Error).self) { try results[3].get() }
            #expect(
                try await storage.tasks(teamId: mine.id, status: nil, page: PageRequest()).items.map(\.id).sorted()
                    == [tasks[0].id, tasks[1].id].sorted())
        }
    }
}
