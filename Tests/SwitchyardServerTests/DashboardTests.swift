import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Dashboard: browser sessions, CSRF, pages")
struct DashboardTests {
    /// Signs in through the form; the session cookie's value.
    func signIn(_ app: TestApp, _ client: any TestClientProtocol, headers extra: HTTPFields = [:]) async throws -> (cookie: String, setCookie: String)
    {
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        let form = "email_address=\(app.bootstrap.emailAddress)&password=\(app.bootstrap.password)&next=%2Fworkflows"
        let response = try await client.execute(uri: "/login", method: .post, headers: headers, body: ByteBuffer(string: form))
        #expect(response.status == .seeOther)
        #expect(response.headers[.location] == "/workflows")
        let setCookie = try #require(response.headers[values: .setCookie].first { $0.hasPrefix("switchyard_session=") })
        let value = try #require(setCookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last)
        return (String(value), setCookie)
    }

    func page(_ client: any TestClientProtocol, _ uri: String, cookie: String?) async throws -> TestResponse {
        var headers = HTTPFields()
        if let cookie { headers[.cookie] = "switchyard_session=\(cookie)" }
        return try await client.execute(uri: uri, method: .get, headers: headers)
    }

    func csrf(in page: TestResponse) throws -> String {
        let html = String(buffer: page.body)
        let match = try #require(html.firstMatch(of: /<meta name="csrf-token" content="([0-9a-f]{64})">/))
        return String(match.1)
    }

