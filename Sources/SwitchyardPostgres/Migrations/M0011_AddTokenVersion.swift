import SwitchyardCore

extension PostgresMigrations {
    /// A user's session-token version: signing out everywhere or changing the password bumps it.
    static let m0011AddTokenVersion = SchemaMigration(
        version: 11,
        name: "add_token_version",
        statements: ["ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0"]
    )
}
