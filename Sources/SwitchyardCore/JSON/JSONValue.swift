import Foundation

/// A JSON document as a value: what request bodies, workflow graphs and parameter values are made of.
///
/// Numbers keep the exact text they were written with, so a 64-bit ComfyUI seed survives a round trip
/// that a `Double` would round. Objects are dictionaries: key order is not significant, and
/// `JSONValue.serialized()` writes keys sorted, which makes the output canonical.
///
/// ```swift
/// let graph = try JSONValue.parse(Array(#"{"6":{"class_type":"CLIPTextEncode","inputs":{"text":"a cat"}}}"#.utf8))
/// let text = graph["6"]?["inputs"]?["text"]?.stringValue   // "a cat"
/// ```
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The member `key` of an object; nil for other values or a missing key.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var numberValue: JSONNumber? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// How the value's type reads in an error message ("a string", "an object", …).
    public var typeDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON number: its literal text (kept for exact round trips) and its value as a `Double` (for comparisons).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number as written in JSON, e.g. `"18446744073709551615"` or `"1.5e3"`.
    public let text: String
    public let doubleValue: Double

    /// A number parsed from JSON text that the parser has already checked for JSON number syntax.
    init(validatedText text: String) {
        self.init(text: text, doubleValue: Double(text) ?? .nan)
    }

    private init(text: String, doubleValue: Double) {
        self.text = text
        self.doubleValue = doubleValue
    }

    public init(_ value: Int) {
        self.init(text: String(value), doubleValue: Double(value))
    }

    /// A finite double; non-finite values cannot be written in JSON and become 0.
    public init(_ value: Double) {
        guard value.isFinite else {
            self.init(0)
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            self.init(Int(value))
        } else {
            self.init(text: "\(value)", doubleValue: value)
        }
    }

    /// The value as an `Int` when it is a whole number in range.
    public var intValue: Int? {
        if let exact = Int(text) { return exact }
        guard doubleValue == doubleValue.rounded() else { return nil }
        return Int(exactly: doubleValue)
    }

    public var description: String { text }

    // Two spellings of one number (`1` and `1.0`) are equal: equality follows the value, not the text.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        lhs.text == rhs.text || lhs.comparisonKey == rhs.comparisonKey
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(comparisonKey)
    }

    private enum ComparisonKey: Hashable {
        case integer(Int)
        case double(Double)
        case text(String)
    }

    /// Whole numbers compare as integers (exact up to 64 bits); others as doubles; beyond both, by their text.
    private var comparisonKey: ComparisonKey {
        if let integer = intValue { return .integer(integer) }
        if abs(doubleValue) < 9.007_199_254_740_992e15 { return .double(doubleValue) }
        return .text(text)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: Encodable {
    /// Encodes through `Encoder` for DTOs that embed JSON. Numbers keep their value exactly — whole numbers as
    /// integers, others as `Decimal` (38 digits; `JSONEncoder` writes it digit for digit) — though not their text
    /// (`7.50` is written `7.5`); `serialized()` keeps the text too.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let number):
            if let integer = Int(number.text) {
                try container.encode(integer)
            } else if let unsigned = UInt64(number.text) {
                try container.encode(unsigned)
            } else if let decimal = Decimal(string: number.text, locale: Locale(identifier: "en_US_POSIX")), decimal.isFinite {
                try container.encode(decimal)
            } else {
                try container.encode(number.doubleValue)
            }
        case .string(let value): try container.encode(value)
        case .array(let elements): try container.encode(elements)
        case .object(let members): try container.encode(members)
        }
    }
}

extension JSONValue: Decodable {
    /// Decodes through `Decoder` for DTOs that embed JSON. A `Decoder` hands numbers over as `Int`, `UInt64` or
    /// `Double`, so a number's text is what that type prints; `JSONValue.parse` keeps the text as written.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .number(JSONNumber(value))
        } else if let value = try? container.decode(UInt64.self) {
            self = .number(JSONNumber(validatedText: String(value)))
        } else if let value = try? container.decode(Double.self) {
            self = .number(JSONNumber(value))
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
