import Foundation
import SwitchyardCore
import SwitchyardTestSupport

/// Yams' tree (`Yams.load`) as JSON: the OpenAPI document is JSON-compatible YAML (maps with string keys, lists,
/// scalars), and the tests read it like any other JSON. Not the server's own converter
/// (`OpenAPIController.jsonValue`, over Yams' node API) on purpose: `openAPIComplete` checks the served JSON against
/// this independent reading of the same file.
func jsonValue(fromYAML value: Any) throws -> JSONValue {
    switch value {
    case let map as [String: Any]: .object(try map.mapValues { try jsonValue(fromYAML: $0) })
    case let list as [Any]: .array(try list.map { try jsonValue(fromYAML: $0) })
    case let text as String: .string(text)
    case let flag as Bool: .bool(flag)
    case let number as Int: .number(JSONNumber(number))
    case let number as Double: .number(JSONNumber(number))
    case is NSNull: .null
    default: throw TestSupportError("\(type(of: value)) is not JSON")
    }
}
