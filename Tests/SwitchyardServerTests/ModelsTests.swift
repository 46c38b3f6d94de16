import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardObjectStore
import SwitchyardTestSupport
import Testing

@Suite("Models and multipart uploads")
struct ModelsTests {
    static let presignBody =
        #"{"file_name":"sdxl.safetensors","file_size":11,"model_type":"checkpoints","model_path":"models/checkpoints/sdxl.safetensors"}"#

    @Test(
        "presign refuses model_path traversal and other broken fields with a 400 naming the rule",
        arguments: [
            (#""model_path":"/etc/passwd""#, #"field "model_path" must be relative (no leading /)"#),
            (#""model_path":"models/../../etc""#, #"field "model_path" must not contain .."#),
            (#""model_path":"models/..""#, #"field "model_path" must not contain .."#),
            (#""model_path":"models\\\\x.ckpt""#, #"field "model_path" must not contain a backslash"#),
            (#""model_path":"models/$HOME.ckpt""#, #"field "model_path" may contain only letters, digits, _, ., /, space and -"#),
            (#""model_path":"""#, #"field "model_path" must not be empty"#),
        ] as [(String, String)])
    func presignPathRules(path: String, message: String) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let body = #"{"file_name":"x.ckpt","file_size":11,"model_type":"checkpoints",\#(path)}"#
            let response = try await app.call(client, .post, "/api/v1/models/presign", token: session, team: app.bootstrap.teamId, body: body)
            #expect(response.status == .badRequest)
            #expect(response.errorMessage == message)
        }
    }

    @Test("presign, PUT, register (size and sha256 verified), read, list, edit, delete with the file", arguments: TestBackend.available)
    func lifecycle(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let presign = try await app.call(client, .post, "/api/v1/models/presign", token: session, team: team, body: Self.presignBody).json()
            let key = try #require(presign["storage_key"] as? String)
            #expect(key.hasPrefix("models/\(team.lowercased)/") && presign["upload_method"] as? String == "put")
            func register(_ extra: String, storageKey: String? = nil) async throws -> TestResponse {
                try await app.call(
                    client, .post, "/api/v1/models", token: session, team: team,
                    body: #"{"display_name":"SDXL","model_type":"checkpoints","storage_key":"\#(storageKey ?? key)"\#(extra)}"#)
            }
            #expect(try await register("").errorMessage == #"field "storage_key": nothing was uploaded at "\#(key)" yet"#)
            let bytes = Array("model bytes".utf8)
            let url = try #require(presign["upload_url"] as? String)
            #expect(try await app.put(url, headers: try #require(presign["upload_headers"] as? [String: String]), body: bytes) == 200)

            let other = try await app.otherTeam()
            #expect(try await register("", storageKey: "models/\(other.teamId.lowercased)/\(UUID().uuidString.lowercased())").status == .badRequest)
            #expect(try await register(#","file_size":12"#).errorMessage == #"field "file_size": 12 does not match the uploaded file's 11 bytes"#)
            let wrongHash = "sha256:" + String(repeating: "0", count: 64)
            #expect(try await register(#","file_hash":"\#(wrongHash)""#).errorMessage?.contains("the uploaded file hashes to sha256:") == true)
            #expect(try await register(#","file_hash":"md5:abc""#).errorMessage == #"field "file_hash" must be sha256: followed by 64 hex digits"#)

            let hash = "sha256:" + Hex.encode(SHA256.hash(data: bytes))
            let created = try await register(
                #","file_size":11,"file_hash":"\#(hash.uppercased().replacingOccurrences(of: "SHA256:", with: "sha256:"))","model_path":"models/checkpoints/sdxl.safetensors""#
            )
            #expect(created.status == .created)
            let id = try #require(try created.json()["id"] as? String)
            #expect(try await register("").status == .conflict, "one model per storage key")

            let detail = try await app.call(client, .get, "/api/v1/models/\(id)", token: session, team: team).json()
            #expect(detail["file_size"] as? Int == 11 && detail["file_hash"] as? String == hash && detail["model_status"] as? String == "active")
            #expect(detail["storage_key"] as? String == key && detail["model_path"] as? String == "models/checkpoints/sdxl.safetensors")
            let device = try await app.member(role: .member)
            let list = try await app.call(client, .get, "/api/v1/models", token: device).json()
            #expect((list["model_list"] as? [[String: Any]])?.count == 1 && (list["page_meta"] as? [String: Int])?["total_count"] == 1)
            #expect(try await app.call(client, .delete, "/api/v1/models/\(id)", token: device).status == .forbidden)
            #expect(try await app.call(client, .get, "/api/v1/models/\(id)", token: other.integrationKey).status == .unauthorized)

            let edited = try await app.call(
                client, .put, "/api/v1/models/\(id)", token: session, team: team, body: #"{"display_name":"SDXL 1.0","model_status":"disabled"}"#
            ).json()
            #expect(edited["display_name"] as? String == "SDXL 1.0" && edited["model_status"] as? String == "disabled")
            #expect(
                try await app.call(client, .put, "/api/v1/models/\(id)", token: session, team: team, body: #"{"model_path":"../x"}"#).status
                    == .badRequest)

            #expect(try await app.call(client, .delete, "/api/v1/models/\(id)", token: session, team: team).status == .noContent)
            #expect(try await app.call(client, .get, "/api/v1/models/\(id)", token: session, team: team).status == .notFound)
            let store = try #require(app.built.objectStore?.store)
            #expect(throws: ObjectStoreError.noSuchKey(key), "a deleted model's file goes too") { try store.info(bucket: "switchyard", key: key) }
        }
    }

    @Test("multipart: sessions only; initiate, presign parts, PUT, complete, register; another team's key and unknown uploads refused")
    func multipart() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let presign = try await app.call(
                client, .post, "/api/v1/models/presign", token: session, team: team,
                body: #"{"file_name":"big.ckpt","file_size":6800000000,"model_type":"checkpoints","model_path":"models/checkpoints/big.ckpt"}"#
            ).json()
            #expect(presign["upload_method"] as? String == "multipart" && presign["upload_url"] as? String == "")
            let key = try #require(presign["storage_key"] as? String)

            let body = #"{"storage_key":"\#(key)","file_size":6800000000}"#
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: app.bootstrap.integrationKey, body: body).status
                    == .unauthorized)
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: try await app.member(role: .admin), body: body).status
                    == .unauthorized)
            let initiated = try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: session, team: team, body: body).json()
            #expect(
                initiated["part_size"] as? Int == 104_857_600 && initiated["part_count"] as? Int == 65 && initiated["storage_key"] as? String == key)
            let uploadId = try #require(initiated["upload_id"] as? String)

            let signed = try await app.call(
                client, .post, "/api/v1/uploads/multipart/presign-parts", token: session, team: team,
                body: #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","part_numbers":[1,2]}"#
            ).json()
            let parts = try #require(signed["parts"] as? [[String: Any]])
            #expect(parts.map { $0["part_number"] as? Int } == [1, 2])
            let chunks = [[UInt8](repeating: 1, count: 5 * 1024 * 1024), [UInt8](repeating: 2, count: 100)]
            var etags: [String] = []
            for (part, chunk) in zip(parts, chunks) {
                var request = HTTPClientRequest(url: try #require(part["url"] as? String))
                request.method = .PUT
                request.body = .bytes(ByteBuffer(bytes: chunk))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                etags.append(try #require(response.headers.first(name: "ETag")))
            }
            let completion =
                #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","parts":[{"part_number":1,"etag":\#(String(reflecting: etags[0]))},{"part_number":2,"etag":\#(String(reflecting: etags[1]))}]}"#
            let completed = try await app.call(client, .post, "/api/v1/uploads/multipart/complete", token: session, team: team, body: completion)
            #expect(completed.status == .ok, "\(String(buffer: completed.body))")
            #expect(try completed.json()["file_key"] as? String == key)
            let registered = try await app.call(
                client, .post, "/api/v1/models", token: session, team: team,
                body: #"{"display_name":"Big","model_type":"checkpoints","storage_key":"\#(key)","file_size":\#(5 * 1024 * 1024 + 100)}"#)
            #expect(registered.status == .created)

            let abort = #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)"}"#
            #expect(try await app.call(client, .post, "/api/v1/uploads/multipart/abort", token: session, team: team, body: abort).status == .notFound)
            let other = try await app.otherTeam()
            let foreign = #"{"storage_key":"models/\#(other.teamId.lowercased)/\#(UUID().uuidString.lowercased())","file_size":10}"#
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: session, team: team, body: foreign).status
                    == .badRequest)
        }
    }
}
