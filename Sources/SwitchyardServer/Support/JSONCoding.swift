import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore

/// The API's JSON. Responses: keys sorted, snake_case (a DTO's `CodingKeys` where the name is not its property's,
/// `convertToSnakeCase` otherwise — the members of a `JSONValue` inside a DTO keep their keys as written), dates
/// RFC 3339 in UTC without fractions, ids lowercase. Requests: each DTO's `CodingKeys` name its fields, so a failure
/// names the field the caller sent.
enum APIJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let decoder = JSONDecoder()

    /// A response carrying `value` as JSON. A `JSONValue` is written as it is (its numbers with the text they were
    /// parsed from, keys sorted); anything else goes through `encoder`.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var buffer: ByteBuffer
        if let json = value as? JSONValue {
            buffer = ByteBuffer(bytes: json.serialized())
        } else {
            buffer = ByteBuffer(data: try encoder.encode(value))
        }
        // A final newline, so `curl` leaves the prompt on a line of its own (JSON readers ignore it).
        buffer.writeInteger(UInt8(ascii: "\n"))
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
    }

    /// Decodes a request body, turning every failure into a 400 that names the field and the rule. An empty body
    /// decodes as `{}`, so "nothing sent" and "required field missing" read the same. A `JSONValue` is parsed
    /// exactly (numbers keep their text) for the documents whose rules `JSONFields` checks.
    static func decodeBody<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        if T.self == JSONValue.self {
            guard buffer.readableBytes > 0 else { return JSONValue.object([:]) as! T }
            do {
                return try JSONValue.parse(buffer.readableBytesView) as! T
            } catch {
                throw SwitchyardError.invalid("request body is not valid JSON: \(error)")
            }
        }
        let bytes = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer.readableBytesView)
        do {
            return try decoder.decode(T.self, from: bytes)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            throw SwitchyardError.invalid("request body is not valid JSON")
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw SwitchyardError.invalid("request body must be a JSON object")
        } catch let error as DecodingError {
            throw SwitchyardError.invalid(describe(error))
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = (codingPath + (last.map { [$0] } ?? [])).map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
            return keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "field \"\(path(context.codingPath, key))\" is required"
        case .typeMismatch(let type, let context):
            return "field \"\(path(context.codingPath))\" must be \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "field \"\(path(context.codingPath))\" must be \(typeName(type)), not null"
        case .dataCorrupted(let context):
            return "field \"\(path(context.codingPath))\": \(context.debugDescription)"
        @unknown default:
            return "request body does not match the expected shape"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "a boolean"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}

/// The request context's decoder (`request.decode(as:context:)`): `APIJSON.decodeBody`.
public struct APIRequestDecoder: RequestDecoder {
    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        try await APIJSON.decodeBody(type, from: request, context: context)
    }
}

/// The request context's encoder: what a handler returns as a `ResponseEncodable` becomes a 200 with
/// `APIJSON.response`; `EditedResponse` sets another status or headers.
public struct APIResponseEncoder: ResponseEncoder {
    public func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response {
        try APIJSON.response(value)
    }
}

extension JSONValue: ResponseEncodable {}

/// `{"id": "..."}`, the API's create/update envelope.
struct IDResponse: Encodable {
    let id: UUID
}

/// `page_meta` of every list response (api.md §1.3).
struct PageMeta: Encodable {
    let currentPage: Int
    let perPage: Int
    let totalCount: Int

    init(_ request: PageRequest, totalCount: Int) {
        self.currentPage = request.currentPage
        self.perPage = request.perPage
        self.totalCount = totalCount
    }

    enum CodingKeys: String, CodingKey {
        case currentPage = "current_page"
        case perPage = "per_page"
        case totalCount = "total_count"
    }
}

extension Request {
    /// The validated `current_page` / `per_page` of this request.
    var pageRequest: PageRequest {
        get throws {
            try PageRequest(
                currentPage: uri.formQueryValue("current_page"), perPage: uri.formQueryValue("per_page"))
        }
    }
}

// api.md §1.5 ids are lowercase (`019abc12-…`), but Foundation writes UUIDs uppercase. These overloads are more
// specific than the generic `encode`, so every synthesised `Encodable` in this module picks them.
extension KeyedEncodingContainer {
    mutating func encode(_ value: UUID, forKey key: Key) throws {
        try encode(value.lowercased, forKey: key)
    }

    mutating func encode(_ value: UUID?, forKey key: Key) throws {
        try encode(value?.lowercased, forKey: key)
    }

    mutating func encodeIfPresent(_ value: UUID?, forKey key: Key) throws {
        try encodeIfPresent(value?.lowercased, forKey: key)
    }
}

extension KeyedDecodingContainer {
    /// An optional integer field that rejects fractions and strings with a message naming the field.
    func decodeIntegerIfPresent(forKey key: Key) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        guard let number = try? decode(Double.self, forKey: key) else {
            throw SwitchyardError.invalid("field \"\(key.stringValue)\" must be an integer")
        }
        guard number.rounded() == number, let integer = Int(exactly: number) else {
            throw SwitchyardError.invalid("field \"\(key.stringValue)\" must be an integer, not \(number)")
        }
        return integer
    }
}