    @Test("signing in sets an HttpOnly, SameSite=Strict session cookie (Secure behind TLS); pages need it; signing out needs the CSRF token")
    func signInAndOut() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let anonymous = try await page(client, "/tasks?status=running", cookie: nil)
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.headers[.location] == "/login?next=%2Ftasks%3Fstatus%3Drunning")

            let wrong = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "email_address=\(app.bootstrap.emailAddress)&password=nope"))
            #expect(wrong.status == .unauthorized)
            #expect(String(buffer: wrong.body).contains("email address or password is wrong"))
            #expect(wrong.headers[.setCookie] == nil)

            let (cookie, setCookie) = try await signIn(app, client)
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"))
            #expect(!setCookie.contains("Secure"))
            let (_, behindTLS) = try await signIn(app, client, headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(behindTLS.hasSuffix("; Secure"))

            let tasks = try await page(client, "/tasks", cookie: cookie)
            #expect(tasks.status == .ok)
            #expect(tasks.headers[.contentType] == "text/html; charset=utf-8")
            #expect(tasks.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            // The team in view is remembered for the page's event streams.
            #expect(tasks.headers[.setCookie]?.hasPrefix("switchyard_team=\(app.bootstrap.teamId.lowercased);") == true)
            let token = try csrf(in: tasks)

            let headers: HTTPFields = [.cookie: "switchyard_session=\(cookie)", .contentType: "application/x-www-form-urlencoded"]
            let forged = try await client.execute(
                uri: "/logout", method: .post, headers: headers, body: ByteBuffer(string: "_csrf=\(String(repeating: "0", count: 64))"))
            #expect(forged.status == .forbidden)
            let out = try await client.execute(uri: "/logout", method: .post, headers: headers, body: ByteBuffer(string: "_csrf=\(token)"))
            #expect(out.status == .seeOther && out.headers[.location] == "/login")
            #expect(out.headers[values: .setCookie].contains { $0.hasPrefix("switchyard_session=;") && $0.contains("Max-Age=0") })
        }
    }

    @Test("after signing in the browser goes only to a page of this server")
    func noOpenRedirect() {
        #expect(Dashboard.safeNext("//evil.example/x") == "/tasks")
        #expect(Dashboard.safeNext("https://evil.example/") == "/tasks")
        #expect(Dashboard.safeNext("/\\evil.example") == "/tasks")
        #expect(Dashboard.safeNext("/login?next=/x") == "/tasks")
        #expect(Dashboard.safeNext("/tasks/abc?x=1") == "/tasks/abc?x=1")
        #expect(Dashboard.safeNext(nil) == "/tasks")
    }

    @Test("the JSON API takes the browser's cookie, with the page's CSRF token for every change; Bearer callers are unchanged")
    func cookieOnTheAPI() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let (cookie, _) = try await signIn(app, client)
            let token = try csrf(in: try await page(client, "/keys", cookie: cookie))
            let team = app.bootstrap.teamId.lowercased
            func create(_ csrf: String?, team teamCookie: Bool = false) async throws -> TestResponse {
                var headers: HTTPFields = [
                    .cookie: "switchyard_session=\(cookie)" + (teamCookie ? "; switchyard_team=\(team)" : ""), .contentType: "application/json",
                ]
                if !teamCookie { headers[HTTPField.Name("X-Team-ID")!] = team }
                if let csrf { headers[HTTPField.Name("X-CSRF-Token")!] = csrf }
                return try await client.execute(
                    uri: "/api/v1/credentials", method: .post, headers: headers,
                    body: ByteBuffer(string: #"{"kind":"integration","display_name":"browser"}"#))
            }
            let missing = try await create(nil)
            #expect(missing.status == .forbidden)
            #expect(missing.errorMessage?.contains("CSRF token") == true)
            #expect(try await create(String(token.reversed())).status == .forbidden)
            #expect(try await create(token).status == .created)
            // The team cookie names the team when the header is absent (EventSource sends no headers).
            #expect(try await create(token, team: true).status == .created)
            // Reading needs no token.
            let listed = try await client.execute(
                uri: "/api/v1/credentials", method: .get, headers: [.cookie: "switchyard_session=\(cookie); switchyard_team=\(team)"])
            #expect(listed.status == .ok)
            // A Bearer caller with a stray cookie is a Bearer caller: no CSRF token is asked of it.
            let session = try await app.ownerSession(client)
            var bearer = authHeaders(session, team: app.bootstrap.teamId)
            bearer[.cookie] = "switchyard_session=garbage"
            let viaBearer = try await client.execute(
                uri: "/api/v1/credentials", method: .post, headers: bearer, body: ByteBuffer(string: #"{"kind":"integration","display_name":"cli"}"#))
            #expect(viaBearer.status == .created)
            // MCP takes sk- keys only, never a cookie.
            let mcp = try await client.execute(
                uri: "/api/v1/mcp", method: .post, headers: [.cookie: "switchyard_session=\(cookie)", HTTPField.Name("X-CSRF-Token")!: token],
                body: ByteBuffer(string: #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#))
            #expect(mcp.status == .unauthorized)
        }
    }

    @Test("pages escape what users typed, show the API's error for bad filters, and another team's task looks missing")
    func pagesEscapeAndScope() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            var body = try TestApp.invertImport(slug: "xss")
            body = body.replacingOccurrences(of: #""display_name":"Invert""#, with: #""display_name":"<script>alert(1)</script>""#)
            let workflowId = try await app.importWorkflow(client, session: session, body: body)
            let (cookie, _) = try await signIn(app, client)
            let list = String(buffer: try await page(client, "/workflows", cookie: cookie).body)
            #expect(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!list.contains("<script>alert"))
            let detail = try await page(client, "/workflows/\(workflowId.lowercased)", cookie: cookie)
            #expect(detail.status == .ok)
            // The parameter editor offers the graph's literal inputs, not its links.
            let html = String(buffer: detail.body)
            #expect(html.contains(#"<option value="1/color" selected>"#))
            #expect(!html.contains(#"value="2/image""#))

            let badFilter = try await page(client, "/tasks?status=exploded", cookie: cookie)
            #expect(badFilter.status == .badRequest)
            #expect(String(buffer: badFilter.body).contains("query parameter &quot;status&quot;"))

            // Pages read through the API as the viewer, in the viewer's team: a task that is not the team's is missing.
            let missing = try await page(client, "/tasks/\(UUID().uuidString.lowercased())", cookie: cookie)
            #expect(missing.status == .notFound)
            #expect(String(buffer: missing.body).contains("task not found"))
        }
    }
}

@Suite("Dashboard: live task changes and snapshot diffs")
struct DashboardPartsTests {
    @Test("a watcher collects the ids that changed (each once), and hears when everything may have changed")
    func watcher() async {
        let hub = TaskEventHub()
        let watcher = hub.watchAll()
        let (a, b) = (UUID(), UUID())
        hub.created(a)
        hub.signal(a)
        hub.publishProgress(b, ["progress": 0.5])
        #expect(await watcher.signal.wait(timeout: .seconds(5)))
        let first = watcher.take()
        #expect(first.ids == [a, b] && !first.all)
        #expect(watcher.take().ids.isEmpty)
        hub.wakeAll()
        #expect(watcher.take().all)
        hub.unwatch(watcher)
        hub.signal(a)
        #expect(watcher.take().ids.isEmpty)
    }

    @Test("a side-by-side diff pairs removed and added lines and keeps equal ones aligned")
    func diff() {
        let rows = LineDiff.sideBySide(["{", "  \"a\": 1,", "  \"b\": 2", "}"], ["{", "  \"a\": 1,", "  \"b\": 3,", "  \"c\": 4", "}"])
        #expect(
            rows == [
                .init(left: "{", right: "{"), .init(left: "  \"a\": 1,", right: "  \"a\": 1,"), .init(left: "  \"b\": 2", right: "  \"b\": 3,"),
                .init(left: nil, right: "  \"c\": 4"), .init(left: "}", right: "}"),
            ])
        #expect(PrettyJSON.lines(["b": [1, 2], "a": "x"]) == ["{", "  \"a\": \"x\",", "  \"b\": [", "    1,", "    2", "  ]", "}"])
    }
}
