import Foundation
import SQLiteNIO
import SwitchyardCore
import SwitchyardSQL

/// Runs `SQLQuery`s on one SQLite connection: UUIDs bound as lowercase text, instants as integer microseconds,
/// booleans as integers (the schema's `STRICT` tables store them so).
struct SQLiteExecutor: SQLExecutor {
    let connection: SQLiteConnection
    var dialect: SQLDialect { .sqlite }

    func query(_ query: SQLQuery) async throws -> [SQLRow] {
        let (sql, binds) = query.render(.sqlite)
        return Self.rows(try await connection.query(sql, binds.map(Self.data)))
    }

    static func data(_ bind: SQLBind) -> SQLiteData {
        switch bind {
        case .integer(let value): value.map { .integer(SQLiteInt64($0)) } ?? .null
        case .double(let value): value.map { .float($0) } ?? .null
        case .text(let value): value.map { .text($0) } ?? .null
        case .uuid(let value): value.map { .text($0.lowercased) } ?? .null
        case .date(let value): value.map { .integer($0.sqlMicroseconds) } ?? .null
        case .bool(let value): value.map { .integer($0 ? 1 : 0) } ?? .null
        }
    }

    static func rows(_ rows: [SQLiteRow]) -> [SQLRow] {
        guard let first = rows.first else { return [] }
        let layout = SQLRow.Layout(names: first.columns.map(\.name))
        return rows.map { row in
            SQLRow(
                layout: layout,
                cells: row.columns.map { column in
                    switch column.data {
                    case .integer(let value): .integer(Int(value))
                    case .float(let value): .double(value)
                    case .text(let value): .text(value)
                    case .blob(let buffer): .bytes(Array(buffer.readableBytesView))
                    case .null: .null
                    }
                })
        }
    }
}

extension SQLiteStorage: SQLStorage {
    public var dialect: SQLDialect { .sqlite }

    /// On the next reader connection, concurrently with the writer.
    public func read(_ query: SQLQuery) async throws -> [SQLRow] {
        let reader = readers[
            nextReader.withLock {
                $0 = ($0 + 1) % readers.count; return $0
            }]
        return try await tracked { try await SQLiteExecutor(connection: reader).query(query) }
    }

    /// On the writer, exclusively, outside a transaction.
    public func write(_ query: SQLQuery) async throws -> [SQLRow] {
        let writer = self.writer
        return try await tracked { try await writeLock.withPermit { try await SQLiteExecutor(connection: writer).query(query) } }
    }

    /// `BEGIN IMMEDIATE … COMMIT` on the writer.
    public func transaction<T: Sendable>(_ body: @Sendable @escaping (any SQLExecutor) async throws -> T) async throws -> T {
        try await tracked { try await Self.transaction(writer: writer, lock: writeLock) { try await body(SQLiteExecutor(connection: $0)) } }
    }

    public func isUniqueViolation(_ error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        return error.reason == .constraint || error.reason == .constraintUniqueFailed || error.reason == .constraintPrimaryKeyFailed
    }
}
