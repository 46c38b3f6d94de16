import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
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
            let key = try #require(presign["storage_key"]?.stringValue)
            #expect(key.hasPrefix("models/\(team.lowercased)/") && presign["upload_method"]?.stringValue == "put")
            func register(_ extra: String, storageKey: String? = nil) async throws -> TestResponse {
                try await app.call(
                    client, .post, "/api/v1/models", token: session, team: team,
                    body: #"{"display_name":"SDXL","model_type":"checkpoints","storage_key":"\#(storageKey ?? key)"\#(extra)}"#)
            }
            #expect(try await register("").errorMessage == #"field "storage_key": nothing was uploaded at "\#(key)" yet"#)
            let bytes = Array("model bytes".utf8)
            let url = try #require(presign["upload_url"]?.stringValue)
            #expect(try await app.put(url, headers: try #require(presign["upload_headers"]?.stringDictionary), body: bytes) == 200)

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
            let id = try created.decode(Created.self).id.lowercased
            #expect(try await register("").status == .conflict, "one model per storage key")

            let detail = try await app.call(client, .get, "/api/v1/models/\(id)", token: session, team: team).decode(ModelInfo.self)
            #expect(detail.fileSize == 11 && detail.fileHash == hash && detail.status == "active")
            #expect(detail.storageKey == key && detail.modelPath == "models/checkpoints/sdxl.safetensors")
            let device = try await app.member(role: .member)
            let list = try await app.call(client, .get, "/api/v1/models", token: device).decode(Page<ModelInfo>.self)
            #expect(list.items.map(\.id.lowercased) == [id] && list.totalCount == 1)
            #expect(try await app.call(client, .delete, "/api/v1/models/\(id)", token: device).status == .forbidden)
            #expect(try await app.call(client, .get, "/api/v1/models/\(id)", token: other.integrationKey).status == .unauthorized)

            let edited = try await app.call(
                client, .put, "/api/v1/models/\(id)", token: session, team: team, body: #"{"display_name":"SDXL 1.0","model_status":"disabled"}"#
            ).json()
            #expect(edited["display_name"]?.stringValue == "SDXL 1.0" && edited["model_status"]?.stringValue == "disabled")
            #expect(
                try await app.call(client, .put, "/api/v1/models/\(id)", token: session, team: team, body: #"{"model_path":"../x"}"#).status
                    == .badRequest)

            #expect(try await app.call(client, .delete, "/api/v1/models/\(id)", token: session, team: team).status == .noContent)
            #expect(try await app.call(client, .get, "/api/v1/models/\(id)", token: session, team: team).status == .notFound)
            let store = try #require(app.built.objectStore?.store)
            #expect(throws: ObjectStoreError.noSuchKey(key), "a deleted model's file goes too") { try store.info(bucket: "switchyard", key: key) }
        }
    }

    @Test(
        "multipart: sessions only; initiate, presign parts (each signing its length), PUT, complete, register; another team's key, unknown uploads, parts beyond the plan refused"
    )
    func multipart() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let presign = try await app.call(
                client, .post, "/api/v1/models/presign", token: session, team: team,
                body: #"{"file_name":"big.ckpt","file_size":6800000000,"model_type":"checkpoints","model_path":"models/checkpoints/big.ckpt"}"#
            ).json()
            #expect(presign["upload_method"]?.stringValue == "multipart" && presign["upload_url"]?.stringValue == "")
            let key = try #require(presign["storage_key"]?.stringValue)

            let planned = #"{"storage_key":"\#(key)","file_size":6800000000}"#
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: app.bootstrap.integrationKey, body: planned).status
                    == .unauthorized)
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: try await app.member(role: .admin), body: planned)
                    .status == .unauthorized)
            let big = try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: session, team: team, body: planned).json()
            #expect(big["part_size"]?.intValue == 104_857_600 && big["part_count"]?.intValue == 65 && big["storage_key"]?.stringValue == key)
            let bigId = try #require(big["upload_id"]?.stringValue)
            let abortBig = #"{"storage_key":"\#(key)","upload_id":"\#(bigId)"}"#
            #expect(try await app.call(client, .post, "/api/v1/uploads/multipart/abort", token: session, team: team, body: abortBig).status == .ok)

            // Two parts: 5 MiB and 100 bytes, declared as such (the part size is never below 100 MiB, so a smaller file is one part).
            let size = 5 * 1024 * 1024 + 100
            let initiated = try await app.call(
                client, .post, "/api/v1/uploads/multipart/initiate", token: session, team: team,
                body: #"{"storage_key":"\#(key)","file_size":\#(size)}"#
            ).json()
            #expect(initiated["part_count"]?.intValue == 1)
            let uploadId = try #require(initiated["upload_id"]?.stringValue)
            let beyond = try await app.call(
                client, .post, "/api/v1/uploads/multipart/presign-parts", token: session, team: team,
                body: #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","part_numbers":[2]}"#)
            #expect(beyond.status == .badRequest && beyond.errorMessage?.contains("between 1 and 1") == true, "\(beyond.errorMessage ?? "")")
            let signed = try await app.call(
                client, .post, "/api/v1/uploads/multipart/presign-parts", token: session, team: team,
                body: #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","part_numbers":[1]}"#
            ).json()
            let part = try #require((signed["parts"]?.arrayValue)?.first)
            #expect(part["part_number"]?.intValue == 1 && part["content_length"]?.intValue == size)
            let url = try #require(part["url"]?.stringValue)
            func put(_ bytes: [UInt8]) async throws -> HTTPClientResponse {
                var request = HTTPClientRequest(url: url)
                request.method = .PUT
                request.body = .bytes(ByteBuffer(bytes: bytes))
                return try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            }
            #expect(try await put([UInt8](repeating: 1, count: size + 1)).status == .forbidden, "a part larger than declared is refused")
            let uploaded = try await put([UInt8](repeating: 1, count: size))
            #expect(uploaded.status == .ok)
            let etag = try #require(uploaded.headers.first(name: "ETag"))
            let outside = #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","parts":[{"part_number":2,"etag":"x"}]}"#
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/complete", token: session, team: team, body: outside).status
                    == .badRequest)
            let completion = #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)","parts":[{"part_number":1,"etag":\#(String(reflecting: etag))}]}"#
            let completed = try await app.call(client, .post, "/api/v1/uploads/multipart/complete", token: session, team: team, body: completion)
            #expect(completed.status == .ok, "\(String(buffer: completed.body))")
            #expect(try completed.json()["file_key"]?.stringValue == key)
            let registered = try await app.call(
                client, .post, "/api/v1/models", token: session, team: team,
                body: #"{"display_name":"Big","model_type":"checkpoints","storage_key":"\#(key)","file_size":\#(size)}"#)
            #expect(registered.status == .created)

            // The part URL replayed after completion (still within its lifetime) finds no upload and changes nothing.
            let replayed = try await put([UInt8](repeating: 2, count: size))
            #expect(replayed.status == .notFound, "a replayed part URL after completion")
            let access = try #require(app.bootstrap.objectStore)
            let store = S3Client(
                configuration: S3Configuration(
                    origin: try #require(S3Origin(access.endpoint)), bucket: access.bucket, region: access.region, credentials: access.credentials))
            #expect(try await store.sha256(key: key).hex == Hex.encode(SHA256.hash(data: [UInt8](repeating: 1, count: size))))

            let abort = #"{"storage_key":"\#(key)","upload_id":"\#(uploadId)"}"#
            #expect(try await app.call(client, .post, "/api/v1/uploads/multipart/abort", token: session, team: team, body: abort).status == .notFound)
            let other = try await app.otherTeam()
            let foreign = #"{"storage_key":"models/\#(other.teamId.lowercased)/\#(UUID().uuidString.lowercased())","file_size":10}"#
            #expect(
                try await app.call(client, .post, "/api/v1/uploads/multipart/initiate", token: session, team: team, body: foreign).status
                    == .badRequest)
        }
    }

    @Test(
        "multipart cannot overwrite: not a registered model's file, not an uploaded input, not a key completed meanwhile; model keys are for owners and admins; input names are sanitised"
    )
    func multipartCannotOverwrite() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let (memberSession, _) = try await app.memberCredentials(role: .member)
            func initiate(_ key: String, token: String = session) async throws -> TestResponse {
                try await app.call(
                    client, .post, "/api/v1/uploads/multipart/initiate", token: token, team: team, body: #"{"storage_key":"\#(key)","file_size":10}"#)
            }
            // A model's file, uploaded and registered by the owner: a member may not replace it, nor may the owner.
            let model = try await app.uploadModel(client, token: session, bytes: Array("weights".utf8))
            let refusedToMember = try await initiate(model, token: memberSession)
            #expect(refusedToMember.status == .forbidden, "\(refusedToMember.errorMessage ?? "")")
            let existing = try await initiate(model)
            #expect(existing.status == .conflict && existing.errorMessage?.contains("already holds an object") == true)
            // An input someone uploaded: not replaceable either.
            let input = try await app.upload(client, token: memberSession, team: team)
            #expect(try await initiate(input, token: memberSession).status == .conflict)
            // An input key whose name carries a line break (it would reach an agent's upload headers).
            let crafted = "inputs/\(team.lowercased)/\(UUID().uuidString.lowercased())/evil\\r\\nX-Injected: 1.png"
            let named = try await initiate(crafted, token: memberSession)
            #expect(named.status == .badRequest && named.errorMessage?.contains("file name") == true, "\(named.errorMessage ?? "")")

            // Two uploads to one fresh key: the second to complete does not replace the first.
            let fresh = "inputs/\(team.lowercased)/\(UUID().uuidString.lowercased())/big.bin"
            var completions: [TestResponse] = []
            let first = try await initiate(fresh, token: memberSession).json()
            let second = try await initiate(fresh, token: memberSession).json()
            for (upload, byte) in [(first, UInt8(1)), (second, UInt8(2))] {
                let uploadId = try #require(upload["upload_id"]?.stringValue)
                let signed = try await app.call(
                    client, .post, "/api/v1/uploads/multipart/presign-parts", token: memberSession, team: team,
                    body: #"{"storage_key":"\#(fresh)","upload_id":"\#(uploadId)","part_numbers":[1]}"#
                ).json()
                var request = HTTPClientRequest(url: try #require((signed["parts"]?.arrayValue)?.first?["url"]?.stringValue))
                request.method = .PUT
                request.body = .bytes(ByteBuffer(bytes: [UInt8](repeating: byte, count: 10)))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                let etag = try #require(response.headers.first(name: "ETag"))
                completions.append(
                    try await app.call(
                        client, .post, "/api/v1/uploads/multipart/complete", token: memberSession, team: team,
                        body:
                            #"{"storage_key":"\#(fresh)","upload_id":"\#(uploadId)","parts":[{"part_number":1,"etag":\#(String(reflecting: etag))}]}"#
                    ))
            }
            #expect(completions.map(\.status) == [.ok, .conflict])
            let store = try #require(app.built.objectStore?.store)
            let kept = try store.open(bucket: "switchyard", key: fresh)
            defer { kept.close() }
            var buffer = [UInt8](repeating: 0, count: 10)
            #expect(try kept.read(into: &buffer, offset: 0) == 10 && buffer == [UInt8](repeating: 1, count: 10), "the first upload's bytes stay")
        }
    }
}

extension TestApp {
    /// Uploads a model file the documented way (presign, PUT with `upload_headers`) and registers it; its key.
    func uploadModel(_ client: any TestClientProtocol, token: String, bytes: [UInt8]) async throws -> String {
        let presign = try await call(
            client, .post, "/api/v1/models/presign", token: token, team: bootstrap.teamId,
            body:
                #"{"file_name":"m.safetensors","file_size":\#(bytes.count),"model_type":"checkpoints","model_path":"models/checkpoints/m.safetensors"}"#
        ).json()
        let key = try #require(presign["storage_key"]?.stringValue)
        let status = try await put(
            try #require(presign["upload_url"]?.stringValue), headers: try #require(presign["upload_headers"]?.stringDictionary), body: bytes)
        #expect(status == 200)
        let registered = try await call(
            client, .post, "/api/v1/models", token: token, team: bootstrap.teamId,
            body: #"{"display_name":"M","model_type":"checkpoints","storage_key":"\#(key)"}"#)
        #expect(registered.status == .created)
        return key
    }
}
