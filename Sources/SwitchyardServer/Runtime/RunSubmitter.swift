import Crypto
import Foundation
import Logging
import SwitchyardCore

/// Turns a run request into a durable `pending` task (DESIGN §3 step 1): resolve the workflow (by id or
/// `slug[@version]`), refuse disabled ones, validate and inject the parameters against the snapshot, then store
/// the task and its first event in one transaction — honouring an `Idempotency-Key`.
struct RunSubmitter: Sendable {
    enum Target: Sendable {
        case id(UUID)
        case reference(WorkflowReference)
    }

    struct Submitted: Sendable, Equatable {
        let taskId: UUID
        /// True when an earlier submission with the same idempotency key created the task.
        let replayed: Bool
    }

    let storage: any SwitchyardStorage
    let snapshots: SnapshotCache
    let heads: WorkflowHeadCache
    let objects: ObjectStorage
    let clock: any WallClock
    /// Counts the new task's first transition.
    let metrics: ServerMetrics
    /// Told about every task this submitter created (the dispatcher), after it is durable.
    var onCreated: @Sendable (TaskRecord, JSONValue, WorkflowDefinition) -> Void = { _, _, _ in }
    /// The dispatcher, for dispatch at submission (nil: every task goes through `onCreated`).
    var dispatcher: Dispatcher?
    /// `dispatch.maxBacklogPerTeam`: a team with this many tasks waiting gets 429 on submit (0: no limit).
    var maxBacklogPerTeam = 0
    /// Where the new task's first transition is logged.
    var logger = Logger(label: "switchyard")

    func submit(_ target: Target, body: JSONValue, caller: Caller, idempotencyKey: String?) async throws -> Submitted {
        let teamId = try caller.requireTeam()
        let claim = try idempotencyKey.map { key in
            IdempotencyClaim(key: try Self.validateIdempotencyKey(key), fingerprint: Self.fingerprint(target, body: body))
        }
        let (head, version) = try await resolve(target, teamId: teamId)
        guard head.status == .active else {
            throw SwitchyardError.conflict(
                "workflow \"\(head.slug)\" is disabled and refuses new runs; an owner or admin can set workflow_status to active")
        }
        guard
            let definition = try await snapshots.definition(
                workflowId: head.id, version: version,
                load: { try await storage.workflowSnapshot(workflowId: head.id, teamId: teamId, version: version)?.definition })
        else {
            throw SwitchyardError.notFound("workflow \"\(head.slug)\" has no version \(version) (the latest is \(head.version))")
        }
        let run = try RunRequest.validate(body: body, definition: definition, fileKeyRule: { InputFileKey.violation($0, teamId: teamId) })
        if run.dispatchTarget == .comfyCloud { try await checkCloud(teamId: teamId, definition: definition) }
        // The parameters' values must keep the pipeline inside what the agent passes to Nerfstudio.
        if definition.toolType == .nerfstudio { _ = try NerfstudioPipeline(run.injectedDefinition) }
        try await checkFiles(run, definition: definition, cloud: run.dispatchTarget == .comfyCloud)

        let now = clock.now()
        var task = TaskRecord(
            id: UUIDv7.make(at: now), teamId: teamId, workflowId: head.id, workflowVersion: version,
            source: caller.kind == .session ? .jwt : .apiKey, userId: caller.userId, credentialId: caller.credentialId, parameters: run.parameters,
            dispatchTarget: run.dispatchTarget, targetPool: run.targetPool, submitterRegion: run.submitterRegion, toolType: definition.toolType,
            requiredLabels: definition.requiredLabels, taskTimeout: definition.taskTimeout, maxRetries: definition.maxRetries, createdAt: now,
            startDeadline: run.startDeadline.map { now.addingTimeInterval(TimeInterval($0)) }
        )
        try await checkBacklog(task)
        var events: [TaskEventRecord] = [.statusChange(taskId: task.id, sequence: 1, to: .pending, at: now)]
        // The scheduler's first decision goes into the same commit: an idle eligible agent takes the task, or it
        // waits, saying why (no hop to the dispatcher when no agent is connected at all).
        var reservation: AttemptAssignment?
        // With no agent connected the dispatcher is not told: it reads waiting tasks back when one connects.
        let noAgents = dispatcher?.hasAgents == false
        var waitReason: String?
        if let dispatcher {
            let admission: Dispatcher.Admission =
                noAgents ? .wait(Dispatcher.noAgentsReason) : await dispatcher.admit(task, workflow: definition)
            switch admission {
            case .assign(let assignment):
                if task.assign(assignment, at: now) != nil {
                    reservation = assignment
                    events.append(task.statusEvent(sequence: 2, at: now))
                }
            case .wait(let reason):
                waitReason = reason
                if (try? task.take(.scheduled, at: now)) != nil { events.append(task.statusEvent(sequence: 2, message: reason, at: now)) }
            }
        }
        let outcome: TaskInsertOutcome
        do {
            outcome = try await storage.insertTask(task, definition: run.injectedDefinition, events: events, idempotency: claim)
        } catch {
            if let reservation { await dispatcher?.releaseReservation(reservation) }
            throw error
        }
        switch outcome {
        case .created:
            TaskTransitionLog.record(logger, metrics, task, reason: task.status == .waiting ? waitReason : nil)
            // Another replica's agents may take what this one's cannot (nothing to tell with one process).
            if reservation == nil, !task.status.isTerminal {
                // A comfy_cloud task is read by the replica that claims it (what it carries describes agent tasks).
                storage.notifier.publish(
                    .submitted(taskId: task.id, teamId: teamId, dispatch: task.dispatchTarget == .agent ? .init(task) : nil))
            }
            if reservation != nil, let dispatcher {
                dispatcher.post(.reserved(task, definition: run.injectedDefinition, workflow: definition))
            } else if !noAgents {
                onCreated(task, run.injectedDefinition, definition)
            }
            return Submitted(taskId: task.id, replayed: false)
        case .replayed(let taskId):
            if let reservation { await dispatcher?.releaseReservation(reservation) }
            return Submitted(taskId: taskId, replayed: true)
        }
    }

