/// One typed, user-facing input of a workflow (api.md §2.1 `ParameterDef`): the key callers send in
/// `parameters`, the rules its value must follow, and where the value goes in the definition (`node_id` +
/// `field` for ComfyUI, `target_path` for Nerfstudio).
public struct ParameterDefinition: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case string, number, boolean, select, file
    }

    /// At most this many parameters per workflow (and keys per run request, api.md §3.12).
    public static let maximumCount = 100
    /// The longest `string` value a run may send, in UTF-8 bytes (a prompt is a few hundred; 64 KiB leaves room for
    /// long ones without letting a run store megabytes in every task row).
    public static let maximumStringLength = 65_536

    public var key: String
    public var kind: Kind
    public var label: String
    public var description: String?
    public var isRequired: Bool
    public var defaultValue: JSONValue?
    public var minimum: JSONNumber?
    public var maximum: JSONNumber?
    public var options: [JSONValue]?
    public var accept: [String]?
    public var nodeId: String?
    public var field: String?
    public var targetPath: String?
    /// Stored and returned as given; the docs do not say what it means (api.md §7).
    public var sourceKey: String?

    public init(
        key: String, kind: Kind, label: String? = nil, description: String? = nil, isRequired: Bool = false,
        defaultValue: JSONValue? = nil, minimum: JSONNumber? = nil, maximum: JSONNumber? = nil, options: [JSONValue]? = nil,
        accept: [String]? = nil, nodeId: String? = nil, field: String? = nil, targetPath: String? = nil, sourceKey: String? = nil
    ) {
        self.key = key
        self.kind = kind
        self.label = label ?? key
        self.description = description
        self.isRequired = isRequired
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.maximum = maximum
        self.options = options
        self.accept = accept
        self.nodeId = nodeId
        self.field = field
        self.targetPath = targetPath
        self.sourceKey = sourceKey
    }

    /// Checks a value against this parameter's type and constraints; returns the broken rule, or nil.
    /// `file` values are checked for shape by `fileKeyRule` (which knows the caller's team).
    public func violation(of value: JSONValue, fileKeyRule: (String) -> String? = { _ in nil }) -> String? {
        switch kind {
        case .string:
            guard case .string(let text) = value else { return "must be a string, not \(value.typeDescription)" }
            guard text.utf8.count <= Self.maximumStringLength else {
                return "is \(text.utf8.count) bytes long; the maximum is \(Self.maximumStringLength)"
            }
            guard !text.utf8.contains(0) else { return "must not contain NUL (\\u0000)" }
        case .boolean:
            guard case .bool = value else { return "must be a boolean, not \(value.typeDescription)" }
        case .number:
            guard case .number(let number) = value else { return "must be a number, not \(value.typeDescription)" }
            if let minimum, number.doubleValue < minimum.doubleValue { return "\(number) is below min \(minimum)" }
            if let maximum, number.doubleValue > maximum.doubleValue { return "\(number) is above max \(maximum)" }
        case .select:
            let options = self.options ?? []
            guard options.contains(value) else {
                return "\(value.jsonString) is not one of the options \(JSONValue.array(options).jsonString)"
            }
        case .file:
            guard case .string(let fileKey) = value else {
                return "must be a file_key string from POST /r/files/presign, not \(value.typeDescription)"
            }
            return fileKeyRule(fileKey)
        }
        return nil
    }

    /// The parameter as the API shows it: absent optional fields are left out.
    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "key": .string(key), "type": .string(kind.rawValue), "label": .string(label), "required": .bool(isRequired),
        ]
        if let description { members["description"] = .string(description) }
        if let defaultValue { members["default"] = defaultValue }
        if let minimum { members["min"] = .number(minimum) }
        if let maximum { members["max"] = .number(maximum) }
        if let options { members["options"] = .array(options) }
        if let accept { members["accept"] = .array(accept.map(JSONValue.string)) }
        if let nodeId { members["node_id"] = .string(nodeId) }
        if let field { members["field"] = .string(field) }
        if let targetPath { members["target_path"] = .string(targetPath) }
        if let sourceKey { members["source_key"] = .string(sourceKey) }
        return .object(members)
    }
}

