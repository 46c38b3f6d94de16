import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore

/// The outermost middleware: gives each request an id (echoed as `X-Request-ID`, put in every log line), maps
/// every error to the API's body `{"error_message": "..."}` — domain errors render themselves (`HTTPResponseError`);
/// here: the router's 404/405, body limits,
/// and unknown errors as an opaque 500 that carries only the request id — and counts and times every request by
/// method, route pattern and the status it answered (`metrics`; here rather than in a middleware of its own, which
/// cost one more async hop per request).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = SwitchyardRequestContext
    let routes: @Sendable () -> RouteTable
    /// Whether an error says the database cannot be reached now (503 rather than 500).
    var unavailable: @Sendable (any Error) -> Bool = { _ in false }
    /// False while the database is known to be down: API requests are answered 503 without waiting for it.
    var reachable: @Sendable () -> Bool = { true }
    /// `switchyard_http_requests_total` and `…_duration_seconds`; a request no route matched counts under the
    /// router's route `NotFound`.
    var metrics: ServerMetrics?
    /// `http.maxBodySize`: what request bodies are read up to (`context.maxUploadSize`).
    var maxBodySize = ServerConfiguration().maxBodySize

    static let unavailableMessage =
        "the database is unavailable for the moment; try again shortly (a submission that got this answer may not have been "
        + "stored: resend it with the same Idempotency-Key to be sure it runs once)"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        metrics?.requestStarted()
        let started = ContinuousClock.now
        var context = context
        let requestID = Self.requestID(from: request)
        context.requestID = requestID
        context.maxUploadSize = maxBodySize
        context.logger[metadataKey: "request_id"] = "\(requestID)"
        var response: Response
        do {
            guard reachable() || !request.uri.path.hasPrefix("/api/") else { throw SwitchyardError.unavailable(Self.unavailableMessage) }
            response = try await next(request, context)
        } catch {
            response = errorResponse(for: error, request: request, context: context)
        }
        response.headers[.requestID] = requestID
        metrics?.requestFinished(method: request.method, route: context.endpointPath ?? "NotFound", status: response.status, duration: .now - started)
        return response
    }

    /// Accepts a caller's id when it is short and plain, so traces can be joined across services.
    static func requestID(from request: Request) -> String {
        if let sent = request.headers[.requestID], (1...64).contains(sent.count),
            sent.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        {
            return sent
        }
        return UUIDv7.make(at: Date()).lowercased
    }

    private func errorResponse(for error: any Error, request: Request, context: Context) -> Response {
        var headers = HTTPFields()
        let status: HTTPResponse.Status
        let message: String
        switch error {
        case is NIOTooManyBytesError:
            status = .contentTooLarge
            message = "request body is too large"
        case let error as HTTPError where error.status == .notFound && error.body == nil:
            let allowed = routes().methods(matching: request.uri.path)
            if allowed.isEmpty {
                status = .notFound
                message = "no route for \(request.method.rawValue) \(request.uri.path)"
            } else {
                status = .methodNotAllowed
                message = "method \(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))"
                headers[.allow] = allowed.joined(separator: ", ")
            }
        case let error as HTTPError where error.status.code < 500:
            status = error.status
            message = error.body ?? error.status.reasonPhrase.lowercased()
        case let error as any HTTPResponseError where error.status.code < 500 || error is SwitchyardError:
            // The domain's errors (SwitchyardError, TaskStateMachine.Refusal) render themselves.
            if let response = try? error.response(from: request, context: context) { return response }
            return Response(status: error.status)
        case let error where unavailable(error):
            context.logger.warning("database unavailable", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            headers[.retryAfter] = "2"
            (status, message) = (.serviceUnavailable, Self.unavailableMessage)
        default:
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            let body = ErrorBody(errorMessage: "internal server error (request id \(context.requestID))", requestId: context.requestID)
            return (try? body.response(status: .internalServerError, headers: headers, from: request, context: context))
                ?? Response(status: .internalServerError)
        }
        return (try? ErrorBody(errorMessage: message).response(status: status, headers: headers, from: request, context: context))
            ?? Response(status: status)
    }
}
