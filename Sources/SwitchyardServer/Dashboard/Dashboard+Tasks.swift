import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import SwitchyardCore

/// The tasks list (live) and a task's page.
extension Dashboard {
    static let tasksPerPage = 25

    func addTaskRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("tasks") { request, context in try await page(request, context) { try await tasksPage(request, context, $0) } }
        router.get("tasks/{taskId}") { request, context in
            try await page(request, context) { try await taskPage(request, context, $0) }
        }
        router.group("live").add(middleware: AuthMiddleware(authenticator: authenticator, surface: .runtime))
            .get("tasks") { request, context in try await liveTasks(request, context) }
    }

    /// The list's filters, from the page's query (the same names as `/r/tasks`).
    struct TaskListQuery {
        var status: String?
        var workflowId: String?
        var agentId: String?
        var page: Int

        init(_ request: Request) {
            func value(_ name: String) -> String? { request.uri.formQueryValue(name).flatMap { $0.isEmpty ? nil : $0 } }
            status = value("status")
            workflowId = value("workflow_id")
            agentId = value("agent_id")
            page = max(1, Int(value("current_page") ?? "") ?? 1)
        }

        /// `status=…&workflow_id=…&agent_id=…` (percent-encoded), without the page.
        var filterQuery: String {
            [("status", status), ("workflow_id", workflowId), ("agent_id", agentId)].compactMap { name, value in
                value.map { "\(name)=\($0.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")" }
            }.joined(separator: "&")
        }

        func matches(_ task: JSONValue) -> Bool {
            (status == nil || task["task_status"]?.stringValue == status)
                && (workflowId == nil || task["workflow_id"]?.stringValue == workflowId)
                && (agentId == nil || task["agent_id"]?.stringValue == agentId)
        }
    }

    func tasksPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let query = TaskListQuery(request)
        let filter = query.filterQuery
        let listing = try await get(
            viewer, "/r/tasks?per_page=\(Self.tasksPerPage)&current_page=\(query.page)" + (filter.isEmpty ? "" : "&" + filter), context)
        let workflows = try await get(viewer, "/r/workflows?per_page=100", context)["workflow_list"]?.arrayValue ?? []
        let names = Self.workflowNames(workflows)
        let rows = (listing["task_list"]?.arrayValue ?? []).map { Self.taskRow($0, names: names) }
        let total = listing["page_meta"]?["total_count"]?.integer ?? 0
        let pages = max(1, (total + Self.tasksPerPage - 1) / Self.tasksPerPage)
        let statusOptions = (["": "any status"] + TaskStatus.allCases.map { ($0.rawValue, $0.rawValue) }).map { value, label -> HTML in
            "<option value=\"\(value)\"\(HTML(raw: query.status ?? "" == value ? " selected" : ""))>\(label)</option>"
        }
        let workflowOptions =
            [HTML("<option value=\"\">any workflow</option>")]
            + workflows.map { workflow -> HTML in
                let id = workflow["id"]?.stringValue ?? ""
                return "<option value=\"\(id)\"\(HTML(raw: query.workflowId == id ? " selected" : ""))>\(workflow["display_name"])</option>"
            }
        func pageLink(_ number: Int, _ label: String, rel: String) -> HTML {
            guard number >= 1, number <= pages, number != query.page else { return "<span class=\"muted\">\(label)</span>" }
            return
                "<a rel=\"\(rel)\" href=\"/tasks?current_page=\(number)\(HTML(raw: filter.isEmpty ? "" : "&amp;" + HTML.escape(filter)))\">\(label)</a>"
        }
        let body: HTML = """
            <h1>Tasks</h1>
            <form method="get" action="/tasks" class="filters">
            <label for="f-status">Status</label><select id="f-status" name="status">\(statusOptions)</select>
            <label for="f-workflow">Workflow</label><select id="f-workflow" name="workflow_id">\(workflowOptions)</select>
            <label for="f-agent">Agent</label><input id="f-agent" name="agent_id" value="\(query.agentId)" placeholder="agent id" maxlength="128">
            <button type="submit">Filter</button></form>
            <p class="muted" aria-live="polite"><span id="task-count">\(total)</span> tasks · page \(query.page) of \(pages)
            <span id="live-state" class="live">live</span></p>
            <div class="scroll"><table class="tasks" data-live="/live/tasks?\(filter)" data-page="\(query.page)" data-per-page="\(Self.tasksPerPage)">
            <thead><tr><th scope="col">Task</th><th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Progress</th>
            <th scope="col">Agent</th><th scope="col">Created</th><th scope="col">Took</th></tr></thead>
            <tbody id="task-rows">\(rows)</tbody></table></div>
            \(rows.isEmpty ? HTML("<p id=\"no-tasks\">No tasks yet. <a href=\"/workflows\">Run a workflow</a> to see one here.</p>") : "")
            <nav class="pages" aria-label="Pages">\(pageLink(query.page - 1, "← newer", rel: "prev")) \(pageLink(query.page + 1, "older →", rel: "next"))</nav>
            """
        return layout(viewer, title: "Tasks", active: "/tasks", body: body).response(csp: contentSecurityPolicy())
    }

    static func workflowNames(_ workflows: [JSONValue]) -> [String: String] {
        Dictionary(
            workflows.compactMap { workflow in workflow["id"]?.stringValue.map { ($0, workflow["display_name"]?.stringValue ?? $0) } },
            uniquingKeysWith: { first, _ in first })
    }

    /// One row of the tasks table (also what the live stream sends for a changed task).
    static func taskRow(_ task: JSONValue, names: [String: String], progress: Double? = nil) -> HTML {
        let id = task["id"]?.stringValue ?? ""
        let workflowId = task["workflow_id"]?.stringValue ?? ""
        let status = task["task_status"]?.stringValue ?? ""
        let agent = task["agent_id"]?.stringValue
        let progressCell: HTML =
            status == "running"
            ? "<progress max=\"1\"\(HTML(raw: progress.map { " value=\"\($0)\"" } ?? "")) aria-label=\"progress of task \(String(id.prefix(8)))\"></progress>"
            : ""
        return """
            <tr id="task-\(id)" data-status="\(status)"><td><a href="/tasks/\(id)" class="mono">\(String(id.prefix(8)))…</a></td>
            <td>\(names[workflowId] ?? String(workflowId.prefix(8)))</td><td>\(HTML.badge(status))</td><td>\(progressCell)</td>
            <td>\(agent.map { HTML("<a href=\"/tasks?agent_id=\($0.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")\">\($0)</a>") } ?? "—")</td>
            <td>\(HTML.time(task["created_at"]))</td><td data-from="\(task["started_at"])" data-to="\(task["completed_at"])"></td></tr>
            """
    }

    /// `GET /live/tasks`: the team's task changes as Server-Sent Events for an open tasks page: `event: task` with the
    /// changed task's row (or `"remove": true` when it left the page's filter), `event: refresh` when more changed at
    /// once than rows are worth sending (the page re-reads its first page). Changes are read at most ten times a
    /// second, so a thousand tasks changing per second cost the page ten small batches.
    func liveTasks(_ request: Request, _ context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try context.requireCaller().requireTeam()
        let query = TaskListQuery(request)
        guard let slot = streams.acquire(teamId) else {
            throw SwitchyardError.tooManyRequests(
                "the team has \(streams.maximumPerTeam) event streams open on this server, its limit (streams.maxPerTeam); close a tab",
                retryAfter: 5)
        }
        let hub = self.hub
        let watcher = hub.watchAll()
        let body = ResponseBody { writer in
            defer {
                hub.unwatch(watcher)
                slot.release()
            }
            var names: [UUID: String] = [:]
            try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
            // The stream ends when the server shuts down gracefully (the page reconnects when it is back), so an open
            // tab never holds a restart up.
            try await withGracefulShutdownHandler {
                while !watcher.isStopped {
                    try await self.sendChanges(of: watcher, teamId: teamId, query: query, names: &names, to: &writer)
                }
            } onGracefulShutdown: {
                watcher.stop()
            }
            try await writer.finish(nil)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Waits for changes (a keep-alive comment every 15 s without any), lets a burst gather for a tenth of a second,
    /// then writes each changed task's row — or one `refresh` when more changed than two pages show.
    private func sendChanges(
        of watcher: TaskChangeWatcher, teamId: UUID, query: TaskListQuery, names: inout [UUID: String], to writer: inout some ResponseBodyWriter
    ) async throws {
        guard await watcher.signal.wait(timeout: .seconds(15)) else {
            try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
            return
        }
        guard !watcher.isStopped else { return }
        try await Task.sleep(for: .milliseconds(100))
        let (ids, all) = watcher.take()
        if all || ids.count > Self.tasksPerPage * 2 {
            try await writer.write(ByteBuffer(string: "event: refresh\ndata: {}\n\n"))
            return
        }
        var text = ""
        for id in ids {
            guard let task = try await storage.task(id: id, teamId: teamId) else { continue }
            if names[task.workflowId] == nil {
                names[task.workflowId] = try await storage.workflow(id: task.workflowId, teamId: teamId)?.definition.displayName ?? ""
            }
            let summary = Presenters.task(task, summary: true)
            let progress = hub.progress(of: task.id, after: 0)?.data["progress"]?.numberValue.map { $0.doubleValue }
            var data: [String: JSONValue] = ["id": .uuid(task.id), "task_status": .string(task.status.rawValue)]
            if query.matches(summary) {
                let row = Self.taskRow(summary, names: [task.workflowId.lowercased: names[task.workflowId] ?? ""], progress: progress)
                data["html"] = .string(row.text)
                if let progress { data["progress"] = .number(JSONNumber(progress)) }
            } else {
                data["remove"] = true
            }
            text += "event: task\ndata: \(JSONValue.object(data).jsonString)\n\n"
        }
        if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
    }

    // MARK: A task

    func taskPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        guard let taskId = UUID(text: context.parameters.get("taskId") ?? "") else { throw PageFailure(status: 404, message: "task not found") }
        let task = try await get(viewer, "/r/tasks/\(taskId.lowercased)", context)
        let result = try await get(viewer, "/r/tasks/\(taskId.lowercased)/result", context)
        let workflowId = task["workflow_id"]?.stringValue ?? ""
        let workflow = try? await get(viewer, "/r/workflows/\(workflowId)", context)
        let events = try await storage.taskEvents(taskId: taskId, teamId: UUID(text: viewer.teamId) ?? UUID(), afterSequence: 0) ?? []
        let status = task["task_status"]?.stringValue ?? ""
        let terminal = ["completed", "failed", "cancelled"].contains(status)
        let name = workflow?["display_name"]?.stringValue ?? workflowId
        let parameters = (task["parameters"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.map { key, value -> HTML in
            "<tr><th scope=\"row\">\(key)</th><td class=\"mono\">\(value)</td></tr>"
        }
        let eventRows = events.map(Self.eventRow)
        var actions: [HTML] = []
        if viewer.canRun, !terminal {
            actions.append(
                "<button type=\"button\" class=\"danger\" data-api=\"POST /api/v1/r/tasks/\(taskId.lowercased)/cancel\" data-confirm=\"Cancel this task?\" data-done=\"reload\">Cancel task</button>"
            )
        }
        if viewer.canRun, workflow != nil {
            actions.append("<a class=\"button\" href=\"/workflows/\(workflowId)/run?from=\(taskId.lowercased)\">Run again with these parameters</a>")
        }
        let body: HTML = """
            <p><a href="/tasks">← Tasks</a></p>
            <h1>\(name) <span id="task-status">\(HTML.badge(status))</span></h1>
            <p class="mono muted">\(taskId.lowercased)</p>
            <div class="actions">\(actions)</div><output class="error" role="alert"></output>
            <section aria-labelledby="h-progress" id="live-task" data-events="/api/v1/r/tasks/\(taskId.lowercased)/events" data-terminal="\(terminal ? "true" : "false")">
            <h2 id="h-progress">Progress</h2>
            <progress id="task-progress" max="1" value="\(status == "completed" ? "1" : "0")" aria-label="task progress"></progress>
            <p id="task-node" class="muted">\(terminal ? "" : "waiting for the first progress report")</p></section>
            \(Self.errorSection(task["task_error"]?.stringValue ?? ""))
            <section aria-labelledby="h-outputs"><h2 id="h-outputs">Outputs</h2>\(Self.outputs(result))</section>
            <section aria-labelledby="h-timings"><h2 id="h-timings">Timings</h2><dl class="grid">
            <dt>Created</dt><dd>\(HTML.time(task["created_at"]))</dd><dt>Started</dt><dd>\(HTML.time(task["started_at"]))</dd>
            <dt>Finished</dt><dd>\(HTML.time(task["completed_at"]))</dd>
            <dt>Queued for</dt><dd data-from="\(task["created_at"])" data-to="\(task["started_at"])"></dd>
            <dt>Ran for</dt><dd data-from="\(task["started_at"])" data-to="\(task["completed_at"])"></dd>
            <dt>Agent</dt><dd>\(task["agent_id"]?.stringValue ?? "—") \(task["gpu_type"]?.stringValue ?? "")</dd>
            <dt>Attempts</dt><dd>\((task["retry_count"]?.integer ?? 0) + 1) of at most \((task["max_retries"]?.integer ?? 0) + 1)</dd>
            <dt>Runs on</dt><dd>\(task["dispatch_target"]) · pool \(task["target_pool"])</dd></dl></section>
            <section aria-labelledby="h-params"><h2 id="h-params">Parameters</h2>
            \(parameters.isEmpty ? HTML("<p class=\"muted\">none (the workflow's defaults)</p>") : HTML("<table class=\"kv\"><tbody>\(parameters)</tbody></table>"))</section>
            <section aria-labelledby="h-events"><h2 id="h-events">Event log</h2><div class="scroll"><table class="events">
            <thead><tr><th scope="col">#</th><th scope="col">Event</th><th scope="col">When</th><th scope="col">Data</th></tr></thead>
            <tbody id="event-rows">\(eventRows)</tbody></table></div></section>
            """
        return layout(viewer, title: "Task \(taskId.lowercased.prefix(8))", active: "/tasks", body: body).response(csp: contentSecurityPolicy())
    }

    static func eventRow(_ event: TaskEventRecord) -> HTML {
        "<tr><td>\(event.sequence)</td><td>\(event.kind.rawValue)</td><td>\(HTML.time(.date(event.createdAt)))</td><td class=\"mono small\">\(event.data.jsonString)</td></tr>"
    }

    /// A failed task's error, with the node, its class and the message apart when ComfyUI named them.
    static func errorSection(_ error: String) -> HTML {
        guard !error.isEmpty else { return "" }
        var detail: HTML = "<pre class=\"wrap\">\(error)</pre>"
        if let match = error.firstMatch(of: /node (\S+) \(([^)]*)\) failed: (.*)/.dotMatchesNewlines()) {
            detail = """
                <dl class="grid"><dt>Node</dt><dd class="mono">\(String(match.1))</dd><dt>Class</dt><dd class="mono">\(String(match.2))</dd>
                <dt>Message</dt><dd><pre class="wrap">\(String(match.3))</pre></dd></dl>
                """
        }
        return "<section aria-labelledby=\"h-error\" class=\"failure\"><h2 id=\"h-error\">Error</h2>\(detail)</section>"
    }

    /// Every output previewed by its content type, with a download link.
    static func outputs(_ result: JSONValue) -> HTML {
        if let message = result["outputs_message"]?.stringValue { return "<p class=\"muted\">\(message)</p>" }
        let urls = result["download_urls"]?.objectValue ?? [:]
        let files = result["task_output"]?["outputs"]?.objectValue ?? [:]
        guard !urls.isEmpty else {
            return result["task_status"]?.stringValue == "completed"
                ? "<p class=\"muted\">The task wrote no files.</p>" : "<p class=\"muted\">Outputs appear here when the task completes.</p>"
        }
        let items = urls.sorted { $0.key < $1.key }.map { outputId, url -> HTML in
            let file = files[outputId]
            let type = file?["content_type"]?.stringValue ?? ""
            let name = file?["filename"]?.stringValue ?? file?["file_name"]?.stringValue ?? outputId
            let link = url.stringValue ?? ""
            let preview: HTML =
                if type.hasPrefix("image/") { "<img src=\"\(link)\" alt=\"output \(name)\" loading=\"lazy\">" } else if type.hasPrefix("video/") {
                    "<video src=\"\(link)\" controls preload=\"metadata\" aria-label=\"output \(name)\"></video>"
                } else if type.hasPrefix("audio/") {
                    "<audio src=\"\(link)\" controls preload=\"metadata\" aria-label=\"output \(name)\"></audio>"
                } else if type.hasPrefix("text/") || type == "application/json" {
                    "<pre class=\"wrap\" data-text-src=\"\(link)\">loading…</pre>"
                } else { "" }
            return
                "<figure>\(preview)<figcaption><a href=\"\(link)\" download=\"\(name)\">\(name)</a> <span class=\"muted\">\(type)</span></figcaption></figure>"
        }
        return "<div class=\"outputs\">\(items)</div>"
    }
}
