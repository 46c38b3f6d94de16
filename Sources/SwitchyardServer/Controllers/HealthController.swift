import Hummingbird
import SwitchyardCore

/// `/healthz` (the process answers) and `/readyz` (and its database does).
struct HealthController {
    let storage: any SwitchyardStorage

    struct Health: ResponseEncodable {
        let status: String
        var database: String?
    }

    func addRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("healthz") { _, _ in
            Health(status: "ok")
        }
        router.get("readyz") { _, context in
            do {
                guard storage.isReachable else { throw SwitchyardError.unavailable("the listening connection is lost") }
                try await storage.ping()
                return try APIJSON.response(Health(status: "ready", database: storage.backendName))
            } catch {
                context.logger.warning("readiness check failed", metadata: ["error": "\(error)"])
                return try APIJSON.response(
                    ["error_message": "not ready: the \(storage.backendName) database does not answer"], status: .serviceUnavailable
                )
            }
        }
    }
}
