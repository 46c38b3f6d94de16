import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardComfyUI
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// Runs teams' tasks on Comfy Cloud (api.md §2.7, §3.5; docs/comfy-cloud.md). For every team with an active key it
/// keeps a runner connected to the dispatcher as the agent `comfy-cloud` (DESIGN §8: every task has one lifecycle),
/// which takes the team's `comfy_cloud` tasks — and, with `cloud_fallback`, agent tasks no agent is available for —
/// and runs each attempt as a Comfy API v2 job (`CloudJob`). It hears of key changes from the API on this replica and
/// from other replicas through the notifier.
public actor CloudRunner: Service {
    let storage: any SwitchyardStorage
    let box: SecretBox
    let dispatcher: Dispatcher
    let settings: CloudSettings
    let heartbeatInterval: TimeInterval
    let clock: any WallClock
    let logger: Logger

    /// One team's runner: its session with the dispatcher and the attempts it runs.
    final class Team: Sendable {
        let connection: AgentConnection
        let jobs = Mutex<[UUID: Task<Void, Never>]>([:])
        /// Upload URLs asked for and not yet answered, by request id.
        let uploads = Mutex<[String: CheckedContinuation<GatewayMessage.UploadURL, any Error>]>([:])
        /// Attempts cancelled by the dispatcher.
        let cancelled = Mutex<Set<UUID>>([])

        init(connection: AgentConnection) { self.connection = connection }
    }

    var teams: [UUID: Team] = [:]

    init(
        storage: any SwitchyardStorage, box: SecretBox, dispatcher: Dispatcher, settings: CloudSettings, heartbeatInterval: TimeInterval,
        clock: any WallClock, logger: Logger
    ) {
        self.storage = storage
        self.box = box
        self.dispatcher = dispatcher
        self.settings = settings
        self.heartbeatInterval = heartbeatInterval
        self.clock = clock
        var logger = logger
        logger[metadataKey: "component"] = "cloud-runner"
        self.logger = logger
    }

    public func run() async throws {
        let notifications = storage.notifier.notifications()
        await loadAll()
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    for await notification in notifications {
                        switch notification {
                        case .cloudChanged(let teamId): await self.credentialChanged(teamId: teamId, publish: false)
                        case .resync: await self.loadAll()
                        default: break
                        }
                    }
                }
                while true {
                    try await Task.sleep(for: .seconds(self.heartbeatInterval))
                    await self.heartbeat()
                }
            }
        }
        for team in teams.values {
            for job in team.jobs.withLock({ Array($0.values) }) { job.cancel() }
        }
    }

    /// Connects a runner for every team with an active key (at start, and after notifications may have been missed).
    func loadAll() async {
        do {
            let credentials = try await storage.activeCloudCredentials(provider: .comfyCloud)
            for credential in credentials { await connect(credential) }
            let active = Set(credentials.map(\.teamId))
            for teamId in teams.keys where !active.contains(teamId) { await credentialChanged(teamId: teamId, publish: false) }
        } catch {
            logger.error("could not read the teams' Comfy Cloud keys", metadata: ["error": "\(error)"])
        }
    }

    /// The team's key was set, replaced, refused or deleted (here, or on another replica when `publish` is false).
    public func credentialChanged(teamId: UUID, publish: Bool = true) async {
        if publish { storage.notifier.publish(.cloudChanged(teamId: teamId)) }
        let credential = try? await storage.cloudCredential(teamId: teamId, provider: .comfyCloud)
        if let credential, credential.status == .active {
            await connect(credential)
        } else if teams[teamId] != nil {
            await dispatcher.cloudUnavailable(teamId: teamId)
            await endIfIdle(teamId)
        }
    }

    private func connect(_ credential: CloudCredential) async {
        let fallback = credential.cloudFallback ? settings.fallbackWait : nil
        if let team = teams[credential.teamId] {
            await dispatcher.connectCloud(team.connection, capacity: settings.comfyConcurrency, fallbackWait: fallback)
            return
        }
        let key = AgentKey(teamId: credential.teamId, agentId: Dispatcher.cloudAgentId)
        let socket = CloudSocket()
        let connection = AgentConnection(key: key, credentialId: Self.runnerCredential, socket: socket)
        let team = Team(connection: connection)
        teams[credential.teamId] = team
        socket.attach { [weak self] message in
            await self?.received(message, team: team)
        } onClose: { [weak self] in
            await self?.closed(team)
        }
        await dispatcher.connectCloud(connection, capacity: settings.comfyConcurrency, fallbackWait: fallback)
    }

    /// Stands for the runner where a key's id would be (it has none).
    static let runnerCredential = UUID(uuid: (0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0))

    /// A team without a usable key keeps its runner until its running jobs end.
    private func endIfIdle(_ teamId: UUID) async {
        guard let team = teams[teamId], team.jobs.withLock({ $0.isEmpty }) else { return }
        let credential = try? await storage.cloudCredential(teamId: teamId, provider: .comfyCloud)
        guard credential?.status != .active else { return }
        teams[teamId] = nil
        await dispatcher.disconnectCloud(teamId: teamId)
    }

    /// The dispatcher ended the session (the team was deleted, the server is stopping): its jobs stop.
    private func closed(_ team: Team) {
        guard let teamId = teams.first(where: { $0.value === team })?.key else { return }
        teams[teamId] = nil
        for job in team.jobs.withLock({ Array($0.values) }) { job.cancel() }
    }

    private func heartbeat() async {
        for team in teams.values {
            await dispatcher.cloudHeartbeat(team.connection, holding: team.jobs.withLock { Set($0.keys) })
        }
    }

    // MARK: Messages from the dispatcher

    private func received(_ message: GatewayMessage, team: Team) async {
        switch message {
        case .offer(let offer):
            guard let attemptId = UUID(text: offer.attemptId) else { return }
            let job = CloudJob(runner: self, team: team, offer: offer, attemptId: attemptId)
            let task = Task { await job.run() }
            team.jobs.withLock { $0[attemptId] = task }
        case .uploadURL(let url):
            team.uploads.withLock { $0.removeValue(forKey: url.requestId) }?.resume(returning: url)
        case .cancel(let ref):
            guard let attemptId = UUID(text: ref.attemptId) else { return }
            team.cancelled.withLock { _ = $0.insert(attemptId) }
            team.jobs.withLock { $0[attemptId] }?.cancel()
        case .refused(let refusal):
            logger.warning("the dispatcher refused a runner message", metadata: ["reason": "\(refusal.reason)"])
            // An upload the gateway would not sign: the attempt waiting for it fails (request ids start with the attempt's).
            guard let attemptId = refusal.attemptId else { return }
            let refused = team.uploads.withLock { uploads in
                let matching = uploads.filter { $0.key.hasPrefix(attemptId) }
                for key in matching.keys { uploads[key] = nil }
                return matching.values
            }
            for waiter in refused { waiter.resume(throwing: CloudJob.Failure("the gateway refused an upload: \(refusal.reason)", fault: .platform)) }
        case .welcome, .goodbye, .models, .modelURL:
            break
        }
    }

    /// Sends a message to the dispatcher as the team's runner.
    func send(_ message: AgentMessage, team: Team) async {
        await dispatcher.cloudMessage(message, from: team.connection)
    }

    /// The attempt ended (its last message sent): it leaves the team's jobs.
    func finished(_ attemptId: UUID, team: Team) async {
        team.jobs.withLock { _ = $0.removeValue(forKey: attemptId) }
        team.cancelled.withLock { _ = $0.remove(attemptId) }
        if let teamId = teams.first(where: { $0.value === team })?.key { await endIfIdle(teamId) }
    }

    /// The team's key, opened; nil when it has none or it is not active.
    func apiKey(teamId: UUID) async throws -> (key: String, sealed: String)? {
        guard let credential = try await storage.cloudCredential(teamId: teamId, provider: .comfyCloud), credential.status == .active else {
            return nil
        }
        return (
            try box.open(credential.sealedKey, boundTo: CloudProvidersController.binding(teamId: teamId, provider: .comfyCloud)), credential.sealedKey
        )
    }

    /// The service refused the key (401): the credential is marked revoked (unless it was replaced meanwhile), and the
    /// runner takes no more work until a new key is set.
    func keyRefused(teamId: UUID, sealed: String, detail: String) async {
        let message = "Comfy Cloud refused the key (401) at \(clock.now().ISO8601Format())\(detail.isEmpty ? "" : ": \(detail)"); set a new one"
        let changed =
            (try? await storage.setCloudCredentialStatus(
                teamId: teamId, provider: .comfyCloud, sealedKey: sealed, status: .revoked, message: message, at: clock.now())) ?? false
        logger.warning("Comfy Cloud refused a team's key", metadata: ["team_id": "\(teamId.lowercased)", "marked": "\(changed)"])
        if changed { await credentialChanged(teamId: teamId) }
    }
}

/// The runner's end of its session: what the dispatcher writes to the "agent" is handed to the runner.
final class CloudSocket: AgentSocket {
    private let handlers = Mutex<(message: (@Sendable (GatewayMessage) async -> Void)?, close: (@Sendable () async -> Void)?)>((nil, nil))

    func attach(_ message: @escaping @Sendable (GatewayMessage) async -> Void, onClose close: @escaping @Sendable () async -> Void) {
        handlers.withLock { $0 = (message, close) }
    }

    func write(_ message: GatewayMessage) async throws {
        await handlers.withLock { $0.message }?(message)
    }

    func close() async {
        await handlers.withLock { $0.close }?()
    }
}
