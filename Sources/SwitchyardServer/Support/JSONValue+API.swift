import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore

/// The API's forms of dates, ids and lists inside the `JSONValue` documents `Presenters` builds.
extension JSONValue {
    static func date(_ date: Date?) -> JSONValue {
        date.map { .string(RFC3339.format($0)) } ?? .null
    }

    static func uuid(_ id: UUID?) -> JSONValue {
        id.map { .string($0.lowercased) } ?? .null
    }

    static func integer(_ value: Int) -> JSONValue {
        .number(JSONNumber(value))
    }

    static func strings(_ values: [String]?) -> JSONValue {
        values.map { .array($0.map(JSONValue.string)) } ?? .null
    }
}

extension Parameters {
    /// A UUID path parameter; a malformed one is a 400 naming the parameter.
    func requireUUID(_ name: String) throws -> UUID {
        let raw = try require(name)
        guard let id = UUID(text: raw) else { throw SwitchyardError.invalid("\(name): \"\(raw)\" is not a UUID") }
        return id
    }
}
