import Hummingbird
import Logging
import NIOCore

/// Per-request state: the request id every log line and 500 body carries, and the authenticated caller.
public struct SwitchyardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `ErrorMiddleware` before anything else runs.
    public var requestID = ""
    /// Set by `AuthMiddleware` on authenticated routes.
    public var caller: Caller?
    /// The peer's IP address (the proxy's, behind one).
    public var remoteAddress: String?
    /// The connection the request came on (the MCP tools call the API in-process on the caller's behalf with it).
    public let channel: any Channel
    /// The largest request body read (`http.maxBodySize`), set by `ErrorMiddleware`.
    public var maxUploadSize = ServerConfiguration().maxBodySize
    /// Request bodies: `request.decode(as:context:)` answers a 400 naming the field and the rule.
    public var requestDecoder: APIRequestDecoder { APIRequestDecoder() }
    /// Handler results that are `ResponseEncodable`: the API's JSON (sorted snake_case keys, RFC 3339 dates).
    public var responseEncoder: APIResponseEncoder { APIResponseEncoder() }

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }

    /// The caller on a route behind `AuthMiddleware` (which refuses the request before the handler otherwise).
    func requireCaller() throws -> Caller {
        guard let caller else { throw HTTPError(.unauthorized) }
        return caller
    }
}