extension ParameterDefinition {
    /// Keys: letters, digits, `_`, `-` and `.`, 1–100 characters, starting with a letter or `_`.
    static func keyRule(_ key: String) -> String? {
        guard !key.isEmpty else { return "must not be empty" }
        guard key.utf8.count <= 100 else { return "is longer than 100 characters" }
        let bytes = Array(key.utf8)
        func isLetter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
        }
        guard isLetter(bytes[0]) || bytes[0] == UInt8(ascii: "_") else { return "must start with a letter or _" }
        let allowed = bytes.allSatisfy {
            isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
                || $0 == UInt8(ascii: ".")
        }
        return allowed ? nil : "may contain only letters, digits, _, - and ."
    }

    /// A MIME pattern of `accept`: `type/subtype`, `type/*` or `*/*`.
    static func mimePatternRule(_ pattern: String) -> String? {
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, pattern.utf8.count <= 255 else {
            return "is not a MIME pattern like image/png or image/*"
        }
        let token = { (part: Substring) in
            part.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ",") }
        }
        guard token(parts[0]), token(parts[1]) else { return "is not a MIME pattern like image/png or image/*" }
        if parts[0] == "*" && parts[1] != "*" { return "is not a MIME pattern like image/png or image/*" }
        return nil
    }

    /// Whether `mimeType` (e.g. `image/png; charset=…`) matches one of the `accept` patterns.
    public func accepts(mimeType: String) -> Bool {
        guard let accept, !accept.isEmpty else { return true }
        let essence = mimeType.split(separator: ";").first.map { String($0).trimmingWhitespace().lowercased() } ?? ""
        let parts = essence.split(separator: "/")
        guard parts.count == 2 else { return false }
        return accept.contains { pattern in
            let wanted = pattern.lowercased().split(separator: "/")
            return (wanted[0] == "*" || wanted[0] == parts[0]) && (wanted[1] == "*" || wanted[1] == parts[1])
        }
    }

    /// Reads and checks one entry of a workflow's `parameters` array (`position` is its index, for messages).
    /// Rules: a known type; type-specific fields only on their type; `min` ≤ `max`; non-empty, distinct,
    /// scalar `options`; a default only on optional parameters and one that itself passes the rules.
    static func parse(_ value: JSONValue, position: Int, toolType: ToolType) throws(SwitchyardError) -> ParameterDefinition {
        let fields = try JSONFields(object: value, name: "parameters[\(position)]")
        let key = try fields.required("key") { (key) throws(SwitchyardError) in try fields.string(key) }
        if let rule = keyRule(key) { throw .invalid("\(fields.name("key")): \"\(key)\" \(rule)") }
        let named = "parameter \"\(key)\""
        let kind = try fields.required("type") { (key) throws(SwitchyardError) in try fields.enumeration(key, Kind.self) }

        for (field, allowedKind) in [("min", Kind.number), ("max", .number), ("options", .select), ("accept", .file)]
        where fields.has(field) && kind != allowedKind {
            throw .invalid("\(named): field \"\(field)\" is only allowed for type \(allowedKind.rawValue), not \(kind.rawValue)")
        }
        var definition = ParameterDefinition(
            key: key, kind: kind, label: try fields.string("label", length: 1...255, trim: true),
            description: try fields.string("description", length: 0...2000), isRequired: try fields.bool("required") ?? false,
            minimum: try fields.number("min"), maximum: try fields.number("max"), sourceKey: try fields.string("source_key", length: 1...100)
        )
        if let minimum = definition.minimum, let maximum = definition.maximum, minimum.doubleValue > maximum.doubleValue {
            throw .invalid("\(named): min \(minimum) is greater than max \(maximum)")
        }
        if kind == .select {
            guard let options = try fields.array("options", maxCount: 1000), !options.isEmpty else {
                throw .invalid("\(named): type select needs a non-empty \"options\" array")
            }
            for option in options {
                switch option {
                case .string, .number, .bool: continue
                default: throw .invalid("\(named): options must be strings, numbers or booleans, not \(option.typeDescription)")
                }
            }
            guard Set(options).count == options.count else { throw .invalid("\(named): options must be distinct") }
            definition.options = options
        }
        if kind == .file {
            definition.accept = try fields.stringArray("accept", maxCount: 50, validate: mimePatternRule)
        }

        switch toolType {
        case .comfyui:
            if fields.has("target_path") {
                throw .invalid("\(named): field \"target_path\" is for nerfstudio workflows; comfyui parameters use node_id and field")
            }
            definition.nodeId = try fields.string("node_id", length: 1...100)
            definition.field = try fields.string("field", length: 1...255)
            guard definition.nodeId != nil, definition.field != nil else {
                throw .invalid("\(named): comfyui parameters need \"node_id\" and \"field\" (where the value is injected)")
            }
        case .nerfstudio:
            if fields.has("node_id") || fields.has("field") {
                throw .invalid("\(named): fields \"node_id\" and \"field\" are for comfyui workflows; nerfstudio parameters use target_path")
            }
            definition.targetPath = try fields.string("target_path", length: 1...500)
            guard definition.targetPath != nil else {
                throw .invalid("\(named): nerfstudio parameters need \"target_path\" (a dotted path into the pipeline spec)")
            }
        }

        if let defaultValue = fields.value("default") {
            if definition.isRequired {
                throw .invalid("\(named): a required parameter cannot have a default (defaults apply only when the key is omitted)")
            }
            if kind == .file {
                throw .invalid("\(named): file parameters cannot have a default; callers upload a file for each run")
            }
            if let rule = definition.violation(of: defaultValue) {
                throw .invalid("\(named): default \(rule)")
            }
            definition.defaultValue = defaultValue
        }
        return definition
    }
}
