import Foundation
import Hummingbird
import NIOCore

/// Serves `docs/openapi.yaml` (bundled as a resource) at `/api/v1/openapi.yaml`.
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

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
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
