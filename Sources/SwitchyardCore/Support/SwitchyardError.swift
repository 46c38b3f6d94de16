/// A failure the API reports to its caller. One edge middleware maps each case to a status code and the
/// body `{"error_message": "..."}`; the message says what was wrong and, where it can, how to fix it.
public enum SwitchyardError: Error, Equatable, Sendable {
    /// 400: the request is malformed or breaks a rule (the message names the field and the rule).
    case invalid(String)
    /// 401: no usable credential, or a credential kind this route does not accept.
    case unauthenticated(String)
    /// 403: authenticated, but the role or team membership does not allow this.
    case forbidden(String)
    /// 404: missing, or belonging to another team (the two must look the same).
    case notFound(String)
    /// 409: conflicts with the current state.
    case conflict(String)
    /// 429: a limit is reached; the caller may try again after `retryAfter` seconds (sent as `Retry-After`).
    case tooManyRequests(String, retryAfter: Int)
    /// 503: the database cannot be reached now; try again after a moment (sent as `Retry-After: 2`).
    case unavailable(String)

    /// The caller-facing text.
    public var message: String {
        switch self {
        case .invalid(let message), .unauthenticated(let message), .forbidden(let message), .notFound(let message),
            .conflict(let message), .tooManyRequests(let message, _), .unavailable(let message):
            message
        }
    }
}
