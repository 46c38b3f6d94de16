import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import SwitchyardCore

/// The web dashboard (docs/dashboard.md): server-rendered pages at `/`, signed in with a cookie
/// (`BrowserSessions`), reading through the same API handlers the Bearer clients use (in-process, with the
/// viewer's session, so every page shows exactly what the API would and nothing of another team), and changing
/// things from its script through the JSON API with the CSRF token. No build step, nothing from another origin but
/// the object store's presigned URLs.
struct Dashboard: Sendable {
    let api: InProcessAPI
    let storage: any SwitchyardStorage
    let browser: BrowserSessions
    let sessions: SessionTokens
    let hub: TaskEventHub
    let objects: ObjectStorage
    let authenticator: Authenticator
    /// The per-team cap on open event streams, shared with the task event streams.
    let streams: StreamLimiter

    func addRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("assets/dashboard.js") { _, _ in Self.asset(Self.script, type: "text/javascript; charset=utf-8") }
        router.get("assets/dashboard.css") { _, _ in Self.asset(Self.style, type: "text/css; charset=utf-8") }
        router.get("/") { request, context in try await page(request, context) { viewer in Response.redirect(to: "/tasks", type: .normal) } }
        router.get("login") { request, _ in loginPage(request, message: nil) }
        router.post("login") { request, context in try await signIn(request, context) }
        router.post("logout") { request, context in try await signOut(request, context) }
        router.post("team") { request, context in try await switchTeam(request, context) }
        addTaskRoutes(to: router)
        addWorkflowRoutes(to: router)
        addTeamRoutes(to: router)
    }

    // MARK: The viewer

    /// Who looks at a page: the session, the CSRF token for its forms, the profile and the team in view.
    struct Viewer: Sendable {
        let token: String
        let csrf: String
        let profile: JSONValue
        let teamId: String
        let role: String
        var teams: [JSONValue] { profile["team_list"]?.arrayValue ?? [] }
        var canRun: Bool { role != "viewer" }
        var canManage: Bool { role == "owner" || role == "admin" }
        var isOwner: Bool { role == "owner" }
        var teamName: String { teams.first { $0["id"]?.stringValue == teamId }?["display_name"]?.stringValue ?? "" }
    }

    /// A page that failed to load what it shows (the API's status and message).
    struct PageFailure: Error {
        let status: Int
        let message: String
    }

    /// Runs `body` for a signed-in viewer; without a valid session, a redirect to the sign-in page.
    func page(
        _ request: Request, _ context: SwitchyardRequestContext, _ body: (Viewer) async throws -> Response
    ) async throws -> Response {
        guard let token = BrowserSessions.sessionToken(request) else { return signInRedirect(request) }
        let (status, profile) = try await api.call(.get, "/users/me", authorization: "Bearer " + token, context: context)
        guard status == 200 else { return signInRedirect(request) }
        let teams = profile["team_list"]?.arrayValue ?? []
        let wanted = BrowserSessions.cookies(request)[BrowserSessions.teamCookie]
        guard let team = teams.first(where: { $0["id"]?.stringValue == wanted }) ?? teams.first, let teamId = team["id"]?.stringValue
        else {
            return layoutWithoutTeam(token: token, profile: profile)
        }
        let viewer = Viewer(
            token: token, csrf: browser.csrfToken(for: token), profile: profile, teamId: teamId, role: team["member_role"]?.stringValue ?? "viewer")
        var response: Response
        do {
            response = try await body(viewer)
        } catch let failure as PageFailure {
            let title = failure.status == 404 ? "Not found" : "Something went wrong"
            response = layout(viewer, title: title, active: "", body: "<h1>\(title)</h1><p class=\"error\">\(failure.message)</p>")
                .response(status: .init(code: failure.status), csp: contentSecurityPolicy())
        }
        // The page's event streams (EventSource sends no headers) name their team with the cookie: keep it on the team
        // in view.
        if wanted != teamId, response.headers[.setCookie] == nil {
            response.headers[.setCookie] = BrowserSessions.setCookie(
                BrowserSessions.teamCookie, teamId, maxAge: 400 * 86_400, secure: BrowserSessions.isSecure(request))
        }
        return response
    }

    /// `GET path` of the API as the viewer, in the viewer's team; a non-2xx answer fails the page.
    func get(_ viewer: Viewer, _ path: String, _ context: SwitchyardRequestContext) async throws -> JSONValue {
        var headers = HTTPFields()
        headers[.teamID] = viewer.teamId
        let (status, body) = try await api.call(.get, path, headers: headers, authorization: "Bearer " + viewer.token, context: context)
        guard (200..<300).contains(status) else {
            throw PageFailure(status: status, message: body["error_message"]?.stringValue ?? "the API answered \(status)")
        }
        return body
    }

    /// Like `get`, but nil when the viewer's role may not read it (403) — the page leaves that part out.
    func getIfAllowed(_ viewer: Viewer, _ path: String, _ context: SwitchyardRequestContext) async throws -> JSONValue? {
        do { return try await get(viewer, path, context) } catch let failure as PageFailure where failure.status == 403 { return nil }
    }

    private func signInRedirect(_ request: Request) -> Response {
        let next = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        return Response.redirect(to: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "/"), type: .normal)
    }

    // MARK: Sign in, sign out, switch team

    func loginPage(_ request: Request, message: String?, status: HTTPResponse.Status = .ok) -> Response {
        let next = Self.safeNext(request.uri.formQueryValue("next"))
        let body: HTML = """
            <main id="main" class="narrow"><h1>Sign in to Switchyard</h1>
            \(message.map { HTML("<p class=\"error\" role=\"alert\">\($0)</p>") } ?? "")
            <form method="post" action="/login" class="stack">
            <input type="hidden" name="next" value="\(next)">
            <label for="email_address">Email address</label><input id="email_address" name="email_address" type="email" autocomplete="username" required autofocus>
            <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
            <button type="submit">Sign in</button></form>
            <p class="muted">The first start of <code>switchyard serve</code> prints the owner's email and password (and keeps them in
            <code>switchyard-data/bootstrap.json</code>).</p></main>
            """
        return Self.document(title: "Sign in", csrf: "", teamId: "", body: body).response(status: status, csp: contentSecurityPolicy())
    }

    private func signIn(_ request: Request, _ context: SwitchyardRequestContext) async throws -> Response {
        try await signInThroughAPI(request, context, "/auth/login", fields: ["email_address", "password"], what: "sign-in") { form in
            Self.safeNext(form["next"])
        } refused: { message, status in
            loginPage(request, message: message, status: status)
        }
    }

    /// A form post that signs the browser in through an API call answering `access_token` (and `team_id`): the
    /// form's `fields` become the call's body; the session (and team) cookies are set and the browser goes to
    /// `location`. Forms posted from another site are refused (login CSRF).
    func signInThroughAPI(
        _ request: Request, _ context: SwitchyardRequestContext, _ path: String, fields: [String], what: String,
        location: (FormFields) -> String, refused: (String, HTTPResponse.Status) -> Response
    ) async throws -> Response {
        if request.headers[HTTPField.Name("Sec-Fetch-Site")!] == "cross-site" {
            return refused("\(what) from another site is refused", .forbidden)
        }
        var request = request
        let form = FormFields(try await request.collectBody(upTo: 64 * 1024))
        let body = JSONValue.object(Dictionary(uniqueKeysWithValues: fields.map { ($0, JSONValue.string(form[$0] ?? "")) }))
        let (status, answer) = try await api.call(.post, path, body: body, authorization: "", context: context)
        guard (200..<300).contains(status), let token = answer["access_token"]?.stringValue else {
            return refused(
                answer["error_message"]?.stringValue ?? "\(what) failed (\(status))", .init(code: (200..<300).contains(status) ? 500 : status))
        }
        let secure = BrowserSessions.isSecure(request)
        var headers = HTTPFields()
        headers[.location] = location(form)
        var cookies = [BrowserSessions.setCookie(BrowserSessions.sessionCookie, token, maxAge: Int(sessions.lifetime), secure: secure)]
        if let teamId = answer["team_id"]?.stringValue {
            cookies.append(BrowserSessions.setCookie(BrowserSessions.teamCookie, teamId, maxAge: 400 * 86_400, secure: secure))
        }
        headers[values: .setCookie] = cookies
        return Response(status: .seeOther, headers: headers)
    }

    private func signOut(_ request: Request, _ context: SwitchyardRequestContext) async throws -> Response {
        var request = request
        let form = FormFields(try await request.collectBody(upTo: 64 * 1024))
        if let token = BrowserSessions.sessionToken(request), !browser.csrfMatches(form["_csrf"], sessionToken: token) {
            return HTML("<p>Refused: the form's CSRF token is missing or wrong.</p>").response(status: .forbidden, csp: contentSecurityPolicy())
        }
        let secure = BrowserSessions.isSecure(request)
        var headers = HTTPFields()
        headers[.location] = "/login"
        headers[values: .setCookie] = [
            BrowserSessions.setCookie(BrowserSessions.sessionCookie, "", maxAge: 0, secure: secure),
            BrowserSessions.setCookie(BrowserSessions.teamCookie, "", maxAge: 0, secure: secure),
        ]
        return Response(status: .seeOther, headers: headers)
    }

    private func switchTeam(_ request: Request, _ context: SwitchyardRequestContext) async throws -> Response {
        var request = request
        let form = FormFields(try await request.collectBody(upTo: 64 * 1024))
        return try await page(request, context) { viewer in
            guard browser.csrfMatches(form["_csrf"], sessionToken: viewer.token) else {
                throw PageFailure(status: 403, message: "the form's CSRF token is missing or wrong; reload the page")
            }
            guard let teamId = form["team_id"], viewer.teams.contains(where: { $0["id"]?.stringValue == teamId }) else {
                throw PageFailure(status: 404, message: "team not found")
            }
            var headers = HTTPFields()
            headers[.location] = Self.safeNext(form["next"])
            headers[values: .setCookie] = [
                BrowserSessions.setCookie(BrowserSessions.teamCookie, teamId, maxAge: 400 * 86_400, secure: BrowserSessions.isSecure(request))
            ]
            return Response(status: .seeOther, headers: headers)
        }
    }

    /// A local path to go back to after signing in (never another origin).
    static func safeNext(_ raw: String?) -> String {
        guard let raw, raw.hasPrefix("/"), !raw.hasPrefix("//"), !raw.contains("\\"), !raw.hasPrefix("/login") else { return "/tasks" }
        return raw
    }

    /// RFC 3986's unreserved characters: what a path segment or query value keeps unencoded.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    // MARK: Layout

    static let navigation: [(path: String, label: String)] = [
        ("/tasks", "Tasks"), ("/workflows", "Workflows"), ("/agents", "Agents"), ("/models", "Models"), ("/keys", "Keys"),
        ("/webhooks", "Webhooks"), ("/team", "Team"),
    ]

    /// A page of the signed-in dashboard: navigation, team switcher, sign-out, then `body`.
    func layout(_ viewer: Viewer, title: String, active: String, body: HTML) -> HTML {
        let links = Self.navigation.map { item -> HTML in
            item.path == active ? "<a href=\"\(item.path)\" aria-current=\"page\">\(item.label)</a>" : "<a href=\"\(item.path)\">\(item.label)</a>"
        }
        let options = viewer.teams.map { team -> HTML in
            let id = team["id"]?.stringValue ?? ""
            return "<option value=\"\(id)\"\(HTML(raw: id == viewer.teamId ? " selected" : ""))>\(team["display_name"]?.stringValue ?? id)</option>"
        }
        let header: HTML = """
            <header class="top"><a class="brand" href="/tasks">Switchyard</a><nav aria-label="Main">\(links)</nav>
            <form method="post" action="/team" class="inline"><input type="hidden" name="_csrf" value="\(viewer.csrf)">
            <input type="hidden" name="next" value="\(active.isEmpty ? "/tasks" : active)">
            <label for="team_id" class="sr">Team</label><select id="team_id" name="team_id" data-autosubmit>\(options)</select>
            <button type="submit" class="secondary">Switch</button></form>
            <span class="muted" title="your role in this team">\(viewer.profile["email_address"]?.stringValue) · \(viewer.role)</span>
            <form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="\(viewer.csrf)">
            <button type="submit" class="secondary">Sign out</button></form></header>
            """
        return Self.document(title: title, csrf: viewer.csrf, teamId: viewer.teamId, body: header + "<main id=\"main\">\(body)</main>")
    }

    private func layoutWithoutTeam(token: String, profile: JSONValue) -> Response {
        let csrf = browser.csrfToken(for: token)
        let body: HTML = """
            <main id="main" class="narrow"><h1>No team yet</h1><p>\(profile["email_address"]?.stringValue) belongs to no team.
            Accept an invitation, or create a team:</p>
            <form data-api="POST /api/v1/teams" data-done="go:/tasks" class="stack">
            <label for="display_name">Team name</label><input id="display_name" name="display_name" required maxlength="100">
            <button type="submit">Create team</button><output class="error" role="alert"></output></form>
            <form method="post" action="/logout"><input type="hidden" name="_csrf" value="\(csrf)"><button type="submit" class="secondary">Sign out</button></form></main>
            """
        return Self.document(title: "No team", csrf: csrf, teamId: "", body: body).response(csp: contentSecurityPolicy())
    }

    static func document(title: String, csrf: String, teamId: String, body: HTML) -> HTML {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark"><meta name="csrf-token" content="\(csrf)"><meta name="team-id" content="\(teamId)">
        <title>\(title) — Switchyard</title><link rel="stylesheet" href="/assets/dashboard.css"><script src="/assets/dashboard.js" defer></script>
        </head><body><a class="skip" href="#main">Skip to content</a>\(body)</body></html>
        """
    }

    /// Scripts and styles from this server only; images, media and uploads also from the object store's origin.
    func contentSecurityPolicy() -> String {
        let store = " " + objects.presigner.configuration.objectOrigin.base
        return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:\(store); "
            + "media-src 'self' blob:\(store); connect-src 'self'\(store); frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static let script = Self.resource("dashboard", "js")
    static let style = Self.resource("dashboard", "css")

    private static func resource(_ name: String, _ ext: String) -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext), let text = try? String(contentsOf: url, encoding: .utf8) else {
            return ""
        }
        return text
    }
}

/// `application/x-www-form-urlencoded` fields of a plain form post.
struct FormFields {
    private var fields: [String: String] = [:]

    init(_ buffer: ByteBuffer) {
        let text = String(buffer: buffer)
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = URI.formDecode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? URI.formDecode(parts[1]) : "" }
        }
    }

    subscript(_ name: String) -> String? { fields[name] }
}
