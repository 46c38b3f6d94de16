import Foundation

/// How the gateway and dispatcher time agents and attempts (`dispatch.*` in docs/configuration.md).
public struct DispatchSettings: Sendable, Equatable {
    /// Seconds an agent has to `ack` an offer before the task goes back to waiting.
    public var ackTimeout: TimeInterval = 10
    /// How much of one agent's input may wait unhandled before the server stops reading its socket, and how far it
    /// must drain before reading resumes (`InboundBacklog`; tests lower them).
    var inboundBacklogHigh = InboundBacklog.high
    var inboundBacklogLow = InboundBacklog.low
    /// Seconds between the heartbeats agents send; three missed ones end the session.
    public var heartbeatInterval: TimeInterval = 10
    /// After a restart, seconds the attempts found running wait for their agent to reconnect and claim them.
    public var reconnectGrace: TimeInterval = 30
    /// How long a presigned input or output URL handed to an agent stays valid.
    public var urlLifetime: Int = 3600
    /// How often a replica renews its lease row and looks for replicas that stopped renewing theirs.
    public var replicaHeartbeatInterval: TimeInterval = 2
    /// A replica whose lease is older than this is gone: its agents are disconnected, its attempts adopted.
    public var replicaLeaseTimeout: TimeInterval = 10
    /// How often deadlines are checked.
    public var tickInterval: Duration = .milliseconds(100)
    /// How often the database is re-read for waiting tasks this replica was not told about: a safety net, since
    /// replicas announce submissions to each other (`ReplicaNotifier`), and one process on SQLite sees them all.
    public var rescanInterval: TimeInterval = 10
    /// With a shared database (PostgreSQL), how often an idle event stream re-reads its task's log although no
    /// notification woke it: a safety net for a notification lost between replicas.
    public var streamRereadInterval: Double = 30
    /// Progress ticks reach event streams from memory at once; the task's log gets at most one of them per attempt
    /// this often (a task shorter than this logs none: its `completed` event says it reached the end).
    public var progressPersistInterval: TimeInterval = 1
    /// An agent row whose only change is its last heartbeat is written at most this often (`last_heartbeat` in
    /// the API lags by up to this much; a status change is written at once).
    public var heartbeatPersistInterval: TimeInterval = 30

    /// Agents of one team connected at once, over every replica (0: no limit); one more is refused at `hello`.
    public var maxAgentsPerTeam: Int = 0
    /// Whether agents that opt in to the community pool take other teams' `community` tasks. Off, an agent's
    /// opt-in is ignored: a team's work runs on its own agents only, whatever its workflows ask.
    public var communityPool = false
    /// Tasks of one team waiting to be taken (`pending`/`waiting`) past which a submission gets 429 with
    /// `Retry-After` (0: no limit).
    public var maxBacklogPerTeam: Int = 0
    /// Upload URLs one attempt may ask for, and the bytes they may declare in all.
    public var maxUploadsPerAttempt: Int = 1000
    public var maxUploadBytesPerAttempt: Int = 100 * 1024 * 1024 * 1024
    /// Progress ticks of one attempt reach event streams at most this often (later ones within the interval are
    /// kept as the latest, shown with the next).
    public var progressInterval: TimeInterval = 0.05

    public init() {}

    public init(ackTimeout: TimeInterval, heartbeatInterval: TimeInterval, reconnectGrace: TimeInterval) {
        self.ackTimeout = ackTimeout
        self.heartbeatInterval = heartbeatInterval
        self.reconnectGrace = reconnectGrace
    }
}
