import SwitchyardCore

extension PostgresMigrations {
    /// Replica leases: each dispatcher's heartbeat, so the others can tell when it died.
    static let m0007CreateReplicas = SchemaMigration(
        version: 7,
        name: "create_replicas",
        statements: [
            "CREATE TABLE replicas (gateway_id text PRIMARY KEY, heartbeat_at timestamptz NOT NULL)",
            "CREATE INDEX tasks_gateway_active ON tasks (gateway_id) WHERE task_status IN ('queued', 'running')",
        ]
    )
}
