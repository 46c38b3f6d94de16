import HTTPTypes
import Hummingbird

/// Authenticates every request of a route group for one access surface and stores the `Caller` in the context.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SwitchyardRequestContext
    let authenticator: Authenticator
    let surface: AccessSurface

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let caller = try await authenticator.authenticate(request, surface: surface)
        context.caller = caller
        if let teamId = caller.teamId { context.logger[metadataKey: "team_id"] = "\(teamId.lowercased)" }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let teamID = Self("X-Team-ID")!
    static let requestID = Self("X-Request-ID")!
}
