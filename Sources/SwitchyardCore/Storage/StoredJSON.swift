/// How storage backends keep small JSON-shaped columns (labels, parameters, outputs): canonical JSON text.
public enum StoredJSON {
    public static func text(_ strings: [String]) -> String {
        JSONValue.array(strings.map(JSONValue.string)).jsonString
    }

    public static func text(_ object: [String: JSONValue]) -> String {
        JSONValue.object(object).jsonString
    }

    public static func strings(_ text: String) throws -> [String] {
        guard case .array(let elements) = try JSONValue.parse(text) else { throw StoredJSONError(expected: "an array of strings") }
        return try elements.map { element in
            guard case .string(let string) = element else { throw StoredJSONError(expected: "an array of strings") }
            return string
        }
    }

    public static func object(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let members) = try JSONValue.parse(text) else { throw StoredJSONError(expected: "an object") }
        return members
    }
}

/// A stored JSON column does not have the shape its schema promises.
public struct StoredJSONError: Error, CustomStringConvertible {
    public let expected: String
    public var description: String { "stored JSON is not \(expected)" }
}
