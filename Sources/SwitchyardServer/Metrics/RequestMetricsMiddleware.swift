import Hummingbird

/// Counts and times every API request by method, route pattern and status (`switchyard_http_requests_total`,
/// `switchyard_http_request_duration_seconds`). It is the outermost middleware, so it sees the status the error
/// middleware answered with; a request no route matched is counted under the router's route `NotFound`.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = SwitchyardRequestContext

    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        metrics.requestStarted()
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.requestFinished(
                method: request.method, route: context.endpointPath ?? "unmatched", status: response.status, duration: .now - started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            metrics.requestFinished(method: request.method, route: context.endpointPath ?? "unmatched", status: status, duration: .now - started)
            throw error
        }
    }
}
