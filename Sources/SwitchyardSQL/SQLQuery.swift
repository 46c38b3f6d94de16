import Foundation

/// A value bound to a statement's placeholder. Nulls keep their type: PostgreSQL needs it to plan `$1 IS NULL`.
public enum SQLBind: Sendable, Equatable {
    case integer(Int?)
    case double(Double?)
    case text(String?)
    case uuid(UUID?)
    case date(Date?)
    case bool(Bool?)
}

/// A Swift value that can be bound to a placeholder (`\(value)` in an `SQLQuery`).
public protocol SQLBindable: Sendable {
    var sqlBind: SQLBind { get }
    /// The typed null of this type (what `Optional.none` binds).
    static var sqlNull: SQLBind { get }
}

extension Int: SQLBindable {
    public var sqlBind: SQLBind { .integer(self) }
    public static var sqlNull: SQLBind { .integer(nil) }
}

extension Double: SQLBindable {
    public var sqlBind: SQLBind { .double(self) }
    public static var sqlNull: SQLBind { .double(nil) }
}

extension String: SQLBindable {
    public var sqlBind: SQLBind { .text(self) }
    public static var sqlNull: SQLBind { .text(nil) }
}

extension UUID: SQLBindable {
    public var sqlBind: SQLBind { .uuid(self) }
    public static var sqlNull: SQLBind { .uuid(nil) }
}

extension Date: SQLBindable {
    public var sqlBind: SQLBind { .date(self) }
    public static var sqlNull: SQLBind { .date(nil) }
}

extension Bool: SQLBindable {
    public var sqlBind: SQLBind { .bool(self) }
    public static var sqlNull: SQLBind { .bool(nil) }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlBind: SQLBind { self?.sqlBind ?? Wrapped.sqlNull }
    public static var sqlNull: SQLBind { Wrapped.sqlNull }
}

/// The SQL both backends speak, with the few places they differ.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres
}

/// A row lock taken by a `SELECT` inside a transaction. SQLite needs none: its writer holds the whole database.
public enum SQLRowLock: Sendable {
    case forUpdate
    /// Locks only the rows of `table` (an alias) in a join.
    case forUpdateOf(String)
    /// Locks the rows of `table` that no other transaction holds and skips the rest (work queues).
    case forUpdateSkipLocked(of: String)

    func sql(_ dialect: SQLDialect) -> String {
        guard dialect == .postgres else { return "" }
        switch self {
        case .forUpdate: return "FOR UPDATE"
        case .forUpdateOf(let table): return "FOR UPDATE OF \(table)"
        case .forUpdateSkipLocked(let table): return "FOR UPDATE OF \(table) SKIP LOCKED"
        }
    }
}

/// A statement written once for both dialects: interpolated values become bound parameters (never text in the
/// SQL), `raw:` splices SQL the code itself wrote (column lists), and a row lock renders per dialect.
///
/// ```swift
/// let query: SQLQuery = "SELECT \(raw: columns) FROM tasks WHERE id = \(id) AND team_id = \(teamId) \(lock: .forUpdate)"
/// let (sql, binds) = query.render(.postgres)   // "… WHERE id = $1 AND team_id = $2 FOR UPDATE"
/// ```
public struct SQLQuery: Sendable, ExpressibleByStringInterpolation {
    enum Piece: Sendable {
        case sql(String)
        case bind(SQLBind)
        case lock(SQLRowLock)
    }

    var pieces: [Piece]

    public init(stringLiteral value: String) {
        pieces = [.sql(value)]
    }

    public init(stringInterpolation: StringInterpolation) {
        pieces = stringInterpolation.pieces
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var pieces: [Piece] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            pieces.reserveCapacity(2 * interpolationCount + 1)
        }

        public mutating func appendLiteral(_ literal: String) {
            if !literal.isEmpty { pieces.append(.sql(literal)) }
        }

        /// Binds `value` to a placeholder.
        public mutating func appendInterpolation(_ value: some SQLBindable) {
            pieces.append(.bind(value.sqlBind))
        }

        /// Splices SQL written by the code itself (never input).
        public mutating func appendInterpolation(raw sql: String) {
            pieces.append(.sql(sql))
        }

        /// Splices another statement fragment with its binds.
        public mutating func appendInterpolation(_ query: SQLQuery) {
            pieces += query.pieces
        }

        /// `(?, ?, …)`: one placeholder per value, for `IN`. The list must not be empty.
        public mutating func appendInterpolation(list values: [some SQLBindable]) {
            precondition(!values.isEmpty, "an SQL list needs at least one value")
            appendInterpolation(values: values)
        }

        /// `(?, ?, …)` for one row of an `INSERT`, values of any bindable types.
        public mutating func appendInterpolation(values: [any SQLBindable]) {
            appendInterpolation(binds: values.map(\.sqlBind))
        }

        /// `(?, ?, …)` for values already bound.
        public mutating func appendInterpolation(binds: [SQLBind]) {
            pieces.append(.sql("("))
            for (index, bind) in binds.enumerated() {
                if index > 0 { pieces.append(.sql(", ")) }
                pieces.append(.bind(bind))
            }
            pieces.append(.sql(")"))
        }

        public mutating func appendInterpolation(lock: SQLRowLock) {
            pieces.append(.lock(lock))
        }
    }

    /// The statement's text with the dialect's placeholders (`?` or `$n`), and its binds in order.
    public func render(_ dialect: SQLDialect) -> (sql: String, binds: [SQLBind]) {
        var sql = ""
        var binds: [SQLBind] = []
        binds.reserveCapacity(pieces.count / 2)
        for piece in pieces {
            switch piece {
            case .sql(let text):
                sql += text
            case .bind(let value):
                binds.append(value)
                sql += dialect == .sqlite ? "?" : "$\(binds.count)"
            case .lock(let lock):
                sql += lock.sql(dialect)
            }
        }
        return (sql, binds)
    }

    /// Joins fragments with `separator` (`, ` between rows of a multi-row `INSERT`).
    public static func joined(_ queries: [SQLQuery], separator: String) -> SQLQuery {
        var result = SQLQuery(stringLiteral: "")
        result.pieces = []
        for (index, query) in queries.enumerated() {
            if index > 0 { result.pieces.append(.sql(separator)) }
            result.pieces += query.pieces
        }
        return result
    }
}
