import SwitchyardCore

extension SQLiteMigrations {
    /// Replica leases: each dispatcher's heartbeat (one process on SQLite, but a restart is a new replica).
    static let m0007CreateReplicas = SchemaMigration(
        version: 7,
        name: "create_replicas",
        statements: [
            "CREATE TABLE replicas (gateway_id TEXT PRIMARY KEY, heartbeat_at INTEGER NOT NULL)"
        ]
    )
}
