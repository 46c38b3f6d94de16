import Foundation
import Hummingbird
import NIOCore
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

    /// The document as JSON, or nil when it is not bundled.
    static let json: Data? = {
        guard let document, let object = try? Yams.load(yaml: document) else { return nil }
        return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }()

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
