import Foundation
import Logging
import SwitchyardCore

/// Runs statements on one connection (inside a transaction, when `SQLStorage.transaction` handed it out).
public protocol SQLExecutor: Sendable {
    var dialect: SQLDialect { get }
    func query(_ query: SQLQuery) async throws -> [SQLRow]
}

/// A `SwitchyardStorage` over an SQL database. The repositories (`SQLStorage+*.swift`), the schema (`Schema`) and
/// the migration loop are written once against this protocol; SQLite and PostgreSQL implement it with their
/// drivers and keep only what truly differs — their hot paths (task submission, task changes), notifications and
/// how they tell an unreachable database.
public protocol SQLStorage: SwitchyardStorage {
    var dialect: SQLDialect { get }
    var logger: Logger { get }
    /// Runs a read-only statement (SQLite: on one of the reader connections, concurrently with the writer).
    func read(_ query: SQLQuery) async throws -> [SQLRow]
    /// Runs one statement that writes, atomic by itself.
    func write(_ query: SQLQuery) async throws -> [SQLRow]
    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(_ body: @Sendable @escaping (any SQLExecutor) async throws -> T) async throws -> T
    /// Whether `error` is a uniqueness (or primary key) violation.
    func isUniqueViolation(_ error: any Error) -> Bool
}

extension SQLStorage {
    /// Applies the schema's pending migrations (`Schema`), each in a transaction of its own that also records it in
    /// `schema_migrations`; a start with nothing pending costs one transaction. On PostgreSQL each transaction first
    /// takes an advisory lock and checks again, so replicas starting together apply each version once.
    public func migrate() async throws {
        let applied = try await transaction { transaction in
            try await transaction.lockSchema()
            for statement in Schema.ledger.statements(for: transaction.dialect) {
                _ = try await transaction.query(SQLQuery(stringLiteral: statement))
            }
            return Set(try await transaction.query("SELECT version FROM schema_migrations").map { try $0.int("version") })
        }
        for migration in Schema.migrations where !applied.contains(migration.version) {
            let done = try await transaction { transaction in
                try await transaction.lockSchema()
                guard try await transaction.query("SELECT 1 AS found FROM schema_migrations WHERE version = \(migration.version)").isEmpty
                else { return false }
                for statement in migration.statements(for: transaction.dialect) {
                    _ = try await transaction.query(SQLQuery(stringLiteral: statement))
                }
                _ = try await transaction.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(Date()))")
                return true
            }
            if done { logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"]) }
        }
    }

    public func ping() async throws {
        _ = try await read("SELECT 1 AS one")
    }

    /// Translates a uniqueness violation into the domain's conflict error.
    func mapConstraint<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch  where isUniqueViolation(error) {
            throw SwitchyardError.conflict("\(what) already exists")
        }
    }

    /// Runs each statement by itself with `write` (autocommit), for the statements that
    /// transactions share (`SQLExecutor.insertUser` …) when one of them is all there is to do.
    var autocommit: some SQLExecutor { Autocommit(storage: self) }

    /// One page of `table`'s rows that match `filter`, in `order`, with how many match in all (api.md §1.3).
    func page<T>(
        _ columns: String, from table: String, where filter: SQLQuery, orderBy order: String = "created_at DESC, id DESC", _ page: PageRequest,
        _ decode: (SQLRow) throws -> T
    ) async throws -> Page<T> {
        let total = try await count("SELECT COUNT(*) AS total FROM \(raw: table) WHERE \(filter)")
        let items = try await read(
            "SELECT \(raw: columns) FROM \(raw: table) WHERE \(filter) ORDER BY \(raw: order) LIMIT \(page.perPage) OFFSET \(page.offset)")
        return Page(items: try items.map(decode), totalCount: total)
    }

    /// `SELECT COUNT(*) AS total …` as a number.
    func count(_ query: SQLQuery) async throws -> Int {
        try await read(query).first?.int("total") ?? 0
    }

    /// Whether a writing statement with `RETURNING` touched a row.
    func wrote(_ query: SQLQuery) async throws -> Bool {
        try await !write(query).isEmpty
    }
}

private struct Autocommit<Storage: SQLStorage>: SQLExecutor {
    let storage: Storage
    var dialect: SQLDialect { storage.dialect }
    func query(_ query: SQLQuery) async throws -> [SQLRow] { try await storage.write(query) }
}

extension SQLExecutor {
    /// Serialises schema changes across replicas until the transaction ends (PostgreSQL; SQLite's writer is
    /// exclusive already).
    fileprivate func lockSchema() async throws {
        if dialect == .postgres { _ = try await query("SELECT pg_advisory_xact_lock(7291001)") }
    }
}
