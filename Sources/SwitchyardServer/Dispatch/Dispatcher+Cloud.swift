import Foundation
import SwitchyardCore
import SwitchyardWire

/// The teams' cloud runners (Comfy Cloud) as agents of the dispatcher (DESIGN §8): a runner is a session like an
/// agent's — offers, acks, progress, upload URLs, completion, cancels go through the same machine and storage — but
/// it lives in this process, so it has no key to re-check, no row in the agents list, and no place in the team's
/// agent limit. One per team per replica, under the reserved agent id `comfy-cloud`.
extension Dispatcher {
    static let cloudAgentId = "comfy-cloud"

    /// Registers (or, for a connection already registered, updates) the team's cloud runner: it runs `capacity`
    /// jobs at once, and takes the team's agent tasks after `fallbackWait` (none: `comfy_cloud` tasks only).
    func connectCloud(_ connection: AgentConnection, capacity: Int, fallbackWait: TimeInterval?) async {
        let key = connection.key
        cloudFallback[key.teamId] = fallbackWait
        guard sessions[key]?.connection !== connection else {
            // A key set again after the old one was refused: the runner takes work again.
            if machine.agents[key]?.candidate.status == .unhealthy { await perform(machine.handle(.statusReported(key, .idle), at: clock.now())) }
            return
        }
        if let previous = sessions[key] {
            previous.connection.finish()
            await feed(.disconnected(key, why: "the cloud runner was replaced"))
        }
        let now = clock.now()
        let candidate = AgentCandidate(
            id: key.agentId, teamId: key.teamId, labels: [], status: .idle, capacity: capacity, running: 0, region: nil, communityOptIn: false,
            cloud: true)
        sessions[key] = Session(
            connection: connection,
            record: AgentRecord(
                teamId: key.teamId, agentId: key.agentId, credentialId: connection.credentialId, status: .idle, labels: [], region: nil,
                communityOptIn: false, capacity: capacity, agentVersion: SwitchyardVersion.current, tool: "comfy_cloud", toolVersion: nil,
                systemStats: .object([:]), gatewayId: gatewayId, connectedAt: now, lastHeartbeatAt: now))
        connection.startWriting()
        await feed(
            .connected(
                key, DispatchMachine.Agent(candidate: candidate, credentialId: connection.credentialId, reportsStart: false, lastSeen: now),
                holding: []))
        logger.info(
            "cloud runner connected",
            metadata: ["agent": "\(key)", "capacity": "\(capacity)", "fallback": "\(fallbackWait.map { "\($0) s" } ?? "off")"])
    }

    /// The team's key was deleted or refused: its runner takes no new work; its session ends when `finish` is called.
    func cloudUnavailable(teamId: UUID) async {
        cloudFallback[teamId] = nil
        let key = AgentKey(teamId: teamId, agentId: Self.cloudAgentId)
        guard sessions[key] != nil else { return }
        await perform(machine.handle(.statusReported(key, .unhealthy), at: clock.now()))
    }

    /// Ends the team's cloud runner session (its attempts that are still held end as a lost agent's do).
    func disconnectCloud(teamId: UUID) async {
        cloudFallback[teamId] = nil
        let key = AgentKey(teamId: teamId, agentId: Self.cloudAgentId)
        guard let session = sessions[key] else { return }
        session.connection.finish()
        await feed(.disconnected(key, why: "the team's Comfy Cloud key was removed"))
    }

    /// The runner is alive and holds these attempts (in place of an agent's heartbeat: no key to re-check).
    func cloudHeartbeat(_ connection: AgentConnection, holding: Set<UUID>) async {
        guard sessions[connection.key]?.connection === connection else { return }
        await feed(.heartbeat(connection.key, holding: holding))
    }

    /// A message from a cloud runner, as from an agent.
    func cloudMessage(_ message: AgentMessage, from connection: AgentConnection) async {
        await handle(message, from: connection)
    }

    /// The requirement with the task's target and, for an agent task, its team's cloud fallback.
    func withCloud(_ requirement: DispatchRequirement, target: DispatchTarget) -> DispatchRequirement {
        var requirement = requirement
        requirement.target = target
        requirement.cloudFallbackWait = target == .agent ? cloudFallback[requirement.teamId] : nil
        return requirement
    }
}
