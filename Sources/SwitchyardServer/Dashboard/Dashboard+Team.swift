import Foundation
import HTTPTypes
import Hummingbird
import SwitchyardCore

/// Agents, models, keys, webhooks, the team, device approval and accepting an invitation.
extension Dashboard {
    func addTeamRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("agents") { request, context in try await page(request, context) { try await agentsPage(request, context, $0) } }
        router.get("models") { request, context in try await page(request, context) { try await modelsPage(context, $0) } }
        router.get("keys") { request, context in try await page(request, context) { try await keysPage(context, $0) } }
        router.get("webhooks") { request, context in try await page(request, context) { try await webhooksPage(request, context, $0) } }
        router.get("team") { request, context in try await page(request, context) { try await teamPage(request, context, $0) } }
        router.get("pair") { request, context in try await page(request, context) { try await pairPage(request, context, $0) } }
        router.get("invite") { request, _ in invitePage(request, message: nil) }
        router.post("invite") { request, context in try await acceptInvitation(request, context) }
    }

    func agentsPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let agents = try await get(viewer, "/agents?per_page=100", context)["agent_list"]?.arrayValue ?? []
        let rows = agents.map { agent -> HTML in
            let id = agent["agent_id"]?.stringValue ?? ""
            let status = agent["agent_status"]?.stringValue ?? ""
            let sync: HTML =
                agent["sync_percent"]?.numberValue.map {
                    "<progress max=\"100\" value=\"\(HTML.plain(.number($0)))\" aria-label=\"sync of \(id)\"></progress> \(agent["sync_detail"])"
                } ?? ""
            let gpus = (agent["system_stats"]?["gpu_devices"]?.arrayValue ?? []).map { device -> String in
                let total = device["vram_total"]?.numberValue?.doubleValue ?? 0
                return "\(device["device_name"]?.stringValue ?? "GPU") (\(String(format: "%.0f", total / 1_073_741_824)) GiB)"
            }.joined(separator: ", ")
            let running = (agent["running_tasks"]?.arrayValue ?? []).compactMap(\.stringValue).map {
                HTML("<a href=\"/tasks/\($0)\" class=\"mono\">\(String($0.prefix(8)))</a>")
            }
            return """
                <tr id="agent-\(id)"><td><a href="/tasks?agent_id=\(id.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")">\(id)</a></td>
                <td>\(HTML.badge(status)) \(sync)</td><td>\((agent["agent_labels"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))</td>
                <td>\(agent["region"])</td><td>\(gpus.isEmpty ? "—" : gpus)</td><td>\(agent["running_count"])/\(agent["gpu_capacity"]) \(running)</td>
                <td>agent \(agent["agent_version"]) · \(agent["tool"]) \(agent["tool_version"])</td><td>\(HTML.time(agent["last_heartbeat"]))</td></tr>
                """
        }
        let origin = BrowserSessions.origin(of: request)
        let connect: HTML =
            viewer.canManage
            ? """
            <section aria-labelledby="h-connect"><h2 id="h-connect">Connect a new agent</h2>
            <p>On the GPU machine, with ComfyUI running on port 8188, run the command below. The key is created now and shown once.</p>
            <form data-api="POST /api/v1/credentials" data-extra='{"kind":"agent"}' data-done="show:agent-command" class="stack">
            <label for="a-name">Key name</label><input id="a-name" name="display_name" required maxlength="100" value="agent">
            <button type="submit">Create an agent key</button><output class="error" role="alert"></output></form>
            <div id="agent-command" hidden><pre class="wrap" data-template="SWITCHYARD_AGENT_KEY={raw_key} switchyard agent --server \(origin) --comfyui http://127.0.0.1:8188"></pre>
            <button type="button" data-copy="agent-command">Copy</button></div></section>
            """ : ""
        let body: HTML = """
            <h1>Agents</h1><p class="muted" aria-live="polite">\(agents.count) agents · refreshed every 5 s <span id="agents-refresh"></span></p>
            <div class="scroll" data-refresh="5"><table id="agents"><thead><tr><th scope="col">Agent</th><th scope="col">Status</th><th scope="col">Labels</th>
            <th scope="col">Region</th><th scope="col">GPUs</th><th scope="col">Running</th><th scope="col">Versions</th><th scope="col">Last heartbeat</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            \(agents.isEmpty ? HTML("<p>No agent has connected yet.</p>") : "")
            \(connect)
            """
        return layout(viewer, title: "Agents", active: "/agents", body: body).response(csp: contentSecurityPolicy())
    }

    func modelsPage(_ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let models = try await get(viewer, "/models?per_page=100", context)["model_list"]?.arrayValue ?? []
        let agents = try await get(viewer, "/agents?per_page=100", context)["agent_list"]?.arrayValue ?? []
        let rows = models.map { model -> HTML in
            let id = model["id"]?.stringValue ?? ""
            let placement = ModelRecord.placement(modelPath: model["model_path"]?.stringValue, modelType: model["model_type"]?.stringValue ?? "")
            let holders = agents.filter { agent in
                placement != nil && (agent["models_held"]?.arrayValue ?? []).contains(.string(placement ?? ""))
            }.compactMap { $0["agent_id"]?.stringValue }
            let active = model["model_status"]?.stringValue == "active"
            let actions: HTML =
                viewer.canManage
                ? """
                <button type="button" class="secondary" data-api="PUT /api/v1/models/\(id)" data-body='{"model_status":"\(active ? "disabled" : "active")"}' data-done="reload">\(active ? "Disable" : "Enable")</button>
                <button type="button" class="danger" data-api="DELETE /api/v1/models/\(id)" data-confirm="Delete this model? Agents remove their copy." data-done="reload">Delete</button>
                <details><summary>Edit</summary><form data-api="PUT /api/v1/models/\(id)" data-done="reload" class="stack">
                <label for="m-name-\(id)">Name</label><input id="m-name-\(id)" name="display_name" value="\(model["display_name"])" required maxlength="255">
                <label for="m-type-\(id)">Type</label><input id="m-type-\(id)" name="model_type" value="\(model["model_type"])" required maxlength="50">
                <label for="m-path-\(id)">Path</label><input id="m-path-\(id)" name="model_path" value="\(model["model_path"])" maxlength="1024">
                <button type="submit" class="secondary">Save</button><output class="error" role="alert"></output></form></details>
                """ : ""
            return """
                <tr><td>\(model["display_name"])</td><td>\(model["model_type"])</td><td class="mono">\(model["model_path"])</td>
                <td>\(Self.bytes(model["file_size"]?.integer ?? 0))</td><td>\(HTML.badge(model["model_status"]?.stringValue)) \(model["verification_error"])</td>
                <td>\(holders.isEmpty ? "—" : holders.joined(separator: ", "))</td><td>\(actions)</td></tr>
                """
        }
        let upload: HTML =
            viewer.canManage
            ? """
            <section aria-labelledby="h-upload"><h2 id="h-upload">Upload a model</h2>
            <p class="muted">Straight to the object store: one request up to the upload cap, in parts above it.</p>
            <form data-model-upload class="stack">
            <label for="m-file">Model file</label><input id="m-file" name="file" type="file" required>
            <label for="m-name">Name</label><input id="m-name" name="display_name" required maxlength="255">
            <label for="m-type">Type (the ComfyUI models folder)</label><input id="m-type" name="model_type" required maxlength="50" list="model-types" value="checkpoints">
            <datalist id="model-types"><option value="checkpoints"><option value="loras"><option value="vae"><option value="controlnet"><option value="upscale_models"><option value="embeddings"></datalist>
            <progress max="1" value="0" hidden aria-label="model upload"></progress>
            <button type="submit">Upload and register</button><output class="error" role="alert"></output></form></section>
            """ : ""
        let body: HTML = """
            <h1>Models</h1>
            <div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Path</th><th scope="col">Size</th>
            <th scope="col">Status</th><th scope="col">Held by</th><th scope="col"><span class="sr">Actions</span></th></tr></thead><tbody>\(rows)</tbody></table></div>
            \(models.isEmpty ? HTML("<p>No models registered.</p>") : "")
            \(upload)
            """
        return layout(viewer, title: "Models", active: "/models", body: body).response(csp: contentSecurityPolicy())
    }

    func keysPage(_ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let keys = try await getIfAllowed(viewer, "/credentials?per_page=100", context)?["credentials"]?.arrayValue
        let rows = (keys ?? []).map { key -> HTML in
            let id = key["id"]?.stringValue ?? ""
            let active = key["key_status"]?.stringValue == "active"
            return """
                <tr><td>\(key["display_name"])</td><td>\(key["kind"])</td><td class="mono">\(key["key_prefix"])…</td><td>\(HTML.badge(key["key_status"]?.stringValue))</td>
                <td>\(HTML.time(key["created_at"]))</td><td>\(HTML.time(key["last_used_at"]))</td><td>\(HTML.time(key["expires_at"]))</td>
                <td>\(active && viewer.canManage ? HTML("<button type=\"button\" class=\"danger\" data-api=\"DELETE /api/v1/credentials/\(id)\" data-confirm=\"Revoke this key? Whatever uses it stops working.\" data-done=\"reload\">Revoke</button>") : "")</td></tr>
                """
        }
        let body: HTML =
            keys == nil
            ? "<h1>Keys</h1><p>Your role (\(viewer.role)) cannot see the team's keys; an owner or admin can.</p>"
            : """
            <h1>Keys</h1>
            <div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Key</th><th scope="col">Status</th>
            <th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            \(viewer.canManage ? newKeyForm : "")
            """
        return layout(viewer, title: "Keys", active: "/keys", body: body).response(csp: contentSecurityPolicy())
    }

    private var newKeyForm: HTML {
        """
        <section aria-labelledby="h-newkey"><h2 id="h-newkey">Create a key</h2>
        <form data-api="POST /api/v1/credentials" data-done="show:new-key" class="stack">
        <label for="k-name">Name</label><input id="k-name" name="display_name" required maxlength="100">
        <label for="k-kind">Kind</label><select id="k-kind" name="kind"><option value="integration">integration (sk-): the API</option>
        <option value="agent">agent (ak-): a GPU machine</option></select>
        <label for="k-expires">Expires after (days, empty: never)</label><input id="k-expires" name="expires_in_days" type="number" min="1" max="365" data-type="number">
        <button type="submit">Create key</button><output class="error" role="alert"></output></form>
        <div id="new-key" hidden role="status"><p><strong>Copy the key now; it is not shown again.</strong></p>
        <pre class="wrap" id="new-key-value" data-template="{raw_key}"></pre><button type="button" data-copy="new-key-value">Copy</button>
        <button type="button" class="secondary" data-reload>Done</button></div></section>
        """
    }

    func webhooksPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        guard let hooks = try await getIfAllowed(viewer, "/webhooks?per_page=100", context)?["webhook_list"]?.arrayValue else {
            let body: HTML = "<h1>Webhooks</h1><p>Your role (\(viewer.role)) cannot manage webhooks; an owner or admin can.</p>"
            return layout(viewer, title: "Webhooks", active: "/webhooks", body: body).response(csp: contentSecurityPolicy())
        }
        let shown = request.uri.formQueryValue("deliveries")
        var sections: [HTML] = []
        for hook in hooks {
            let id = hook["id"]?.stringValue ?? ""
            let events = (hook["webhook_events"]?.arrayValue ?? []).compactMap(\.stringValue)
            let active = hook["webhook_status"]?.stringValue == "active"
            var log: HTML = "<a href=\"/webhooks?deliveries=\(id)\">Show deliveries</a>"
            if shown == id {
                let deliveries = try await get(viewer, "/webhooks/\(id)/deliveries?per_page=50", context)["delivery_list"]?.arrayValue ?? []
                let rows = deliveries.map { delivery -> HTML in
                    let attempts = (delivery["attempts"]?.arrayValue ?? []).map { attempt -> HTML in
                        "<li>#\(attempt["attempt_number"]) \(HTML.time(attempt["attempted_at"])): \(attempt["status_code"]?.integer.map(String.init) ?? "no answer") \(attempt["error"]) (\(attempt["latency_ms"]) ms)</li>"
                    }
                    let deliveryId = delivery["id"]?.stringValue ?? ""
                    return """
                        <tr><td>\(delivery["event_type"])</td><td><a href="/tasks/\(delivery["task_id"])" class="mono">\(String((delivery["task_id"]?.stringValue ?? "").prefix(8)))</a></td>
                        <td>\(HTML.badge(delivery["delivery_status"]?.stringValue))</td><td><ul class="plain">\(attempts)</ul></td><td>\(HTML.time(delivery["created_at"]))</td>
                        <td><button type="button" class="secondary" data-api="POST /api/v1/webhooks/\(id)/deliveries/\(deliveryId)/redeliver" data-done="reload">Redeliver</button></td></tr>
                        """
                }
                log = """
                    <div class="scroll"><table><thead><tr><th scope="col">Event</th><th scope="col">Task</th><th scope="col">Status</th><th scope="col">Attempts</th>
                    <th scope="col">Created</th><th scope="col"><span class="sr">Redeliver</span></th></tr></thead><tbody>\(rows)</tbody></table></div>
                    """
            }
            sections.append(
                """
                <section class="card" aria-label="webhook \(hook["display_name"])"><h2>\(hook["display_name"]) \(HTML.badge(hook["webhook_status"]?.stringValue))</h2>
                <p class="mono">\(hook["webhook_url"])</p><p>Events: \(events.joined(separator: ", "))</p>
                <form data-api="PUT /api/v1/webhooks/\(id)" data-done="reload" class="inline">
                <label for="wh-url-\(id)">URL</label><input id="wh-url-\(id)" name="webhook_url" type="url" value="\(hook["webhook_url"])" required>
                <button type="submit" class="secondary">Save URL</button><output class="error" role="alert"></output></form>
                <div class="actions"><button type="button" class="secondary" data-api="PUT /api/v1/webhooks/\(id)" data-body='{"webhook_status":"\(active ? "disabled" : "active")"}' data-done="reload">\(active ? "Disable" : "Enable")</button>
                <button type="button" class="secondary" data-api="POST /api/v1/webhooks/\(id)/rotate-secret" data-confirm="Rotate the signing secret?" data-done="show:secret-\(id)">Rotate secret</button>
                <button type="button" class="danger" data-api="DELETE /api/v1/webhooks/\(id)" data-confirm="Delete this webhook?" data-done="reload">Delete</button></div>
                <div id="secret-\(id)" hidden role="status"><p>New signing secret (shown once):</p><pre class="wrap" data-template="{webhook_secret}"></pre></div>
                \(log)</section>
                """)
        }
        let eventChoices = ["task.completed", "task.failed", "task.cancelled"].enumerated().map { index, event -> HTML in
            "<div class=\"check\"><input type=\"checkbox\" id=\"wh-ev-\(index)\" name=\"webhook_events\" value=\"\(event)\" data-type=\"checklist\" checked><label for=\"wh-ev-\(index)\">\(event)</label></div>"
        }
        let body: HTML = """
            <h1>Webhooks</h1>\(sections)
            <section aria-labelledby="h-newhook"><h2 id="h-newhook">Add a webhook</h2>
            <form data-api="POST /api/v1/webhooks" data-done="show:new-hook" class="stack">
            <label for="wh-name">Name</label><input id="wh-name" name="display_name" required maxlength="100">
            <label for="wh-url">URL</label><input id="wh-url" name="webhook_url" type="url" required>
            <fieldset><legend>Events</legend>\(eventChoices)</fieldset>
            <button type="submit">Add webhook</button><output class="error" role="alert"></output></form>
            <div id="new-hook" hidden role="status"><p><strong>The signing secret, shown once:</strong></p><pre class="wrap" data-template="{webhook_secret}"></pre>
            <button type="button" class="secondary" data-reload>Done</button></div></section>
            """
        return layout(viewer, title: "Webhooks", active: "/webhooks", body: body).response(csp: contentSecurityPolicy())
    }

    func teamPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let members = try await get(viewer, "/members?per_page=100", context)["member_list"]?.arrayValue ?? []
        let invitations = try await getIfAllowed(viewer, "/invitations?per_page=100", context)?["invitation_list"]?.arrayValue
        let me = viewer.profile["id"]?.stringValue
        let roles = ["owner", "admin", "member", "viewer"]
        let rows = members.map { member -> HTML in
            let userId = member["user_id"]?.stringValue ?? ""
            let role = member["member_role"]?.stringValue ?? ""
            var actions: HTML = ""
            if viewer.canManage, userId != me, role != "owner" {
                let options = roles.dropFirst().map { option -> HTML in "<option\(HTML(raw: option == role ? " selected" : ""))>\(option)</option>" }
                actions = """
                    <form data-api="PUT /api/v1/members/\(userId)" data-done="reload" class="inline"><label for="role-\(userId)" class="sr">Role of \(member["email_address"])</label>
                    <select id="role-\(userId)" name="member_role">\(options)</select><button type="submit" class="secondary">Change role</button><output class="error" role="alert"></output></form>
                    <button type="button" class="danger" data-api="DELETE /api/v1/members/\(userId)" data-confirm="Remove this member from the team?" data-done="reload">Remove</button>
                    """
            }
            if viewer.isOwner, userId != me {
                actions =
                    actions + """
                        <button type="button" class="secondary" data-api="POST /api/v1/teams/current/transfer" data-body='{"new_owner_id":"\(userId)"}' data-confirm="Make this member the owner? You become an admin." data-done="reload">Make owner</button>
                        """
            }
            return
                "<tr><td>\(member["display_name"])</td><td>\(member["email_address"])</td><td>\(role)</td><td>\(HTML.time(member["joined_at"]))</td><td>\(actions)</td></tr>"
        }
        let origin = BrowserSessions.origin(of: request)
        var manage: HTML = ""
        if let invitations {
            let pending = invitations.map { invitation -> HTML in
                """
                <tr><td>\(invitation["email_address"])</td><td>\(invitation["invitation_role"])</td><td>\(HTML.time(invitation["expires_at"]))</td>
                <td><button type="button" class="secondary" data-api="DELETE /api/v1/invitations/\(invitation["id"])" data-done="reload">Cancel</button></td></tr>
                """
            }
            manage = """
                <section aria-labelledby="h-invite"><h2 id="h-invite">Invite someone</h2>
                <form data-api="POST /api/v1/invitations" data-done="show:invite-link" class="stack">
                <label for="inv-email">Email address</label><input id="inv-email" name="email_address" type="email" required>
                <label for="inv-role">Role</label><select id="inv-role" name="invitation_role">\(roles.dropFirst().map { HTML("<option>\($0)</option>") })</select>
                <button type="submit">Create invitation</button><output class="error" role="alert"></output></form>
                <div id="invite-link" hidden role="status"><p>Send this link to the person you invite (shown once):</p>
                <pre class="wrap" id="invite-link-value" data-template="\(origin)/invite?token={invitation_token}"></pre>
                <button type="button" data-copy="invite-link-value">Copy link</button></div>
                <h3>Pending invitations</h3><div class="scroll"><table><thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Expires</th>
                <th scope="col"><span class="sr">Cancel</span></th></tr></thead><tbody>\(pending)</tbody></table></div></section>
                """
        }
        if viewer.isOwner {
            manage =
                manage + """
                    <section aria-labelledby="h-danger" class="failure"><h2 id="h-danger">Delete the team</h2>
                    <p>Deletes its workflows, tasks, keys, webhooks and models. Type the team's name to confirm.</p>
                    <form data-api="DELETE /api/v1/teams/current" data-done="go:/tasks" data-match="\(viewer.teamName)" class="stack">
                    <label for="del-name">Team name</label><input id="del-name" name="confirm_name" required autocomplete="off" data-local>
                    <button type="submit" class="danger">Delete this team</button><output class="error" role="alert"></output></form></section>
                    """
        } else {
            manage =
                manage + """
                    <section aria-labelledby="h-leave"><h2 id="h-leave">Leave</h2>
                    <button type="button" class="danger" data-api="POST /api/v1/teams/current/leave" data-confirm="Leave this team?" data-done="go:/tasks">Leave this team</button>
                    <output class="error" role="alert"></output></section>
                    """
        }
        let body: HTML = """
            <h1>Team \(viewer.teamName)</h1>
            <div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Joined</th>
            <th scope="col"><span class="sr">Actions</span></th></tr></thead><tbody>\(rows)</tbody></table></div>
            \(manage)
            <section aria-labelledby="h-pair"><h2 id="h-pair">Approve a device</h2><p>A terminal running <code>switchyard login</code> shows a code;
            <a href="/pair">enter it here</a>.</p></section>
            """
        return layout(viewer, title: "Team", active: "/team", body: body).response(csp: contentSecurityPolicy())
    }

    /// Device approval: who asks (name, address, time) before the viewer approves it for the team in view.
    func pairPage(_ request: Request, _ context: SwitchyardRequestContext, _ viewer: Viewer) async throws -> Response {
        let code = request.uri.formQueryValue("user_code") ?? ""
        var asking: HTML = ""
        if !code.isEmpty {
            let pending = try await get(
                viewer, "/desktop/pair/pending?user_code=\(code.addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? "")", context)
            asking = """
                <dl class="grid" id="pair-request"><dt>Device</dt><dd>\(pending["requested_name"]?.stringValue ?? "(no name given)")</dd>
                <dt>From</dt><dd>\(pending["requested_from"]?.stringValue ?? "(unknown)")</dd><dt>Asked</dt><dd>\(HTML.time(pending["requested_at"]))</dd></dl>
                <p>Approve only a device you just started signing in yourself. It gets a key acting as you in team \(viewer.teamName).</p>
                <form data-api="POST /api/v1/desktop/pair/confirm" data-extra='{"user_code":"\(code)"}' data-done="show:paired" class="stack">
                <label for="pair-name">Device name (optional)</label><input id="pair-name" name="device_name" maxlength="100">
                <button type="submit">Approve this device</button><output class="error" role="alert"></output></form>
                <p id="paired" hidden role="status">Approved. Your terminal finishes signing in.</p>
                """
        }
        let body: HTML = """
            <h1>Approve a device</h1>
            <form method="get" action="/pair" class="inline"><label for="user_code">Code shown by the terminal</label>
            <input id="user_code" name="user_code" value="\(code)" placeholder="ABCD-EFGH" required maxlength="20"><button type="submit">Look up</button></form>
            \(asking)
            """
        return layout(viewer, title: "Approve a device", active: "/team", body: body).response(csp: contentSecurityPolicy())
    }

    func invitePage(_ request: Request, message: String?, status: HTTPResponse.Status = .ok) -> Response {
        let token = request.uri.formQueryValue("token") ?? ""
        let body: HTML = """
            <main id="main" class="narrow"><h1>Join a team</h1>
            \(message.map { HTML("<p class=\"error\" role=\"alert\">\($0)</p>") } ?? "")
            <form method="post" action="/invite" class="stack"><input type="hidden" name="invitation_token" value="\(token)">
            <p>New here? Choose a password (8 characters or more). Have an account? Enter its password.</p>
            <label for="inv-password">Password</label><input id="inv-password" name="password" type="password" autocomplete="new-password" required>
            <button type="submit">Join</button></form></main>
            """
        return Self.document(title: "Join a team", csrf: "", teamId: "", body: body).response(status: status, csp: contentSecurityPolicy())
    }

    private func acceptInvitation(_ request: Request, _ context: SwitchyardRequestContext) async throws -> Response {
        try await signInThroughAPI(request, context, "/invitations/accept", fields: ["invitation_token", "password"], what: "joining") { _ in
            "/tasks"
        } refused: { message, status in
            invitePage(request, message: message, status: status)
        }
    }

    static func bytes(_ count: Int) -> String {
        ByteCountFormatter.string(fromByteCount: Int64(count), countStyle: .binary)
    }
}
