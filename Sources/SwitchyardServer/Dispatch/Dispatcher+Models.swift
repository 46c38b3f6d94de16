import Foundation
import SwitchyardCore
import SwitchyardWire

/// Model sync (docs/agent-protocol.md, "Models"): the team's sync set to the agents that sync, again whenever it
/// changes; what each holds, for dispatch (`required_models`) and for the agents list.
extension Dispatcher {
    /// How long a model's presigned GET stays valid: long enough for a multi-GB file on a slow line; an agent whose
    /// URL expired mid-file asks for a fresh one (`model_url_request`).
    static let modelURLLifetime = 6 * 3600

    /// At most this many models in one team's sync set (the oldest first).
    static let maximumSyncedModels = 10_000

    /// The team's sync set, each model with a fresh GET; nil when the database did not answer.
    func modelSet(teamId: UUID) async -> GatewayMessage.Models? {
        guard let models = await write({ try await self.storage.syncedModels(teamId: teamId, limit: Self.maximumSyncedModels) }) else {
            return nil
        }
        let now = clock.now()
        return GatewayMessage.Models(models: models.compactMap { entry($0, now: now) })
    }

    private func entry(_ model: ModelRecord, now: Date) -> GatewayMessage.ModelEntry? {
        guard let placement = model.placement else { return nil }
        return GatewayMessage.ModelEntry(
            modelId: model.id.lowercased, displayName: model.displayName, placement: placement, fileSize: Int64(model.fileSize),
            fileHash: model.fileHash, url: objects.presigner.presignedGet(key: model.storageKey, expires: Self.modelURLLifetime, now: now),
            urlExpiresAt: now.addingTimeInterval(TimeInterval(Self.modelURLLifetime)))
    }

    /// The team's models changed (registered, edited, disabled, deleted): its agents that sync, here and on the
    /// other replicas, get the new set.
    func modelsChanged(teamId: UUID) async {
        storage.notifier.publish(.modelsChanged(teamId: teamId))
        await sendModels(teamId: teamId)
    }

    /// Sends the team's set to its agents connected here that sync.
    func sendModels(teamId: UUID) async {
        guard sessions.contains(where: { $0.key.teamId == teamId && $0.value.modelSync }), let set = await modelSet(teamId: teamId) else { return }
        modelSetsSent[teamId, default: 0] += 1
        for (key, session) in sessions where key.teamId == teamId && session.modelSync { session.connection.send(.models(set)) }
    }

    /// An agent's `models`: dispatch prefers it for the tasks needing what it holds; its row shows both lists.
    func modelsReported(_ key: AgentKey, _ report: AgentMessage.ModelsHeld) async {
        guard sessions[key]?.modelSync == true else { return }
        let held = Array(Set(report.held)).sorted()
        sessions[key]?.record.modelReport = Self.modelReport(held: held, broken: report.broken)
        for broken in report.broken {
            logger.warning(
                "agent could not take a model",
                metadata: ["agent": "\(key)", "model": "\(broken.modelId)", "placement": "\(broken.placement)", "error": "\(broken.error)"])
        }
        await feed(.modelsHeld(key, Set(held)))
        if let record = currentRecord(key) { await persist(record) }
    }

    /// A fresh GET for a model of the agent's team still in its sync set; none (the agent drops the download) when it
    /// left the set.
    func answerModelURL(_ request: AgentMessage.ModelURLRequest, connection: AgentConnection) async {
        var url: String?
        var expires: Date?
        if let id = UUID(text: request.modelId),
            let model = await write({ try await self.storage.model(id: id, teamId: connection.key.teamId) }),
            model.status == .active, let entry = entry(model, now: clock.now())
        {
            url = entry.url
            expires = entry.urlExpiresAt
        }
        connection.send(.modelURL(.init(requestId: request.requestId, modelId: request.modelId, url: url, urlExpiresAt: expires)))
    }

    static func modelReport(held: [String], broken: [AgentMessage.BrokenModel]) -> JSONValue {
        [
            "held": .strings(held),
            "broken": .array(
                broken.map { ["model_id": .string($0.modelId), "placement": .string($0.placement), "error": .string($0.error)] }),
        ]
    }
}
