import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardPostgres
import SwitchyardSQLite

/// A built server: the Hummingbird application plus what callers (the CLI, tests) need to see of it.
public struct SwitchyardApplication: Sendable {
    public let application: Application<HeadResponder<RouterResponder<SwitchyardRequestContext>>>
    public let storage: any SwitchyardStorage
    /// The work the application does when it starts (migrations, bootstrap), and whether it is done.
    public let startup: ServerStartup
    /// The secrets created by this start, or nil when the database was bootstrapped before; read it once the
    /// application has started.
    public var bootstrap: BootstrapResult? { startup.bootstrap }
    /// Every registered route, for the 405 check and the OpenAPI completeness test.
    public let routes: RouteTable
    /// The authenticator behind every protected route (tests drive it directly for surfaces without routes yet).
    let authenticator: Authenticator
    /// The embedded object store (its application runs as a service of `application`; its key pair is read at the
    /// start); nil when an external S3 store is configured.
    public let objectStore: EmbeddedS3?
    /// The retention reaper (a service of `application`; tests call `sweep()` directly).
    public let reaper: RetentionReaper
    /// Matches tasks to agents (a service of `application`).
    public let dispatcher: Dispatcher
    /// Sends webhook deliveries (a service of `application`; tests call `drain()` directly).
    public let webhookSender: WebhookSender
    /// Checks large models' `file_hash` after registration (a service of `application`; tests wait on `idle()`).
    let modelVerifier: ModelVerifier
    /// What `GET /metrics` renders.
    public let metrics: ServerMetrics
}

/// Opens the storage a configuration names, not yet running: `buildApplication(…, runsStorage: true)` runs it as
/// its first service. The data directory is 0700 and the SQLite files 0600 — also when they existed before with
/// wider permissions — and the process creates files for its owner only (umask 077).
public func openStorage(configuration: ServerConfiguration, logger: Logger) async throws -> any SwitchyardStorage {
    umask(0o077)
    try FileManager.default.createDirectory(
        atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
    )
    try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: configuration.dataDirectory)
    for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: configuration.sqlitePath + suffix) {
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: configuration.sqlitePath + suffix)
    }
    if let url = configuration.databaseURL { return try PostgresStorage(url: url, logger: logger) }
    return try await SQLiteStorage.open(path: configuration.sqlitePath, logger: logger)
}

/// `openStorage`, kept running (PostgreSQL's pool) while `body` runs and closed afterwards: for the commands that
/// use the database without serving (`migrate`, `secrets`) and for tests.
public func withStorage<T: Sendable>(
    configuration: ServerConfiguration, logger: Logger, _ body: @Sendable (any SwitchyardStorage) async throws -> T
) async throws -> T {
    let storage = try await openStorage(configuration: configuration, logger: logger)
    if let postgres = storage as? PostgresStorage {
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await postgres.run() }
            defer { group.cancelAll() }
            return try await body(storage)
        }
    }
    do {
        let result = try await body(storage)
        try await storage.close()
        return result
    } catch {
        try? await storage.close()
        throw error
    }
}

