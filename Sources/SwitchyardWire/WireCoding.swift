import Foundation
import SwitchyardCore

/// Why a frame could not be read.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A `type` this side does not know (a newer peer); the frame can be ignored.
    case unknownType(String)
    /// Not a message at all, or a known type with missing or mistyped fields.
    case malformed(String)

    public var description: String {
        switch self {
        case .unknownType(let type): "unknown message type \"\(type)\""
        case .malformed(let detail): "malformed message: \(detail)"
        }
    }
}

/// Encodes and decodes frames: JSON objects with `"type"` beside the payload's fields, dates as RFC 3339.
public enum WireCoding {
    public static func encode(_ message: AgentMessage) throws -> String {
        switch message {
        case .hello(let payload): try frame("hello", payload)
        case .heartbeat(let payload): try frame("heartbeat", payload)
        case .status(let payload): try frame("status", payload)
        case .ack(let payload): try frame("ack", payload)
        case .started(let payload): try frame("started", payload)
        case .progress(let payload): try frame("progress", payload)
        case .uploadRequest(let payload): try frame("upload_request", payload)
        case .complete(let payload): try frame("complete", payload)
        case .fail(let payload): try frame("fail", payload)
        case .cancelled(let payload): try frame("cancelled", payload)
        case .models(let payload): try frame("models", payload)
        case .modelURLRequest(let payload): try frame("model_url_request", payload)
        case .note(let payload): try frame("attempt_note", payload)
        }
    }

    public static func encode(_ message: GatewayMessage) throws -> String {
        switch message {
        case .welcome(let payload): try frame("welcome", payload)
        case .offer(let payload): try frame("offer", payload)
        case .uploadURL(let payload): try frame("upload_url", payload)
        case .cancel(let payload): try frame("cancel", payload)
        case .refused(let payload): try frame("refused", payload)
        case .goodbye(let payload): try frame("goodbye", payload)
        case .models(let payload): try frame("models", payload)
        case .modelURL(let payload): try frame("model_url", payload)
        }
    }

    public static func decodeAgentMessage(_ text: String) throws(WireError) -> AgentMessage {
        let (type, data) = try split(text)
        switch type {
        case "hello": return .hello(try payload(data))
        case "heartbeat": return .heartbeat(try payload(data))
        case "status": return .status(try payload(data))
        case "ack": return .ack(try payload(data))
        case "started": return .started(try payload(data))
        case "progress": return .progress(try payload(data))
        case "upload_request": return .uploadRequest(try payload(data))
        case "complete": return .complete(try payload(data))
        case "fail": return .fail(try payload(data))
        case "cancelled": return .cancelled(try payload(data))
        case "models": return .models(try payload(data))
        case "model_url_request": return .modelURLRequest(try payload(data))
        case "attempt_note": return .note(try payload(data))
        default: throw .unknownType(type)
        }
    }

    public static func decodeGatewayMessage(_ text: String) throws(WireError) -> GatewayMessage {
        let (type, data) = try split(text)
        switch type {
        case "welcome": return .welcome(try payload(data))
        case "offer": return .offer(try payload(data))
        case "upload_url": return .uploadURL(try payload(data))
        case "cancel": return .cancel(try payload(data))
        case "refused": return .refused(try payload(data))
        case "goodbye": return .goodbye(try payload(data))
        case "models": return .models(try payload(data))
        case "model_url": return .modelURL(try payload(data))
        default: throw .unknownType(type)
        }
    }

    // MARK: Plumbing

    private struct TypeOnly: Decodable {
        let type: String
    }

    private enum TypeKey: String, CodingKey {
        case type
    }

    /// The payload's fields, keys sorted (stable frames, easy to read in logs), then `type`: written in one pass
    /// (an offer carries the whole definition; re-parsing it to add one key cost more than encoding it).
    private static func frame(_ type: String, _ payload: some Encodable) throws -> String {
        var data = try encoder.encode(payload)
        guard data.first == UInt8(ascii: "{"), data.last == UInt8(ascii: "}") else { throw WireError.malformed("a payload must encode to an object") }
        data.removeLast()
        data.append(contentsOf: Array((data.count > 1 ? "," : "").utf8) + Array("\"type\":\"\(type)\"}".utf8))
        return String(decoding: data, as: UTF8.self)
    }

    private static func split(_ text: String) throws(WireError) -> (String, Data) {
        let data = Data(text.utf8)
        guard let type = try? JSONDecoder().decode(TypeOnly.self, from: data).type else {
            throw .malformed("expected a JSON object with a string \"type\"")
        }
        return (type, data)
    }

    private static func payload<T: Decodable>(_ data: Data) throws(WireError) -> T {
        do {
            return try decoder.decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw .malformed("\"\(key.stringValue)\" is required")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw .malformed("\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw .malformed("\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\": \(context.debugDescription)")
        } catch {
            throw .malformed("\(error)")
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 date"))
            }
            return date
        }
        return decoder
    }()
}
