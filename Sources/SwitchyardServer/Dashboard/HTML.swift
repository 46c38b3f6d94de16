import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore

extension JSONValue {
    /// A whole number's value (the API's integers: counts, versions, sizes).
    var integer: Int? { numberValue?.intValue }
}

/// Escaped HTML built by string interpolation: interpolated values are escaped unless they are `HTML` already,
/// so a page cannot forget to escape what a user typed.
struct HTML: ExpressibleByStringInterpolation, Sendable {
    var text: String

    init(raw: String) { text = raw }
    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: Interpolation) { text = stringInterpolation.text }

    struct Interpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ html: HTML) { text += html.text }
        mutating func appendInterpolation(_ htmls: [HTML]) { for html in htmls { text += html.text } }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: String?) { text += HTML.escape(value ?? "") }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ value: JSONValue?) { text += HTML.escape(value.map(HTML.plain) ?? "") }
    }

    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A JSON value as a person reads it: strings without quotes, everything else as JSON.
    static func plain(_ value: JSONValue) -> String {
        switch value {
        case .string(let string): string
        case .null: ""
        default: String(decoding: value.serialized(), as: UTF8.self)
        }
    }

    static func + (lhs: HTML, rhs: HTML) -> HTML { HTML(raw: lhs.text + rhs.text) }

    /// `<time>` with the exact instant (the script shows it relative, in the viewer's zone, exact on hover).
    static func time(_ value: JSONValue?) -> HTML {
        guard let stamp = value?.stringValue, !stamp.isEmpty else { return "—" }
        return "<time datetime=\"\(stamp)\" title=\"\(stamp)\">\(stamp)</time>"
    }

    /// A status badge (`task_status`, `agent_status`, `key_status`, …).
    static func badge(_ status: String?) -> HTML {
        let status = status ?? "unknown"
        return "<span class=\"badge b-\(status)\" data-status=\"\(status)\">\(status)</span>"
    }

    /// The response for a page.
    func response(status: HTTPResponse.Status = .ok, csp: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = csp
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
