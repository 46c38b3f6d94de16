import Foundation
import Hummingbird
import SwitchyardCore

/// Workflows: the list with import, a workflow's page with the parameter editor and snapshots, a snapshot's
/// side-by-side diff, and the run form generated from the parameters.
extension Dashboard {
    func addWorkflowRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("workflows") { request, context in try await page(request, context) { try await workflowsPage(context, $0) } }
        router.get("workflows/{workflowId}") { request, context in
            try await page(request, context) { try await workflowPage(context, $0) }
        }
        router.get("workflows/{workflowId}/snapshots/{version}") { request, context in
            try await page(request, context) { try await snapshotPage(context, $0) }
        }
        router.get("workflows/{workflowId}/run") { request, context in
            try await page(request, context) { try await runPage(request, context, $0) }
        }
    }

    func workflowsPage(_ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let workflows = try await get(viewer, "/r/workflows?per_page=100", context)["workflow_list"]?.arrayValue ?? []
        let rows = workflows.map { workflow -> HTML in
            let id = workflow["id"]?.stringValue ?? ""
            let run: HTML = viewer.canRun && workflow["workflow_status"]?.stringValue == "active" ? "<a href=\"/workflows/\(id)/run\">Run</a>" : ""
            return """
                <tr><td><a href="/workflows/\(id)">\(workflow["display_name"])</a></td><td class="mono">\(workflow["workflow_slug"])</td>
                <td>v\(workflow["version"])</td><td>\(HTML.badge(workflow["workflow_status"]?.stringValue))</td><td>\(workflow["tool_type"])</td>
                <td>\(HTML.time(workflow["updated_at"]))</td><td>\(run)</td></tr>
                """
        }
        let importForm: HTML =
            viewer.canManage
            ? """
            <section aria-labelledby="h-import"><h2 id="h-import">Import a workflow</h2>
            <p class="muted">In ComfyUI: Workflow → Export (API). Paste the file's JSON or choose the file, then mark parameters on the next
            page. A Switchyard export (an import body with <code>workflow_json</code> and its parameters, such as
            <code>examples/workflows/invert.json</code>) is imported whole.</p>
            <form data-api="POST /api/v1/workflows/import" data-done="go:/workflows/{id}" class="stack">
            <label for="i-name">Name</label><input id="i-name" name="display_name" required maxlength="255" data-slug-source="i-slug">
            <label for="i-slug">Slug (lowercase letters, digits, hyphens)</label>
            <input id="i-slug" name="workflow_slug" required minlength="2" maxlength="100" pattern="[a-z0-9]+(-[a-z0-9]+)*">
            <label for="i-file">Workflow file (API format)</label><input id="i-file" type="file" accept="application/json,.json" data-load-into="i-json">
            <label for="i-json">Workflow JSON</label><textarea id="i-json" name="workflow_json" data-type="json" rows="8" required></textarea>
            <button type="submit">Import</button><output class="error" role="alert"></output></form></section>
            """ : ""
        let body: HTML = """
            <h1>Workflows</h1>
            \(workflows.isEmpty ? HTML("<p>No workflows yet.</p>") : HTML("""
            <div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Slug</th><th scope="col">Version</th>
            <th scope="col">Status</th><th scope="col">Tool</th><th scope="col">Updated</th><th scope="col"><span class="sr">Run</span></th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """))
            \(importForm)
            """
        return layout(viewer, title: "Workflows", active: "/workflows", body: body).response(csp: contentSecurityPolicy())
    }

    func workflowPage(_ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let id = context.parameters.get("workflowId") ?? ""
        let path = "/workflows/\(id.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")"
        let workflow = try await viewer.canManage ? get(viewer, path, context) : get(viewer, "/r" + path, context)
        let snapshots = try await getIfAllowed(viewer, path + "/snapshots?per_page=50", context)?["snapshot_list"]?.arrayValue ?? []
        let active = workflow["workflow_status"]?.stringValue == "active"
        let version = workflow["version"]?.integer ?? 0
        let parameters = workflow["parameters"]?.arrayValue ?? []
        let targets = Self.graphTargets(workflow["workflow_json"])
        let summary = parameters.map { parameter -> HTML in
            let target =
                parameter["target_path"]?.stringValue
                ?? "node \(parameter["node_id"]?.stringValue ?? "?") · \(parameter["field"]?.stringValue ?? "?")"
            return """
                <tr><td class="mono">\(parameter["key"])</td><td>\(parameter["type"])</td><td>\(parameter["label"])</td>
                <td>\(parameter["required"]?.boolValue == true ? "yes" : "no")</td><td class="mono">\(parameter["default"])</td><td class="mono">\(target)</td></tr>
                """
        }
        var manage: HTML = ""
        if viewer.canManage {
            let rows = parameters.enumerated().map { Self.parameterRow($0.element, index: $0.offset, targets: targets) }
            let snapshotRows = snapshots.map { snapshot -> HTML in
                let number = snapshot["version"]?.integer ?? 0
                return """
                    <tr><td>v\(number)\(number == version ? " (current)" : "")</td><td>\(HTML.time(snapshot["created_at"]))</td><td>\(snapshot["note"])</td>
                    <td><a href="/workflows/\(id)/snapshots/\(number)">Compare with current</a></td></tr>
                    """
            }
            manage = """
                <section aria-labelledby="h-editor"><h2 id="h-editor">Edit parameters</h2>
                <p class="muted">Pick where each value goes from the graph's nodes and inputs. Saving makes version \(version + 1).</p>
                <form data-editor="parameters" data-api="PUT /api/v1\(path)" data-done="reload" class="stack">
                <div id="param-rows">\(rows)</div>
                <template id="param-template">\(Self.parameterRow([:], index: -1, targets: targets))</template>
                <button type="button" class="secondary" data-add-row="param-rows">Add a parameter</button>
                <fieldset><legend>Dispatch</legend>
                <label for="w-labels">Required agent labels (comma-separated)</label>
                <input id="w-labels" name="required_labels" data-type="list" value="\((workflow["required_labels"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))">
                <label for="w-target">Default dispatch target</label><select id="w-target" name="default_dispatch_target">
                \(["agent", "comfy_cloud"].map { value -> HTML in "<option\(HTML(raw: workflow["default_dispatch_target"]?.stringValue == value ? " selected" : ""))>\(value)</option>" })</select>
                <label for="w-timeout">Timeout (seconds after the agent takes it; 0: none)</label>
                <input id="w-timeout" name="task_timeout" type="number" min="0" data-type="number" value="\(workflow["task_timeout"])">
                <label for="w-retries">Retries</label><input id="w-retries" name="max_retries" type="number" min="0" data-type="number" value="\(workflow["max_retries"])">
                </fieldset>
                <button type="submit">Save as version \(version + 1)</button><output class="error" role="alert"></output></form></section>
                <section aria-labelledby="h-status"><h2 id="h-status">Status</h2>
                <button type="button" data-api="PUT /api/v1\(path)" data-body='{"workflow_status":"\(active ? "disabled" : "active")"}' data-done="reload">\(active ? "Disable (new runs are refused)" : "Enable")</button>
                <output class="error" role="alert"></output></section>
                <section aria-labelledby="h-snapshots"><h2 id="h-snapshots">Snapshots</h2>
                <div class="scroll"><table><thead><tr><th scope="col">Version</th><th scope="col">Saved</th><th scope="col">Note</th><th scope="col">Diff</th></tr></thead>
                <tbody>\(snapshotRows)</tbody></table></div></section>
                """
        }
        let body: HTML = """
            <p><a href="/workflows">← Workflows</a></p>
            <h1>\(workflow["display_name"]) <small>v\(version)</small> \(HTML.badge(workflow["workflow_status"]?.stringValue))</h1>
            <p>\(workflow["description"])</p>
            <div class="actions">\(viewer.canRun && active ? HTML("<a class=\"button\" href=\"/workflows/\(id)/run\">Run</a>") : "")
            <a class="button secondary" href="/tasks?workflow_id=\(id)">Its tasks</a></div>
            <section aria-labelledby="h-params"><h2 id="h-params">Parameters</h2>
            \(parameters.isEmpty ? HTML("<p class=\"muted\">None: every run uses the graph as saved.</p>") : HTML("""
            <div class="scroll"><table><thead><tr><th scope="col">Key</th><th scope="col">Type</th><th scope="col">Label</th><th scope="col">Required</th>
            <th scope="col">Default</th><th scope="col">Target</th></tr></thead><tbody>\(summary)</tbody></table></div>
            """))</section>
            \(manage)
            """
        return layout(viewer, title: workflow["display_name"]?.stringValue ?? "Workflow", active: "/workflows", body: body)
            .response(csp: contentSecurityPolicy())
    }

    /// Every literal input of a ComfyUI graph, as `node_id/field` with a readable label (links between nodes are not
    /// parameters).
    static func graphTargets(_ graph: JSONValue?) -> [(value: String, label: String)] {
        guard let nodes = graph?.objectValue else { return [] }
        let ordered = nodes.keys.sorted { (Int($0) ?? .max, $0) < (Int($1) ?? .max, $1) }
        return ordered.flatMap { nodeId -> [(value: String, label: String)] in
            let node = nodes[nodeId]
            let type = node?["class_type"]?.stringValue ?? "?"
            let title = node?["_meta"]?["title"]?.stringValue
            return (node?["inputs"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.compactMap { field, value in
                // What `validateTargets` accepts: every input but a link to another node.
                if DefinitionGraph.link(value) != nil { return nil }
                var shown = HTML.plain(value)
                if shown.count > 30 { shown = String(shown.prefix(30)) + "…" }
                return ("\(nodeId)/\(field)", "\(nodeId) · \(title ?? type) · \(field) = \(shown)")
            }
        }
    }

    /// One row of the parameter editor (`index` -1: the template for new rows; its ids are made unique when cloned).
    static func parameterRow(_ parameter: JSONValue, index: Int, targets: [(value: String, label: String)]) -> HTML {
        let suffix = index < 0 ? "new" : String(index)
        func field(_ name: String, _ label: String, _ input: HTML) -> HTML {
            "<div><label for=\"p-\(name)-\(suffix)\">\(label)</label>\(input)</div>"
        }
        let kind = parameter["type"]?.stringValue ?? "string"
        let current = parameter["node_id"]?.stringValue.map { "\($0)/\(parameter["field"]?.stringValue ?? "")" } ?? ""
        let typeOptions = ParameterDefinition.Kind.allCases.map { option -> HTML in
            "<option\(HTML(raw: option.rawValue == kind ? " selected" : ""))>\(option.rawValue)</option>"
        }
        let targetOptions =
            [HTML("<option value=\"\">choose a node input</option>")]
            + targets.map { target -> HTML in
                "<option value=\"\(target.value)\"\(HTML(raw: target.value == current ? " selected" : ""))>\(target.label)</option>"
            }
        let list = { (name: String) in (parameter[name]?.arrayValue ?? []).map(HTML.plain).joined(separator: ", ") }
        return """
            <fieldset class="param-row"><legend>Parameter \(parameter["key"]?.stringValue ?? "(new)")</legend><div class="cols">
            \(field("key", "Key", "<input id=\"p-key-\(suffix)\" data-p=\"key\" required maxlength=\"100\" value=\"\(parameter["key"])\">"))
            \(field("type", "Type", "<select id=\"p-type-\(suffix)\" data-p=\"type\">\(typeOptions)</select>"))
            \(field("label", "Label", "<input id=\"p-label-\(suffix)\" data-p=\"label\" maxlength=\"255\" value=\"\(parameter["label"])\">"))
            \(field("target", "Node and input", "<select id=\"p-target-\(suffix)\" data-p=\"target\">\(targetOptions)</select>"))
            \(field("default", "Default", "<input id=\"p-default-\(suffix)\" data-p=\"default\" value=\"\(parameter["default"])\">"))
            \(field("min", "Min (numbers)", "<input id=\"p-min-\(suffix)\" data-p=\"min\" type=\"number\" step=\"any\" value=\"\(parameter["min"])\">"))
            \(field("max", "Max (numbers)", "<input id=\"p-max-\(suffix)\" data-p=\"max\" type=\"number\" step=\"any\" value=\"\(parameter["max"])\">"))
            \(field("options", "Options (select; comma-separated)", "<input id=\"p-options-\(suffix)\" data-p=\"options\" value=\"\(list("options"))\">"))
            \(field("accept", "Accept (file; e.g. image/*)", "<input id=\"p-accept-\(suffix)\" data-p=\"accept\" value=\"\(list("accept"))\">"))
            \(field("description", "Description", "<input id=\"p-description-\(suffix)\" data-p=\"description\" maxlength=\"2000\" value=\"\(parameter["description"])\">"))
            <div class="check"><input type="checkbox" id="p-required-\(suffix)" data-p="required"\(HTML(raw: parameter["required"]?.boolValue == true ? " checked" : ""))>
            <label for="p-required-\(suffix)">Required</label></div>
            <div><button type="button" class="secondary" data-remove-row>Remove</button></div></div></fieldset>
            """
    }

    func snapshotPage(_ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let id = context.parameters.get("workflowId") ?? ""
        guard let version = Int(context.parameters.get("version") ?? "") else { throw PageFailure(status: 404, message: "snapshot not found") }
        let path = "/workflows/\(id.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")"
        let current = try await get(viewer, path, context)
        let snapshot = try await get(viewer, path + "/snapshots/\(version)", context)
        let keep = [
            "workflow_json", "parameters", "display_name", "description", "required_labels", "default_dispatch_target", "task_timeout", "max_retries",
        ]
        func comparable(_ value: JSONValue) -> [String] {
            PrettyJSON.lines(.object((value.objectValue ?? [:]).filter { keep.contains($0.key) }))
        }
        let rows = LineDiff.sideBySide(comparable(snapshot), comparable(current)).map { row -> HTML in
            let kind = row.left == row.right ? "same" : "changed"
            return "<tr class=\"\(kind)\"><td class=\"mono\">\(row.left ?? "")</td><td class=\"mono\">\(row.right ?? "")</td></tr>"
        }
        let currentVersion = current["version"]?.integer ?? 0
        let body: HTML = """
            <p><a href="/workflows/\(id)">← \(current["display_name"])</a></p>
            <h1>Version \(version) against the current version \(currentVersion)</h1>
            \(version == currentVersion ? "" : HTML("""
            <button type="button" data-api="POST /api/v1\(path)/snapshots/\(version)/restore" data-confirm="Restore version \(version)? It becomes version \(currentVersion + 1)." data-done="go:/workflows/\(id)">Restore version \(version)</button>
            <output class="error" role="alert"></output>
            """))
            <div class="scroll"><table class="diff"><thead><tr><th scope="col">Version \(version)</th><th scope="col">Current (v\(currentVersion))</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
        return layout(viewer, title: "Snapshot \(version)", active: "/workflows", body: body).response(csp: contentSecurityPolicy())
    }

    func runPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let id = context.parameters.get("workflowId") ?? ""
        let workflow = try await get(viewer, "/r/workflows/\(id.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")", context)
        var previous: [String: JSONValue] = [:]
        if let from = request.uri.formQueryValue("from"), let taskId = UUID(text: from) {
            previous = try await get(viewer, "/r/tasks/\(taskId.lowercased)", context)["parameters"]?.objectValue ?? [:]
        }
        let fields = (workflow["parameters"]?.arrayValue ?? []).enumerated().map { index, parameter in
            Self.runField(parameter, index: index, previous: previous[parameter["key"]?.stringValue ?? ""])
        }
        let workflowId = workflow["id"]?.stringValue ?? id
        let body: HTML = """
            <p><a href="/workflows/\(workflowId)">← \(workflow["display_name"])</a></p>
            <h1>Run \(workflow["display_name"])</h1>
            <form data-run="/api/v1/r/workflows/\(workflowId)/run" class="stack" novalidate>
            \(fields.isEmpty ? HTML("<p class=\"muted\">This workflow takes no parameters.</p>") : HTML("\(fields)"))
            <details><summary>Where it runs</summary><div class="stack">
            <label for="run-target">Dispatch target</label><select id="run-target" name="dispatch_target" data-type="run-option">
            <option value="">the workflow's default (\(workflow["default_dispatch_target"]?.stringValue ?? "agent"))</option>
            <option value="agent">agent: the team's machines</option><option value="comfy_cloud">comfy_cloud: Comfy Cloud</option></select>
            <label for="run-pool">Pool (agents)</label><select id="run-pool" name="target_pool" data-type="run-option">
            <option value="">team (the default)</option><option value="community">community: opted-in agents of every team</option></select>
            <label for="run-region">Your region (optional, for ranking agents)</label>
            <input id="run-region" name="submitter_region" data-type="run-option" maxlength="64" placeholder="eu-central">
            <span class="field-error" data-for="dispatch_target"></span><span class="field-error" data-for="target_pool"></span>
            <span class="field-error" data-for="submitter_region"></span></div></details>
            <button type="submit"\(HTML(raw: viewer.canRun ? "" : " disabled"))>Run</button><output class="error" role="alert"></output></form>
            """
        return layout(viewer, title: "Run", active: "/workflows", body: body).response(csp: contentSecurityPolicy())
    }

    /// One input of the run form, typed by the parameter (a previous run's value filled in).
    static func runField(_ parameter: JSONValue, index: Int, previous: JSONValue?) -> HTML {
        let key = parameter["key"]?.stringValue ?? ""
        let kind = parameter["type"]?.stringValue ?? "string"
        let value = previous ?? parameter["default"]
        let required = parameter["required"]?.boolValue == true
        let fieldId = "run-\(index)"
        let label: HTML = "<label for=\"\(fieldId)\">\(parameter["label"]?.stringValue ?? key)\(required ? " (required)" : "")</label>"
        let requiredAttribute = HTML(raw: required ? " required" : "")
        let input: HTML
        switch kind {
        case "number":
            input =
                "<input id=\"\(fieldId)\" name=\"\(key)\" type=\"number\" step=\"any\" data-type=\"number\"\(HTML(raw: parameter["min"].map { " min=\"\(HTML.escape(HTML.plain($0)))\"" } ?? ""))\(HTML(raw: parameter["max"].map { " max=\"\(HTML.escape(HTML.plain($0)))\"" } ?? "")) value=\"\(value)\"\(requiredAttribute)>"
        case "boolean":
            return """
                <div class="check"><input id="\(fieldId)" name="\(key)" type="checkbox" data-type="boolean"\(HTML(raw: value?.boolValue == true ? " checked" : ""))>
                \(label)<span class="field-error" data-for="\(key)"></span></div>
                """
        case "select":
            let options = (parameter["options"]?.arrayValue ?? []).map { option -> HTML in
                "<option value=\"\(HTML.plain(option))\" data-json=\"\(option.jsonString)\"\(HTML(raw: option == value ? " selected" : ""))>\(HTML.plain(option))</option>"
            }
            input =
                "<select id=\"\(fieldId)\" name=\"\(key)\" data-type=\"select\"\(requiredAttribute)>\(HTML(raw: required ? "" : "<option value=\"\">(default)</option>"))\(options)</select>"
        case "file":
            let accept = (parameter["accept"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ",")
            input = """
                <input id="\(fieldId)" name="\(key)" type="file" data-type="file" accept="\(accept)" data-previous="\(previous?.stringValue)"\(HTML(raw: required && previous == nil ? " required" : ""))>
                \(previous?.stringValue.map { _ in HTML("<span class=\"muted\">Leave empty to use the previous run's file.</span>") } ?? "")
                <progress max="1" value="0" hidden aria-label="upload of \(key)"></progress>
                """
        default:
            input = "<textarea id=\"\(fieldId)\" name=\"\(key)\" data-type=\"string\" rows=\"2\"\(requiredAttribute)>\(value)</textarea>"
        }
        let help: HTML = parameter["description"]?.stringValue.map { "<span class=\"muted\">\($0)</span>" } ?? ""
        return "<div class=\"field\">\(label)\(input)\(help)<span class=\"field-error\" data-for=\"\(key)\"></span></div>"
    }
}
