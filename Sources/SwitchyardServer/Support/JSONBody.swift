import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore

/// Request and response bodies as `JSONValue`, read and written by Core's parser and serializer (exact numbers,
/// duplicate keys refused, no Foundation coders on the hot path).
enum JSONBody {
    /// The request body as JSON; an empty body reads as `{}`.
    static func read(_ request: Request, context: some RequestContext) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return .object([:]) }
        do {
            return try JSONValue.parse(buffer.readableBytesView)
        } catch {
            throw SwitchyardError.invalid("request body is not valid JSON: \(error)")
        }
    }

    /// A JSON response; the body is compact, key-sorted JSON.
    static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    /// `page_meta` (api.md §1.3).
    static func pageMeta(_ page: PageRequest, totalCount: Int) -> JSONValue {
        [
            "current_page": .number(JSONNumber(page.currentPage)), "per_page": .number(JSONNumber(page.perPage)),
            "total_count": .number(JSONNumber(totalCount)),
        ]
    }
}

extension JSONValue {
    static func date(_ date: Date?) -> JSONValue {
        date.map { .string(RFC3339.format($0)) } ?? .null
    }

    static func uuid(_ id: UUID?) -> JSONValue {
        id.map { .string($0.lowercased) } ?? .null
    }

    static func integer(_ value: Int) -> JSONValue {
        .number(JSONNumber(value))
    }

    static func strings(_ values: [String]?) -> JSONValue {
        values.map { .array($0.map(JSONValue.string)) } ?? .null
    }
}

extension Parameters {
    /// A UUID path parameter; a malformed one is a 400 naming the parameter.
    func requireUUID(_ name: String) throws -> UUID {
        let raw = try require(name)
        guard let id = UUID(text: raw) else { throw SwitchyardError.invalid("\(name): \"\(raw)\" is not a UUID") }
        return id
    }
}
