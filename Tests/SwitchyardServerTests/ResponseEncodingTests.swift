import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore
import Synchronization
import Testing

@testable import SwitchyardServer

/// The request context's encoder: what every handler's answer goes through.
@Suite("Response encoding")
struct ResponseEncodingTests {
    struct Sample: Encodable {
        let taskId: UUID
        let createdAt: Date
        @Nullable var agentId: String?
        var note: String?
        let parameters: JSONValue
    }

    /// The bytes of a response's body.
    private func body(_ response: Response) async throws -> String {
        let sink = Sink()
        try await response.body.write(CollectingWriter(sink: sink))
        return String(buffer: sink.buffer)
    }

    @Test("snake_case sorted keys, lowercase ids, RFC 3339 dates, @Nullable as null, nil left out, the caller's JSON kept")
    func encoding() async throws {
        let id = UUID(uuidString: "019ABCDE-0000-7000-8000-00000000000A")!
        let parameters = try JSONValue.parse(Array(#"{"seed":18446744073709551615,"cfgScale":0.12345678901234567890123,"Zed":[1,true,null]}"#.utf8))
        let sample = Sample(taskId: id, createdAt: Date(timeIntervalSince1970: 1_764_576_000.75), agentId: nil, note: nil, parameters: parameters)
        let response = try APIJSON.response(sample)
        #expect(response.headers[.contentType] == "application/json; charset=utf-8")
        #expect(
            try await body(response)
                == #"{"agent_id":null,"created_at":"2025-12-01T08:00:00Z","parameters":{"Zed":[1,true,null],"cfgScale":0.12345678901234567890123,"seed":18446744073709551615},"task_id":"019abcde-0000-7000-8000-00000000000a"}"#
                + "\n"
        )
    }

    @Test("a JSONValue answer is written as parsed: numbers keep their text; every answer ends with a newline")
    func jsonValueAnswer() async throws {
        let document = try JSONValue.parse(Array(#"{"b":7.50,"a":1e3}"#.utf8))
        #expect(try await body(try APIJSON.response(document)) == #"{"a":1e3,"b":7.50}"# + "\n")
    }

    @Test("a list is named by its kind, with page_meta; Success and Identified are the shared envelopes")
    func envelopes() async throws {
        let page = try PageRequest(currentPage: "2", perPage: "1")
        let listing = Listing("team_list", [Success(message: nil)], page: page, totalCount: 3)
        #expect(
            try await body(try APIJSON.response(listing))
                == #"{"page_meta":{"current_page":2,"per_page":1,"total_count":3},"team_list":[{"is_success":true}]}"# + "\n")
        let id = UUID(uuidString: "019ABCDE-0000-7000-8000-00000000000B")!
        #expect(try await body(try APIJSON.response(Identified(id: id))) == #"{"id":"019abcde-0000-7000-8000-00000000000b"}"# + "\n")
    }
}

private final class Sink: Sendable {
    private let bytes = Mutex(ByteBuffer())
    var buffer: ByteBuffer { bytes.withLock { $0 } }
    func append(_ buffer: ByteBuffer) { bytes.withLock { $0.writeImmutableBuffer(buffer) } }
}

private struct CollectingWriter: ResponseBodyWriter {
    let sink: Sink

    mutating func write(_ buffer: ByteBuffer) async throws {
        sink.append(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
