import HTTPTypes
import Hummingbird

/// `HEAD` is answered wherever `GET` is (RFC 9110 §9.3.2): the request is routed as a `GET` and the answer sent
/// without its body — the same status and headers, `Content-Length` included when the body's length is known.
/// It wraps the router (routes are resolved before any middleware runs, so a middleware could not re-route it).
public struct HeadResponder<Wrapped: HTTPResponder>: HTTPResponder {
    public typealias Context = Wrapped.Context
    let wrapped: Wrapped

    init(_ wrapped: Wrapped) {
        self.wrapped = wrapped
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await wrapped.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await wrapped.respond(to: Request(head: head, body: request.body), context: context)
        // The GET's length is declared, and nothing is written: a HEAD answer has no body.
        response.body = ResponseBody(contentLength: response.body.contentLength) { writer in try await writer.finish(nil) }
        return response
    }
}
