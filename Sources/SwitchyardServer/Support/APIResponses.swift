import Foundation
import Hummingbird
import SwitchyardCore

// The response bodies several endpoints share. A handler returns one of these (or its own `ResponseEncodable`);
// the request context's `APIResponseEncoder` writes it, and `EditedResponse` sets another status or headers.

/// `{"is_success": true}`, with a `message` where there is something to say.
struct Success: ResponseEncodable {
    let isSuccess = true
    var message: String?
}

/// `{"id": "..."}`: what a create or an update answers.
struct Identified: ResponseEncodable {
    let id: UUID
}

/// One page of a list: `{"<kind>_list": [...], "page_meta": {...}}` (api.md §1.3).
struct Listing<Item: Encodable & Sendable>: ResponseEncodable, Sendable {
    /// The list's member name, e.g. `task_list`.
    let name: String
    let items: [Item]
    let pageMeta: PageMeta

    init(_ name: String, _ items: [Item], page: PageRequest, totalCount: Int) {
        self.name = name
        self.items = items
        self.pageMeta = PageMeta(page, totalCount: totalCount)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: NamedKey.self)
        try container.encode(items, forKey: NamedKey(name))
        try container.encode(pageMeta, forKey: NamedKey("page_meta"))
    }
}

extension Dictionary where Key == String, Value == String {
    /// The headers a presigned URL was signed with, which the uploader must send (`upload_headers`).
    init(signedHeaders headers: [(name: String, value: String)]) {
        self.init(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}

/// A session the server just issued (sign-in, refresh, invitation acceptance).
struct IssuedSession: ResponseEncodable {
    let accessToken: String
    let tokenType = "Bearer"
    let expiresAt: Date
}

/// An optional member the API writes as `null` rather than leaving out (api.md documents these fields as always
/// present). Synthesised `Encodable` leaves a nil optional out, so such members are declared `@Nullable`.
@propertyWrapper
struct Nullable<Value: Encodable & Sendable>: Encodable, Sendable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch wrappedValue {
        case nil: try container.encodeNil()
        case let id as UUID: try container.encode(id.lowercased)
        case let value?: try container.encode(value)
        }
    }
}

/// A coding key chosen at run time, for members whose name is data (a list's `<kind>_list`).
struct NamedKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) {
        self.stringValue = name
    }

    init?(stringValue: String) {
        self.stringValue = stringValue
    }

    init?(intValue: Int) {
        nil
    }
}
