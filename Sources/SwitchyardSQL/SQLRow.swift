import Foundation
import SwitchyardCore

/// One value of a result row, as the backend returned it: SQLite stores UUIDs as text, dates as integer
/// microseconds and booleans as integers; PostgreSQL returns them typed. `SQLRow`'s accessors accept both.
public enum SQLCell: Sendable, Equatable {
    case null
    case integer(Int)
    case double(Double)
    case text(String)
    case uuid(UUID)
    case date(Date)
    case bool(Bool)
    case bytes([UInt8])
}

/// A stored value that does not have the shape its column promises (a corrupt or foreign database).
public struct SQLDecodingError: Error, CustomStringConvertible {
    public let column: String

    public init(column: String) {
        self.column = column
    }

    public var description: String { "column \(column) holds an unexpected value" }
}

/// A result row whose columns are read by name, whichever backend produced it.
public struct SQLRow: Sendable {
    /// Where each column of a result stands: made once per result and shared by its rows, so reading a column is
    /// one hash lookup (a task row has 31 columns, read by name).
    public final class Layout: Sendable {
        let positions: [String: Int]

        public init(names: [String]) {
            positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    let layout: Layout
    let cells: [SQLCell]

    public init(layout: Layout, cells: [SQLCell]) {
        self.layout = layout
        self.cells = cells
    }

    public func cell(_ name: String) -> SQLCell {
        guard let index = layout.positions[name] else { return .null }
        return cells[index]
    }

    public func isNull(_ name: String) -> Bool { cell(name) == .null }

    public func optionalString(_ name: String) throws -> String? {
        switch cell(name) {
        case .null: return nil
        case .text(let value): return value
        default: throw SQLDecodingError(column: name)
        }
    }

    public func optionalInt(_ name: String) throws -> Int? {
        switch cell(name) {
        case .null: return nil
        case .integer(let value): return value
        default: throw SQLDecodingError(column: name)
        }
    }

    public func optionalDouble(_ name: String) throws -> Double? {
        switch cell(name) {
        case .null: return nil
        case .double(let value): return value
        case .integer(let value): return Double(value)
        default: throw SQLDecodingError(column: name)
        }
    }

    public func optionalUUID(_ name: String) throws -> UUID? {
        switch cell(name) {
        case .null: return nil
        case .uuid(let value): return value
        case .text(let text):
            guard let value = UUID(text: text) else { throw SQLDecodingError(column: name) }
            return value
        default: throw SQLDecodingError(column: name)
        }
    }

    public func optionalDate(_ name: String) throws -> Date? {
        switch cell(name) {
        case .null: return nil
        case .date(let value): return value
        case .integer(let microseconds): return Date(sqlMicroseconds: microseconds)
        default: throw SQLDecodingError(column: name)
        }
    }

    public func optionalBool(_ name: String) throws -> Bool? {
        switch cell(name) {
        case .null: return nil
        case .bool(let value): return value
        case .integer(let value): return value != 0
        default: throw SQLDecodingError(column: name)
        }
    }

    public func string(_ name: String) throws -> String { try required(name, optionalString(name)) }
    public func int(_ name: String) throws -> Int { try required(name, optionalInt(name)) }
    public func double(_ name: String) throws -> Double { try required(name, optionalDouble(name)) }
    public func uuid(_ name: String) throws -> UUID { try required(name, optionalUUID(name)) }
    public func date(_ name: String) throws -> Date { try required(name, optionalDate(name)) }
    public func bool(_ name: String) throws -> Bool { try required(name, optionalBool(name)) }

    /// A string column holding one of an enum's raw values.
    public func value<E: RawRepresentable>(_ name: String, as type: E.Type = E.self) throws -> E where E.RawValue == String {
        guard let value = E(rawValue: try string(name)) else { throw SQLDecodingError(column: name) }
        return value
    }

    private func required<T>(_ name: String, _ value: T?) throws -> T {
        guard let value else { throw SQLDecodingError(column: name) }
        return value
    }
}

extension Date {
    /// SQLite stores instants as integer microseconds since 1970 (PostgreSQL's `timestamptz` resolution).
    public init(sqlMicroseconds value: Int) {
        self.init(timeIntervalSince1970: Double(value) / 1_000_000)
    }

    public var sqlMicroseconds: Int { Int((timeIntervalSince1970 * 1_000_000).rounded()) }
}
