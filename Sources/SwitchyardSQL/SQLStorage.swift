import Foundation
import SwitchyardCore

/// Runs statements on one connection (inside a transaction, when `SQLStorage.transaction` handed it out).
public protocol SQLExecutor: Sendable {
    var dialect: SQLDialect { get }
    func query(_ query: SQLQuery) async throws -> [SQLRow]
}

/// A `SwitchyardStorage` over an SQL database. The repositories (`SQLStorage+*.swift`) are written once against
/// this protocol; SQLite and PostgreSQL implement it with their drivers and keep only what truly differs — their
/// hot paths (task submission, task changes), migrations' DDL, locking and notifications.
public protocol SQLStorage: SwitchyardStorage {
    var dialect: SQLDialect { get }
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
