import Foundation

/// Where a client of the REST API points and with which key. The typed client grows with the CLI commands.
public struct SwitchyardClientConfiguration: Sendable {
    /// For example `http://127.0.0.1:8080/api/v1`.
    public var baseURL: URL
    /// An `sk-`, `dk-` or session token sent as `Authorization: Bearer`.
    public var token: String

    public init(baseURL: URL, token: String) {
        self.baseURL = baseURL
        self.token = token
    }
}
