import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Workflows API")
struct WorkflowsTests {
    @Test(
        "import creates (201), re-import of the slug overwrites as version + 1 with the same id (200); reads show everything",
        arguments: TestBackend.available)
    func importAndRead(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let created = try await app.call(client, .post, "/api/v1/workflows/import", token: session, team: team, body: try textToImageImport())
            #expect(created.status == .created)
            let id = try created.decode(Created.self).id
            #expect(try created.decode(Created.self).version == 1)

            let again = try await app.call(
                client, .post, "/api/v1/workflows/import", token: session, team: team, body: try textToImageImport(description: "v2"))
            #expect(again.status == .ok)
            #expect(try again.json()["id"]?.stringValue == id.lowercased)
            #expect(try again.decode(Created.self).version == 2)

            let detail = try await app.call(client, .get, "/api/v1/workflows/\(id.lowercased)", token: session, team: team)
            #expect(detail.status == .ok)
            let body = try detail.json()
            #expect(body["workflow_slug"]?.stringValue == "text-to-image")
            #expect(body["version"]?.intValue == 2 && body["description"]?.stringValue == "v2")
            #expect(body["workflow_status"]?.stringValue == "active" && body["tool_type"]?.stringValue == "comfyui")
            #expect(body["required_labels"]?.stringArray == ["gpu", "sd15"] && body["task_timeout"]?.intValue == 300)
            #expect(body["max_retries"]?.intValue == 2 && body["preferred_gpu"]?.stringValue == "RTX_4090" && body["min_vram_gb"]?.intValue == 8)
            #expect(body["default_dispatch_target"]?.stringValue == "agent")
            #expect(body["required_models"]?.stringArray == ["checkpoints/v1-5-pruned-emaonly.safetensors"])
            let graph = try #require(body["workflow_json"]?.objectValue)
            #expect((graph["6"]?.objectValue)?["class_type"]?.stringValue == "CLIPTextEncode")
            let parameters = try #require(body["parameters"]?.arrayValue)
            #expect(parameters.map { $0["key"]?.stringValue } == ["prompt", "width", "sampler", "steps", "input_image"])
            #expect(parameters[1]["min"]?.intValue == 64 && parameters[1]["default"]?.intValue == 512 && parameters[1]["node_id"]?.stringValue == "5")
            #expect(parameters[0]["required"]?.boolValue == true && parameters[0]["label"]?.stringValue == "Positive Prompt")
            #expect(body["created_at"]?.stringValue != nil && body["updated_at"]?.stringValue != nil)

            let list = try await app.call(client, .get, "/api/v1/workflows", token: session, team: team)
            let listed = try list.json()
            #expect((listed["workflow_list"]?.arrayValue)?.count == 1)
            #expect((listed["workflow_list"]?.arrayValue)?.first?["workflow_json"] == nil)
            #expect(listed["page_meta"] == ["current_page": 1, "per_page": 20, "total_count": 1])
        }
    }

    @Test(
        "import refuses a broken definition with a 400 naming the parameter, and stores nothing",
        arguments: TestBackend.available)
    func importValidation(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let broken = try textToImageImport().replacingOccurrences(of: #""node_id":"5","field":"width""#, with: #""node_id":"5","field":"widht""#)
            let response = try await app.call(client, .post, "/api/v1/workflows/import", token: session, team: app.bootstrap.teamId, body: broken)
            #expect(response.status == .badRequest)
            #expect(
                response.errorMessage
                    == #"parameter "width": node "5" (EmptyLatentImage) has no input "widht" (its inputs: batch_size, height, width)"#)
            let notJSON = try await app.call(client, .post, "/api/v1/workflows/import", token: session, team: app.bootstrap.teamId, body: "{\"a\":")
            #expect(notJSON.status == .badRequest)
            #expect(notJSON.errorMessage?.hasPrefix("request body is not valid JSON") == true)
            #expect(try await app.storage.workflows(teamId: app.bootstrap.teamId, page: PageRequest()).totalCount == 0)
        }
    }

    @Test(
        "update changes only what it names, bumps the version, and snapshots; restore is a new version and can be undone",
        arguments: TestBackend.available)
    func updateSnapshotsRestore(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            let path = "/api/v1/workflows/\(id.lowercased)"

            let update = try await app.call(client, .put, path, token: session, team: team, body: #"{"display_name":"Portraits","max_retries":0}"#)
            #expect(update.status == .ok)
            #expect(try update.decode(Created.self).version == 2)
            let disable = try await app.call(client, .put, path, token: session, team: team, body: #"{"workflow_status":"disabled"}"#)
            #expect(try disable.decode(Created.self).version == 3)
            let badUpdate = try await app.call(client, .put, path, token: session, team: team, body: #"{"workflow_slug":"Not A Slug"}"#)
            #expect(badUpdate.status == .badRequest)

            let detail = try await app.call(client, .get, path, token: session, team: team).json()
            #expect(detail["display_name"]?.stringValue == "Portraits" && detail["max_retries"]?.intValue == 0)
            #expect(detail["workflow_status"]?.stringValue == "disabled" && detail["version"]?.intValue == 3)
            #expect((detail["parameters"]?.arrayValue)?.count == 5, "parameters were kept")

            let history = try await app.call(client, .get, "\(path)/snapshots", token: session, team: team).json()
            let versions = (history["snapshot_list"]?.arrayValue)?.map { $0["version"]?.intValue }
            #expect(versions == [3, 2, 1])
            let first = try await app.call(client, .get, "\(path)/snapshots/1", token: session, team: team)
            #expect(first.status == .ok)
            #expect(try first.json()["display_name"]?.stringValue == "Text to image")
            #expect(try first.json()["workflow_json"]?.objectValue != nil)
            #expect(try await app.call(client, .get, "\(path)/snapshots/9", token: session, team: team).status == .notFound)
            #expect(try await app.call(client, .get, "\(path)/snapshots/zero", token: session, team: team).status == .badRequest)

            let restore = try await app.call(client, .post, "\(path)/snapshots/1/restore", token: session, team: team)
            #expect(restore.status == .ok)
            #expect(try restore.decode(Created.self).version == 4)
            let restored = try await app.call(client, .get, path, token: session, team: team).json()
            #expect(restored["display_name"]?.stringValue == "Text to image" && restored["max_retries"]?.intValue == 2)
            #expect(restored["workflow_status"]?.stringValue == "disabled", "restore keeps the live status")
            let note = try await app.call(client, .get, "\(path)/snapshots/4", token: session, team: team).json()["note"]?.stringValue
            #expect(note == "restored from version 1")

            // Undo: restore the version the restore replaced.
            _ = try await app.call(client, .post, "\(path)/snapshots/3/restore", token: session, team: team)
            let undone = try await app.call(client, .get, path, token: session, team: team).json()
            #expect(undone["display_name"]?.stringValue == "Portraits" && undone["version"]?.intValue == 5)
        }
    }

    @Test(
        "an update that changes nothing keeps the version; one that disables the workflow refuses the very next run (the head cache is cleared)",
        arguments: TestBackend.available)
    func updateNoOpAndCache(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            let path = "/api/v1/workflows/\(id.lowercased)"
            let run = "/api/v1/r/workflows/slug/text-to-image/run"
            let accepted = try await app.call(client, .post, run, token: app.bootstrap.integrationKey, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(accepted.status == .accepted, "\(accepted.errorMessage ?? "")")

            for body in ["{}", #"{"display_name":"Text to image"}"#, #"{"workflow_status":"active"}"#] {
                let same = try await app.call(client, .put, path, token: session, team: team, body: body)
                let version = try same.decode(Created.self).version
                #expect(same.status == .ok && version == 1, "\(body)")
            }
            let history = try await app.call(client, .get, "\(path)/snapshots", token: session, team: team).json()
            #expect((history["snapshot_list"]?.arrayValue)?.count == 1)

            // The clock stands still, so only the update itself can make the cached head go.
            let disable = try await app.call(client, .put, path, token: session, team: team, body: #"{"workflow_status":"disabled"}"#)
            #expect(try disable.decode(Created.self).version == 2)
            let refused = try await app.call(client, .post, run, token: app.bootstrap.integrationKey, body: #"{"parameters":{"prompt":"x"}}"#)
            #expect(refused.status == .conflict && refused.errorMessage?.contains("disabled") == true, "\(refused.status)")
        }
    }

    @Test("delete answers 204 and the workflow is gone; another team's workflow looks missing everywhere", arguments: TestBackend.available)
    func deleteAndIsolation(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            let other = try await app.otherTeam()
            let foreign = [
                (HTTPRequest.Method.get, "/api/v1/r/workflows/\(id.lowercased)"), (.get, "/api/v1/r/workflows/slug/text-to-image"),
                (.get, "/api/v1/r/workflows/slug/text-to-image@1"), (.post, "/api/v1/r/workflows/\(id.lowercased)/run"),
                (.post, "/api/v1/r/workflows/slug/text-to-image/run"),
            ]
            for (method, uri) in foreign {
                let response = try await app.call(client, method, uri, token: other.integrationKey, body: method == .post ? "{}" : nil)
                #expect(response.status == .notFound, "\(method) \(uri)")
            }
            let missing = try await app.call(client, .get, "/api/v1/r/workflows/\(UUID().uuidString.lowercased())", token: other.integrationKey)
            let theirs = try await app.call(client, .get, "/api/v1/r/workflows/\(id.lowercased)", token: other.integrationKey)
            #expect(missing.errorMessage == theirs.errorMessage)

            #expect(try await app.call(client, .delete, "/api/v1/workflows/\(id.lowercased)", token: session, team: team).status == .noContent)
            #expect(try await app.call(client, .get, "/api/v1/workflows/\(id.lowercased)", token: session, team: team).status == .notFound)
            #expect(try await app.call(client, .delete, "/api/v1/workflows/\(id.lowercased)", token: session, team: team).status == .notFound)
        }
    }

    @Test("members and viewers read; only owners and admins change workflows", arguments: TestBackend.available)
    func roles(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            for role in TeamRole.allCases {
                let key = try await app.member(role: role)
                #expect(try await app.call(client, .get, "/api/v1/workflows/\(id.lowercased)", token: key).status == .ok)
                let update = try await app.call(client, .put, "/api/v1/workflows/\(id.lowercased)", token: key, body: #"{"description":"x"}"#)
                #expect(update.status == (role.canManageWorkflows ? .ok : .forbidden), "\(role)")
            }
        }
    }

    @Test(
        "runtime reads: list, by id, by slug and slug@version show parameters, labels and version, never workflow_json",
        arguments: TestBackend.available)
    func runtimeReads(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let id = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            _ = try await app.importWorkflow(client, session: session, body: try textToImageImport(displayName: "Second"))
            let key = app.bootstrap.integrationKey

            let list = try await app.call(client, .get, "/api/v1/r/workflows", token: key)
            #expect(list.status == .ok)
            let items = try #require(try list.json()["workflow_list"]?.arrayValue)
            #expect(items.count == 1 && items[0]["workflow_json"] == nil && items[0]["version"]?.intValue == 2)

            for uri in ["/api/v1/r/workflows/\(id.lowercased)", "/api/v1/r/workflows/slug/text-to-image", "/api/v1/r/workflows/slug/text-to-image@2"]
            {
                let detail = try await app.call(client, .get, uri, token: key)
                #expect(detail.status == .ok, "\(uri)")
                let body = try detail.json()
                #expect(body["workflow_json"] == nil && body["version"]?.intValue == 2 && body["display_name"]?.stringValue == "Second", "\(uri)")
                #expect((body["parameters"]?.arrayValue)?.count == 5 && body["required_labels"]?.stringArray == ["gpu", "sd15"])
            }
            let pinned = try await app.call(client, .get, "/api/v1/r/workflows/slug/text-to-image@1", token: key).json()
            #expect(
                pinned["version"]?.intValue == 1 && pinned["display_name"]?.stringValue == "Text to image"
                    && pinned["id"]?.stringValue == id.lowercased)
            let future = try await app.call(client, .get, "/api/v1/r/workflows/slug/text-to-image@3", token: key)
            #expect(future.status == .notFound)
            #expect(future.errorMessage == #"workflow "text-to-image" has no version 3 (the latest is 2)"#)
            #expect(try await app.call(client, .get, "/api/v1/r/workflows/slug/text-to-image@0", token: key).status == .badRequest)
            #expect(try await app.call(client, .get, "/api/v1/r/workflows/not-a-uuid", token: key).status == .badRequest)
            // A session on the runtime surface does not see workflow_json either.
            let bySession = try await app.call(client, .get, "/api/v1/r/workflows/\(id.lowercased)", token: session, team: app.bootstrap.teamId)
            #expect(try bySession.json()["workflow_json"] == nil)
        }
    }
}