    /// Back-pressure: a team whose backlog reached `maxBacklogPerTeam` is told to come back later (429 with
    /// `Retry-After`) instead of growing a queue it cannot drain. The count is read before the insert, so concurrent
    /// submissions may pass the limit by their number.
    private func checkBacklog(_ task: TaskRecord) async throws {
        guard maxBacklogPerTeam > 0, task.dispatchTarget == .agent else { return }
        let backlog = try await storage.backlog(teamId: task.teamId)
        guard backlog >= maxBacklogPerTeam else { return }
        let retryAfter = await QueueEstimates(storage: storage).retryAfter(for: task)
        throw SwitchyardError.tooManyRequests(
            "the team has \(backlog) tasks waiting, its limit (dispatch.maxBacklogPerTeam = \(maxBacklogPerTeam)); "
                + "submit again after \(retryAfter) s, when agents have taken some", retryAfter: retryAfter)
    }

    /// `comfy_cloud` needs the team's active Comfy Cloud key and a ComfyUI workflow.
    private func checkCloud(teamId: UUID, definition: WorkflowDefinition) async throws {
        guard definition.toolType == .comfyui else {
            throw SwitchyardError.invalid(
                "field \"dispatch_target\": comfy_cloud runs ComfyUI workflows, and this workflow's tool_type is \(definition.toolType.rawValue); use agent"
            )
        }
        guard let credential = try await storage.cloudCredential(teamId: teamId, provider: .comfyCloud) else {
            throw SwitchyardError.invalid(
                "field \"dispatch_target\": comfy_cloud needs the team's Comfy Cloud API key (PUT /cloud-providers/comfy-cloud), and none is set; use agent"
            )
        }
        guard credential.status == .active else {
            throw SwitchyardError.invalid(
                "field \"dispatch_target\": the team's Comfy Cloud key is revoked (\(credential.statusMessage ?? "refused by the service")); set a new one with PUT /cloud-providers/comfy-cloud"
            )
        }
    }

    /// Every `file` value must name an uploaded object whose type the parameter accepts (HEAD on the store, in
    /// parallel); all failures are reported together, like the other parameter rules.
    private func checkFiles(_ run: RunRequest, definition: WorkflowDefinition, cloud: Bool) async throws {
        let files: [(ParameterDefinition, InputFileKey)] = definition.parameters.compactMap { parameter in
            guard parameter.kind == .file, case .string(let raw)? = run.parameters[parameter.key], let key = InputFileKey(raw) else { return nil }
            return (parameter, key)
        }
        guard !files.isEmpty else { return }
        let objects = self.objects
        let problems = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for (index, (parameter, key)) in files.enumerated() {
                group.addTask { (index, try await objects.violation(of: key, for: parameter, cloud: cloud)) }
            }
            return try await group.reduce(into: [(Int, String)]()) { found, result in
                if let problem = result.1 { found.append((result.0, problem)) }
            }
        }
        guard problems.isEmpty else {
            throw SwitchyardError.invalid(problems.sorted { $0.0 < $1.0 }.map(\.1).joined(separator: "; "))
        }
    }

    /// The workflow's head and the version to run: the pinned one, else the current one.
    private func resolve(_ target: Target, teamId: UUID) async throws -> (WorkflowHead, Int) {
        switch target {
        case .id(let id):
            guard
                let head = try await heads.head(
                    .id(id, team: teamId), now: clock.now(), load: { try await storage.workflowHead(id: id, teamId: teamId) })
            else { throw SwitchyardError.notFound("workflow not found") }
            return (head, head.version)
        case .reference(let reference):
            guard
                let head = try await heads.head(
                    .slug(reference.slug, team: teamId), now: clock.now(),
                    load: { try await storage.workflowHead(slug: reference.slug, teamId: teamId) })
            else {
                throw SwitchyardError.notFound("workflow \"\(reference.slug)\" not found")
            }
            if let pinned = reference.version, pinned > head.version {
                throw SwitchyardError.notFound("workflow \"\(head.slug)\" has no version \(pinned) (the latest is \(head.version))")
            }
            return (head, reference.version ?? head.version)
        }
    }

    /// 1–255 printable ASCII characters (UUIDs, order numbers, hashes…).
    static func validateIdempotencyKey(_ key: String) throws -> String {
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw SwitchyardError.invalid("Idempotency-Key header must be 1–255 printable ASCII characters without spaces")
        }
        return key
    }

    /// What a replay must match: the workflow addressed (as addressed) and the canonical body, so whitespace and
    /// key order do not matter but any value does.
    static func fingerprint(_ target: Target, body: JSONValue) -> String {
        var bytes: [UInt8]
        switch target {
        case .id(let id): bytes = Array("id:\(id.lowercased)\n".utf8)
        case .reference(let reference): bytes = Array("slug:\(reference.slug)@\(reference.version.map(String.init) ?? "latest")\n".utf8)
        }
        body.write(to: &bytes)
        return Hex.encode(SHA256.hash(data: bytes))
    }
}
