import SwitchyardCore

extension PostgresMigrations {
    /// A run's optional `start_deadline`, and the index that finds expired tasks without a scan.
    static let m0008AddStartDeadline = SchemaMigration(
        version: 8,
        name: "add_start_deadline",
        statements: [
            "ALTER TABLE tasks ADD COLUMN start_deadline timestamptz",
            "CREATE INDEX tasks_start_deadline ON tasks (start_deadline) WHERE start_deadline IS NOT NULL",
        ]
    )
}
