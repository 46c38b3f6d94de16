import Foundation
import SwitchyardCore
import SwitchyardWire

/// What the dispatcher reads to place and offer a task: its requirement, its workflow snapshot, the offer message;
/// and the storage calls whose failures it logs rather than throws.
extension Dispatcher {
    /// The workflow snapshot the task was validated against, through the snapshot cache.
    func workflow(of task: TaskRecord) async throws -> WorkflowDefinition? {
        try await workflow(task.workflowId, version: task.workflowVersion, teamId: task.teamId)
    }

    func workflow(_ workflowId: UUID, version: Int, teamId: UUID) async throws -> WorkflowDefinition? {
        let storage = self.storage
        return try await snapshots.definition(workflowId: workflowId, version: version) {
            try await storage.workflowSnapshot(workflowId: workflowId, teamId: teamId, version: version)?.definition
        }
    }

    /// The task's requirement, from its workflow snapshot (through the cache).
    func requirement(for task: TaskRecord) async -> DispatchRequirement {
        withCloud(Self.requirement(task, try? await workflow(of: task)), target: task.dispatchTarget)
    }

    static func requirement(_ task: TaskRecord, _ workflow: WorkflowDefinition?) -> DispatchRequirement {
        DispatchRequirement(
            teamId: task.teamId, requiredLabels: Set(task.requiredLabels), pool: task.targetPool, minVRAMGB: workflow?.minVRAMGB ?? 0,
            submitterRegion: task.submitterRegion.map { $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() },
            requiredModels: Set(workflow?.requiredModels ?? []))
    }

    func makeOffer(_ task: TaskRecord, attemptId: UUID, now: Date) async throws -> GatewayMessage.Offer {
        var definition = definitions.removeValue(forKey: task.id)
        if definition == nil { definition = try await storage.taskDefinition(id: task.id, teamId: task.teamId) }
        guard let definition else { throw SwitchyardError.notFound("the task's definition is missing") }
        let workflow = try await workflow(of: task)
        var inputs: [OfferInput] = []
        for parameter in workflow?.parameters ?? [] where parameter.kind == .file {
            guard case .string(let fileKey)? = task.parameters[parameter.key], let key = InputFileKey(fileKey) else { continue }
            inputs.append(
                OfferInput(
                    parameter: parameter.key, nodeId: parameter.nodeId, field: parameter.field,
                    fileName: String(fileKey.split(separator: "/").last ?? "input"),
                    downloadURL: objects.presigner.presignedGet(key: key.rawValue, expires: settings.urlLifetime, now: now)))
        }
        return GatewayMessage.Offer(
            attemptId: attemptId.lowercased, taskId: task.id.lowercased, tool: task.toolType.rawValue, definitionJSON: definition.jsonString,
            inputs: inputs, ackTimeout: settings.ackTimeout, timeout: TimeInterval(task.taskTimeout),
            keepPreviews: workflow?.keepPreviews == false ? false : nil,
            requiredModels: workflow.flatMap { $0.requiredModels.isEmpty ? nil : $0.requiredModels })
    }

    /// Runs a storage call; a failure is logged and reads as nil (the next tick or rescan tries again).
    func write<T: Sendable>(_ body: @escaping @Sendable () async throws -> T?) async -> T? {
        do {
            return try await withDeadline(Self.storageDeadline, body)
        } catch {
            logger.error("storage call failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// How long the dispatcher waits for any one storage call: a call lost by the database client (its server
    /// killed mid-query) must not hold a dispatch pass, a tick or an agent's messages forever.
    static let storageDeadline = Duration.seconds(20)

    /// Runs a storage call that must not be lost — an attempt's start or end: while the database is unreachable
    /// (restarting, say) it is tried again, every 0.1 s backing off to 2 s, until it answers; any other error gets
    /// two more tries. Nil when the change no longer applies (or the dispatcher is shutting down).
    func writeDurably<T: Sendable>(_ body: @escaping @Sendable () async throws -> T?) async -> T? {
        var delay = Duration.milliseconds(100)
        var failures = 0
        while true {
            do {
                return try await withDeadline(Self.storageDeadline, body)
            } catch {
                failures += 1
                guard !Task.isCancelled, failures < 3 || storage.isUnavailable(error) || error is DeadlineExceeded else {
                    logger.error("storage call failed", metadata: ["error": "\(error)", "tries": "\(failures)"])
                    return nil
                }
                if failures == 1 { logger.warning("storage call failed; trying again", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

}
