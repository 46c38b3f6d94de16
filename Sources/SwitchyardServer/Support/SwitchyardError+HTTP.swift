import Hummingbird
import SwitchyardCore

/// The domain's errors answer for themselves: status, `{"error_message": "..."}` and the headers their status
/// promises (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503). `ErrorMiddleware` only adds the request id.
extension SwitchyardError: HTTPResponseError {
    public var status: HTTPResponse.Status {
        switch self {
        case .invalid: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .tooManyRequests: .tooManyRequests
        case .unavailable: .serviceUnavailable
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        switch self {
        case .unauthenticated: headers[.wwwAuthenticate] = "Bearer"
        case .tooManyRequests(_, let retryAfter): headers[.retryAfter] = String(max(1, retryAfter))
        case .unavailable: headers[.retryAfter] = "2"
        default: break
        }
        return try ErrorBody(errorMessage: message).response(status: status, headers: headers, from: request, context: context)
    }
}

/// An event the task's state does not allow: 409, naming the state.
extension TaskStateMachine.Refusal: HTTPResponseError {
    public var status: HTTPResponse.Status { .conflict }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let message =
            switch self {
            case .alreadyTerminal(let current): "the task is already \(current.rawValue)"
            case .illegal(let current, _): "the task cannot make that change while \(current.rawValue)"
            }
        return try ErrorBody(errorMessage: message).response(status: status, from: request, context: context)
    }
}

/// `{"error_message": "..."}` — and, on a 500, the `request_id` to quote.
struct ErrorBody: Encodable {
    let errorMessage: String
    var requestId: String?

    /// The body through the context's encoder, with `status` and `headers`.
    func response(status: HTTPResponse.Status, headers: HTTPFields = [:], from request: Request, context: some RequestContext) throws
        -> Response
    {
        var response = try context.responseEncoder.encode(self, from: request, context: context)
        response.status = status
        for field in headers { response.headers[field.name] = field.value }
        return response
    }
}