/// The one place that wires the server: middleware, routes, services, and what each start does before it listens.
/// Building reads nothing from the database. Starting (`beforeServerStarts`) migrates (`database.migrate`),
/// bootstraps a first start (and tells `onBootstrap`), and reads the embedded store's key pair, the signing key
/// ring and the login decoy hash; the dispatcher, reaper and webhook sender are services that begin once that is
/// done, the embedded store a service that listens at once. With `runsStorage` the storage is the first service
/// (it shuts down last): `switchyard serve` passes it; the tests run their storage themselves.
public func buildApplication(
    configuration: ServerConfiguration,
    storage: any SwitchyardStorage,
    runsStorage: Bool = false,
    logger: Logger,
    clock: any WallClock = SystemWallClock(),
    onBootstrap: @escaping @Sendable (BootstrapResult) -> Void = { _ in }
) async throws -> SwitchyardApplication {
    let secrets = try SecretBox.load(configuration: configuration)
    let metrics = ServerMetrics(backend: storage.backendName)
    let objectStore: EmbeddedS3? =
        configuration.externalS3 == nil ? try EmbeddedS3.make(configuration: configuration, clock: clock, logger: logger, metrics: metrics) : nil
    // Sealed with the secrets key: a copy of the database alone cannot mint sessions.
    let sessions = SessionTokens(lifetime: configuration.sessionLifetime, clock: clock) {
        try await SigningKeyring.load(storage: storage, secrets: secrets, clock: clock)
    }
    let keyCache = CredentialCache(ttl: configuration.cacheTTL)
    let browser = BrowserSessions(box: secrets)
    var authenticator = Authenticator(storage: storage, sessions: sessions, clock: clock, logger: logger, keyCache: keyCache)
    authenticator.browser = browser
    let decoyHash = StartupValue<String>()
    var limitRules = configuration.rateLimitRules
    limitRules.enabled = limitRules.enabled && configuration.rateLimitAuth
    let limiter = RateLimiter(rules: limitRules, clock: clock, trustForwardedFor: configuration.trustForwardedFor)

    let router = Router(context: SwitchyardRequestContext.self)
    let routeTable = RouteTableBox()
    router.add(
        middleware: ErrorMiddleware(
            routes: { routeTable.value }, unavailable: { storage.isUnavailable($0) }, reachable: { storage.isReachable }, metrics: metrics,
            maxBodySize: configuration.maxBodySize))

    HealthController(storage: storage).addRoutes(to: router)
    let api = router.group("api/v1")
    OpenAPIController().addRoutes(to: api)
    AuthController(storage: storage, sessions: sessions, decoyPasswordHash: decoyHash, limiter: limiter)
        .addRoutes(to: api.group("auth"))
    UsersController(storage: storage)
        .addRoutes(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .perUser)))
    AccountController(
        storage: storage, sessions: sessions, clock: clock, limiter: limiter, bcryptCost: configuration.bcryptCost
    ).addRoutes(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .perUser)))
    let heads = WorkflowHeadCache(ttl: configuration.cacheTTL)
    WorkflowsController(storage: storage, clock: clock, heads: heads)
        .addRoutes(to: api.group("workflows").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management)))
    let runtime = api.group("r").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .runtime))
    let objects = objectStore?.objects ?? ObjectStorage(external: configuration, clock: clock)
    let snapshots = SnapshotCache()
    let webhookSender = WebhookSender(
        storage: storage, box: secrets, clock: clock, settings: configuration.webhooks, logger: logger, metrics: metrics)
    let hub = TaskEventHub(notifier: storage.notifier, onEnded: { webhookSender.nudge() })
    let dispatcher = Dispatcher(
        storage: storage, objects: objects, snapshots: snapshots, hub: hub, clock: clock, settings: configuration.dispatch, logger: logger,
        metrics: metrics)
    CredentialsController(storage: storage, clock: clock, keyCache: keyCache, dispatcher: dispatcher)
        .addRoutes(to: api.group("credentials").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .sessionOnly)))
    let management = api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management))
    WebhooksController(
        storage: storage, box: secrets, policy: configuration.webhooks.policy, clock: clock,
        sender: webhookSender
    ).addRoutes(to: api.group("webhooks").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management)))
    let cloudRunner = CloudRunner(
        storage: storage, box: secrets, dispatcher: dispatcher, settings: configuration.cloud,
        heartbeatInterval: configuration.dispatch.heartbeatInterval, clock: clock, logger: logger)
    CloudProvidersController(storage: storage, box: secrets, clock: clock, settings: configuration.cloud, runner: cloudRunner)
        .addRoutes(to: api.group("cloud-providers").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management)))
    let teams = TeamsController(
        storage: storage, clock: clock,
        effects: TeamEffects(keyCache: keyCache, dispatcher: dispatcher, hub: hub, objects: objects), selfServiceTeams: configuration.selfServiceTeams
    )
    teams.addUserRoutes(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .perUser)))
    teams.addTeamRoutes(to: management)
    InvitationAcceptController(
        storage: storage, sessions: sessions, clock: clock, bcryptCost: configuration.bcryptCost,
        limiter: limiter
    ).addRoutes(to: api)
    let pairing = PairingController(
        storage: storage, clock: clock, dispatcher: dispatcher, limiter: limiter)
    pairing.addPublicRoutes(to: api)
    pairing.addConfirmRoute(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .sessionOnly)))
    pairing.addRevokeRoute(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .perUser)))
    pairing.addPendingRoute(to: api.group().add(middleware: AuthMiddleware(authenticator: authenticator, surface: .perUser)))
    var submitter = RunSubmitter(storage: storage, snapshots: snapshots, heads: heads, objects: objects, clock: clock, metrics: metrics)
    submitter.logger = logger
    submitter.onCreated = { task, definition, workflow in
        hub.created(task.id)
        dispatcher.post(.created(task, definition: definition, workflow: workflow))
    }
    submitter.dispatcher = dispatcher
    submitter.maxBacklogPerTeam = configuration.dispatch.maxBacklogPerTeam
    let gateway = AgentGateway(storage: storage, dispatcher: dispatcher, clock: clock, logger: logger)
    gateway.addRoutes(to: router)
    AgentsController(storage: storage, dispatcher: dispatcher).addRoutes(to: runtime.group("agents"))
    AgentsController(storage: storage, dispatcher: dispatcher)
        .addRoutes(to: api.group("agents").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management)))
    FilesController(objects: objects, clock: clock).addRoutes(to: runtime.group("files"))
    let modelVerifier = ModelVerifier(storage: storage, objects: objects, clock: clock, dispatcher: dispatcher, logger: logger)
    ModelsController(
        storage: storage, objects: objects, clock: clock, dispatcher: dispatcher, verifier: modelVerifier,
        verifyInlineMaxBytes: configuration.modelVerifyInlineMaxBytes
    )
    .addRoutes(to: api.group("models").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .management)))
    MultipartController(storage: storage, objects: objects, clock: clock)
        .addRoutes(to: api.group("uploads/multipart").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .sessionOnly)))
    RuntimeWorkflowsController(storage: storage, submitter: submitter)
        .addRoutes(to: runtime.group("workflows"))
    let streams = StreamLimiter(maximumPerTeam: configuration.maxEventStreamsPerTeam)
    TasksController(
        storage: storage, clock: clock, objects: objects, dispatcher: dispatcher, hub: hub, metrics: metrics, streams: streams,
        rereadInterval: storage.notifier.isShared ? .seconds(configuration.dispatch.streamRereadInterval) : nil,
        outputRetention: configuration.retention.outputs
    ).addRoutes(to: runtime.group("tasks"))
    let inProcess = InProcessAPI()
    MCPController(
        api: inProcess, storage: storage, hub: hub, clock: clock,
        rereadInterval: .seconds(storage.notifier.isShared ? configuration.dispatch.streamRereadInterval : 30)
    ).addRoutes(to: api.group("mcp").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .mcp)))

    Dashboard(
        api: inProcess, storage: storage, browser: browser, sessions: sessions, hub: hub, objects: objects,
        authenticator: authenticator,
        streams: streams
    ).addRoutes(to: router)

    if configuration.metricsEnabled {
        MetricsController(
            metrics: metrics, token: configuration.metricsToken, storage: storage, dispatcher: dispatcher, streams: streams, clock: clock
        ).addRoutes(to: router)
    }

    let reaper = RetentionReaper(storage: storage, objects: objects, policy: configuration.retention, clock: clock, logger: logger)
    let routes = RouteTable(router.routes)
    routeTable.value = routes
    var serverLogger = logger
    serverLogger[metadataKey: "component"] = "http"
    let idle = TimeAmount.milliseconds(Int64(configuration.httpIdleTimeout * 1000))
    let apiResponder = router.buildResponder()
    inProcess.install(apiResponder)
    var application = Application(
        responder: HeadResponder(apiResponder),
        // No WebSocket pings: agents heartbeat every `dispatch.heartbeatInterval` (traffic that keeps proxies from
        // closing the socket), and three missed heartbeats end the session. A ping loop would be one more task per
        // session, which with 10,000 agents is memory (docs/performance.md, "Dispatch with many connected agents").
        server: .http1WebSocketUpgradeClosingSilentConnections(
            configuration: .init(maxFrameSize: AgentGateway.maximumMessageSize, autoPing: .disabled), idleTimeout: idle,
            limits: RequestLimits(headTimeout: idle)
        ) { request, _, _ in await gateway.shouldUpgrade(request) },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Switchyard"),
        logger: serverLogger
    )
    let startup = ServerStartup()
    application.beforeServerStarts {
        try await startup.run {
            if configuration.migrateOnStart { try await storage.migrate() }
            try await objectStore?.prepare(storage: storage, secrets: secrets)
            let bootstrap = try await Bootstrapper(
                storage: storage, configuration: configuration, clock: clock, logger: logger, objectStore: objectStore?.access
            ).run()
            startup.record(bootstrap)
            if let bootstrap { onBootstrap(bootstrap) }
            try await sessions.load()
            decoyHash.set(try await loginDecoyHash(storage: storage, cost: configuration.bcryptCost))
            // The dispatcher's first replica check (this replica's lease, attempts orphaned by a stopped one) is done
            // before any agent can connect, as it was when the dispatcher's service began with the process.
            await dispatcher.recoverActiveAttempts()
        }
    }
    // Started in this order, shut down in the reverse one (after the HTTP server, which Hummingbird adds last).
    if runsStorage { application.addServices(StorageService(storage: storage)) }
    // The embedded store needs no database to listen (it refuses requests until the start has read its key pair).
    if let objectStore { application.addServices(objectStore.application) }
    application.addServices(
        AfterStart(startup: startup, service: dispatcher), AfterStart(startup: startup, service: reaper),
        AfterStart(startup: startup, service: webhookSender), AfterStart(startup: startup, service: modelVerifier),
        AfterStart(startup: startup, service: cloudRunner))
    return SwitchyardApplication(
        application: application, storage: storage, startup: startup, routes: routes, authenticator: authenticator, objectStore: objectStore,
        reaper: reaper, dispatcher: dispatcher, webhookSender: webhookSender, modelVerifier: modelVerifier, metrics: metrics)
}

/// The bcrypt hash an unknown email's login attempt is checked against, so it costs what a wrong password
/// costs. Made once per deployment (and again if the cost changes) and kept in settings, keeping restarts fast.
func loginDecoyHash(storage: any SwitchyardStorage, cost: Int) async throws -> String {
    let key = "\(SettingKey.loginDecoyHash).\(cost)"
    if let stored = try await storage.setting(key) { return stored }
    var random = SystemRandomNumberGenerator()
    let fresh = try await SecretHasher.hashPassword(CredentialSecret.randomString(length: 24, using: &random), cost: cost, refusable: false)
    return try await storage.settingInsertingIfAbsent(key, value: fresh)
}

/// Lets the error middleware, which must be added before any route, read the finished route table.
final class RouteTableBox: @unchecked Sendable {
    // Safe: written once in `buildApplication` before the application serves its first request, read-only after.
    var value = RouteTable([])
}
