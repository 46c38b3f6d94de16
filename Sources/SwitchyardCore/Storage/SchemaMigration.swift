/// One forward-only schema step. Versions are applied in order, each in its own transaction, and
/// recorded in `schema_migrations`.
public struct SchemaMigration: Sendable {
    public var version: Int
    public var name: String
    public var statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }
}
