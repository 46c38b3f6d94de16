/// Reads typed fields out of a JSON object, turning every problem into a `SwitchyardError.invalid` whose
/// message names the field (with its path, e.g. `parameters[2].min`) and the rule it breaks.
///
/// A field that is absent or `null` reads as nil; required fields say so.
public struct JSONFields: Sendable {
    public let members: [String: JSONValue]
    /// Prefix of the field names in messages (`"parameters[2]."`), empty at the top level.
    public let path: String

    public init(_ members: [String: JSONValue], path: String = "") {
        self.members = members
        self.path = path
    }

    /// Reads `value` as an object, or fails naming `name` (the field path, e.g. `parameters[2]`).
    public init(object value: JSONValue, name: String) throws(SwitchyardError) {
        guard case .object(let members) = value else {
            throw .invalid("field \"\(name)\" must be a JSON object, not \(value.typeDescription)")
        }
        self.init(members, path: name + ".")
    }

    /// Reads a request body, which must be a JSON object.
    public init(body value: JSONValue) throws(SwitchyardError) {
        guard case .object(let members) = value else {
            throw .invalid("request body must be a JSON object, not \(value.typeDescription)")
        }
        self.init(members)
    }

    public func name(_ key: String) -> String { "field \"\(path)\(key)\"" }

    /// Whether the field is present and not null.
    public func has(_ key: String) -> Bool {
        guard let value = members[key] else { return false }
        return !value.isNull
    }

    public func value(_ key: String) -> JSONValue? {
        guard let value = members[key], !value.isNull else { return nil }
        return value
    }

    public func required<T>(_ key: String, _ read: (String) throws(SwitchyardError) -> T?) throws(SwitchyardError) -> T {
        guard let value = try read(key) else { throw .invalid("\(name(key)) is required") }
        return value
    }

    public func string(_ key: String) throws(SwitchyardError) -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let string) = value else { throw .invalid("\(name(key)) must be a string, not \(value.typeDescription)") }
        return string
    }

    /// A string whose length (in characters, after trimming surrounding whitespace when `trim`) lies in `length`.
    public func string(_ key: String, length: ClosedRange<Int>, trim: Bool = false) throws(SwitchyardError) -> String? {
        guard var string = try string(key) else { return nil }
        if trim { string = string.trimmingWhitespace() }
        let count = string.count
        if count < length.lowerBound {
            throw .invalid(
                length.lowerBound == 1 ? "\(name(key)) must not be empty" : "\(name(key)) must be at least \(length.lowerBound) characters long")
        }
        if count > length.upperBound {
            throw .invalid("\(name(key)) is \(count) characters long; the maximum is \(length.upperBound)")
        }
        return string
    }

    public func bool(_ key: String) throws(SwitchyardError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let bool) = value else { throw .invalid("\(name(key)) must be a boolean, not \(value.typeDescription)") }
        return bool
    }

    public func number(_ key: String) throws(SwitchyardError) -> JSONNumber? {
        guard let value = value(key) else { return nil }
        guard case .number(let number) = value else { throw .invalid("\(name(key)) must be a number, not \(value.typeDescription)") }
        return number
    }

    /// A whole number inside `range`.
    public func integer(_ key: String, range: ClosedRange<Int>) throws(SwitchyardError) -> Int? {
        guard let number = try number(key) else { return nil }
        guard let integer = number.intValue else { throw .invalid("\(name(key)) must be an integer, not \(number)") }
        guard range.contains(integer) else {
            throw .invalid("\(name(key)): \(integer) is outside \(range.lowerBound)–\(range.upperBound)")
        }
        return integer
    }

    public func array(_ key: String, maxCount: Int) throws(SwitchyardError) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let elements) = value else { throw .invalid("\(name(key)) must be an array, not \(value.typeDescription)") }
        guard elements.count <= maxCount else {
            throw .invalid("\(name(key)) has \(elements.count) items; the maximum is \(maxCount)")
        }
        return elements
    }

    /// An array of strings, each checked by `validate` (which returns a rule text on failure).
    public func stringArray(
        _ key: String, maxCount: Int, validate: (String) -> String? = { _ in nil }
    ) throws(SwitchyardError) -> [String]? {
        guard let elements = try array(key, maxCount: maxCount) else { return nil }
        var strings: [String] = []
        for (position, element) in elements.enumerated() {
            guard case .string(let string) = element else {
                throw .invalid("field \"\(path)\(key)[\(position)]\" must be a string, not \(element.typeDescription)")
            }
            if let rule = validate(string) {
                throw .invalid("field \"\(path)\(key)[\(position)]\": \"\(string)\" \(rule)")
            }
            strings.append(string)
        }
        return strings
    }

    /// A string that must be the raw value of `E`.
    public func enumeration<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws(SwitchyardError) -> E?
    where E.RawValue == String {
        guard let raw = try string(key) else { return nil }
        guard let value = E(rawValue: raw) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalid("\(name(key)): \"\(raw)\" is not one of \(allowed)")
        }
        return value
    }
}

extension String {
    /// The string without leading and trailing whitespace and newlines (Foundation-free).
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
