import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore
import Yams

/// Serves `docs/openapi.yaml` (bundled as a resource) at `/api/v1/openapi.yaml`, and the same document as JSON at
/// `/api/v1/openapi.json` (parsed once, at the first request).
struct OpenAPIController {
    /// The document, or nil when the binary was copied without its resource bundle.
    static let document: String? = {
        let bundleName = "Switchyard_SwitchyardServer.resources"
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent(bundleName),
            URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent().appendingPathComponent(bundleName),
        ]
        for directory in candidates {
            if let text = try? String(contentsOf: directory.appendingPathComponent("openapi.yaml"), encoding: .utf8) { return text }
        }
        return nil
    }()

    /// The document as compact, key-sorted JSON, or nil when it is not bundled.
    static let json: [UInt8]? = {
        guard let document, let node = try? Yams.compose(yaml: document) else { return nil }
        return jsonValue(node)?.serialized()
    }()

    /// A YAML node as JSON: scalars by the types YAML resolves them to (null, booleans, integers, numbers, else
    /// strings); mapping keys as text.
    static func jsonValue(_ node: Node) -> JSONValue? {
        switch node {
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let key = key.string, let value = jsonValue(value) else { return nil }
                members[key] = value
            }
            return .object(members)
        case .sequence(let sequence):
            let items = sequence.compactMap(jsonValue)
            return items.count == sequence.count ? .array(items) : nil
        case .scalar(let scalar):
            if scalar.style == .plain || scalar.style == .any {
                if node.null != nil { return .null }
                if let flag = node.bool { return .bool(flag) }
                if let integer = node.int { return .number(JSONNumber(integer)) }
                if let number = node.float, number.isFinite { return .number(JSONNumber(number)) }
            }
            return .string(scalar.string)
        case .alias:
            return nil
        }
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get("openapi.json") { _, _ in
            guard let json = Self.json else {
                return try APIJSON.response(["error_message": "openapi.yaml is not bundled with this binary"], status: .notFound)
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        group.get("openapi.yaml") { _, _ in
            guard let document = Self.document else {
                return try APIJSON.response(["error_message": "openapi.yaml is not bundled with this binary"], status: .notFound)
            }
            return Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: document))
            )
        }
    }
}
