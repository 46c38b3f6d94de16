import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import SwitchyardCore

/// A signed-in browser (docs/dashboard.md): the session token from `POST /auth/login` kept in an `HttpOnly`,
/// `SameSite=Strict` cookie (`Secure` when the page came over TLS), and the team it looks at in a second cookie.
/// Every request that changes something must also carry the session's CSRF token — in the `X-CSRF-Token` header
/// (the dashboard's scripts) or a `_csrf` form field (its plain forms) — an HMAC of the session token under the
/// secrets key, compared in constant time. The Bearer API is unchanged: a request with `Authorization` ignores
/// the cookies.
struct BrowserSessions: Sendable {
    static let sessionCookie = "switchyard_session"
    static let teamCookie = "switchyard_team"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    let box: SecretBox

    /// The CSRF token that goes with `sessionToken`.
    func csrfToken(for sessionToken: String) -> String {
        box.tag(sessionToken, purpose: "dashboard.csrf")
    }

    /// Whether `presented` is the CSRF token of `sessionToken` (constant time).
    func csrfMatches(_ presented: String?, sessionToken: String) -> Bool {
        guard let presented else { return false }
        return ConstantTime.equals(csrfToken(for: sessionToken), presented)
    }

    /// The request's cookies by name (the first of a repeated name).
    static func cookies(_ request: Request) -> [String: String] {
        var cookies: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let name = parts[0].trimmingCharacters(in: .whitespaces)
                if cookies[name] == nil { cookies[name] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
        }
        return cookies
    }

    /// The session token of a browser request (nil when it sends `Authorization` or has no session cookie).
    static func sessionToken(_ request: Request) -> String? {
        guard request.headers[.authorization] == nil, let token = cookies(request)[sessionCookie], !token.isEmpty else { return nil }
        return token
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`; `Secure` when `secure`; removed when `maxAge` is 0.
    static func setCookie(_ name: String, _ value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict\(secure ? "; Secure" : "")"
    }

    /// Whether the browser reached us over TLS (directly is not offered; a TLS-terminating proxy says so).
    static func isSecure(_ request: Request) -> Bool {
        request.head.scheme == "https" || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
    }

    /// `scheme://host` the browser reached (a TLS-terminating proxy's `X-Forwarded-Proto` honoured): links the
    /// server hands out (`verification_uri`, invitation links, the agent command).
    static func origin(of request: Request) -> String {
        (isSecure(request) ? "https://" : "http://") + (request.head.authority ?? request.headers[HTTPField.Name("Host")!] ?? "localhost")
    }

    /// Whether `method` changes nothing (no CSRF token needed).
    static func isSafe(_ method: HTTPRequest.Method) -> Bool {
        method == .get || method == .head || method == .options
    }
}
