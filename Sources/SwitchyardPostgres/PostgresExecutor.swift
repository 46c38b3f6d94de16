import Foundation
import Logging
import PostgresNIO
import SwitchyardCore
import SwitchyardSQL

/// Runs `SQLQuery`s on one PostgreSQL connection (inside a transaction when `PostgresStorage.transaction` made it).
struct PostgresExecutor: SQLExecutor {
    let connection: PostgresConnection
    let logger: Logger
    var dialect: SQLDialect { .postgres }

    func query(_ query: SQLQuery) async throws -> [SQLRow] {
        try await Self.rows(connection.query(Self.postgresQuery(query), logger: logger).collect())
    }

    static func postgresQuery(_ query: SQLQuery) -> PostgresQuery {
        let (sql, binds) = query.render(.postgres)
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds { append(bind, to: &bindings) }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    static func append(_ bind: SQLBind, to bindings: inout PostgresBindings) {
        switch bind {
        case .integer(let value): bindings.append(value)
        case .double(let value): bindings.append(value)
        case .text(let value): bindings.append(value)
        case .uuid(let value): bindings.append(value)
        case .date(let value): bindings.append(value)
        case .bool(let value): bindings.append(value)
        }
    }

    static func rows(_ rows: [PostgresRow]) throws -> [SQLRow] {
        guard let first = rows.first else { return [] }
        let layout = SQLRow.Layout(names: first.map(\.columnName))
        return try rows.map { row in SQLRow(layout: layout, cells: try row.map(cell)) }
    }

    private static func cell(_ cell: PostgresCell) throws -> SQLCell {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .uuid: return .uuid(try cell.decode(UUID.self))
        case .timestamptz, .timestamp: return .date(try cell.decode(Date.self))
        case .int2, .int4, .int8: return .integer(try cell.decode(Int.self))
        case .float4, .float8: return .double(try cell.decode(Double.self))
        case .bool: return .bool(try cell.decode(Bool.self))
        default: return .text(try cell.decode(String.self))
        }
    }
}

extension PostgresStorage: SQLStorage {
    public var dialect: SQLDialect { .postgres }

    public func read(_ query: SQLQuery) async throws -> [SQLRow] {
        try PostgresExecutor.rows(try await rows(PostgresExecutor.postgresQuery(query)))
    }

    public func write(_ query: SQLQuery) async throws -> [SQLRow] {
        try await read(query)
    }

    /// Rethrows the statement's own error rather than PostgresNIO's wrapper.
    public func transaction<T: Sendable>(_ body: @Sendable @escaping (any SQLExecutor) async throws -> T) async throws -> T {
        let logger = self.logger
        do {
            return try await tracked {
                try await client.withTransaction(logger: logger) { try await body(PostgresExecutor(connection: $0, logger: logger)) }
            }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }

    public func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }
}
