import Foundation
import SQLiteNIO
import SwitchyardCore

/// A stored value that does not have the shape its column promises (a corrupt or foreign database).
struct SQLiteDecodingError: Error, CustomStringConvertible {
    let column: String
    var description: String { "SQLite column \(column) holds an unexpected value" }
}

extension SQLiteRow {
    func string(_ name: String) throws -> String {
        guard let value = column(name)?.string else { throw SQLiteDecodingError(column: name) }
        return value
    }

    func optionalString(_ name: String) -> String? {
        guard let data = column(name), !data.isNull else { return nil }
        return data.string
    }

    func int(_ name: String) throws -> Int {
        guard let value = column(name)?.integer else { throw SQLiteDecodingError(column: name) }
        return Int(value)
    }

    func uuid(_ name: String) throws -> UUID {
        guard let value = UUID(text: try string(name)) else { throw SQLiteDecodingError(column: name) }
        return value
    }

    func optionalUUID(_ name: String) throws -> UUID? {
        guard let text = optionalString(name) else { return nil }
        guard let value = UUID(text: text) else { throw SQLiteDecodingError(column: name) }
        return value
    }

    func date(_ name: String) throws -> Date {
        Date(sqliteMicroseconds: try int(name))
    }

    func optionalDate(_ name: String) -> Date? {
        guard let data = column(name), !data.isNull, let value = data.integer else { return nil }
        return Date(sqliteMicroseconds: Int(value))
    }
}

extension Date {
    init(sqliteMicroseconds value: Int) {
        self.init(timeIntervalSince1970: Double(value) / 1_000_000)
    }

    var sqliteMicroseconds: Int { Int((timeIntervalSince1970 * 1_000_000).rounded()) }
}

extension SQLiteData {
    static func uuid(_ value: UUID) -> SQLiteData { .text(value.lowercased) }
    static func uuid(_ value: UUID?) -> SQLiteData { value.map { .text($0.lowercased) } ?? .null }
    static func date(_ value: Date) -> SQLiteData { .integer(value.sqliteMicroseconds) }
    static func date(_ value: Date?) -> SQLiteData { value.map { .integer($0.sqliteMicroseconds) } ?? .null }
}
