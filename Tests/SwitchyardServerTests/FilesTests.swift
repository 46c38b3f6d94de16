import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardObjectStore
import SwitchyardTestSupport
import Testing

@Suite("Files: presigned uploads and file parameters")
struct FilesTests {
    @Test("an input PUT without a Content-Type (curl -T, requests.put) is stored with the content_type its presign declared")
    func declaredContentType() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let key = try await app.upload(client, token: app.bootstrap.integrationKey, fileName: "cat.png", contentType: "image/png")
            let access = try #require(app.bootstrap.objectStore)
            let store = S3Client(
                configuration: S3Configuration(
                    origin: try #require(S3Origin(access.endpoint)), bucket: access.bucket, region: access.region, credentials: access.credentials))
            #expect(try await store.headObject(key: key)?.contentType == "image/png")
        }
    }

    @Test(
        "presign validation: each broken field is a 400 naming it",
        arguments: [
            (#"{"file_size":10,"content_type":"image/png"}"#, #"field "file_name" is required"#),
            (#"{"file_name":"","file_size":10,"content_type":"image/png"}"#, #"field "file_name" must not be empty"#),
            (#"{"file_name":"../..","file_size":10,"content_type":"image/png"}"#, #"field "file_name": "../.." has no usable characters"#),
            (#"{"file_name":"a.png","content_type":"image/png"}"#, #"field "file_size" is required"#),
            (#"{"file_name":"a.png","file_size":0,"content_type":"image/png"}"#, #"field "file_size": 0 is below the minimum 1"#),
            (#"{"file_name":"a.png","file_size":1.5,"content_type":"image/png"}"#, #"field "file_size" must be a whole number of bytes"#),
            (#"{"file_name":"a.png","file_size":"10","content_type":"image/png"}"#, #"field "file_size" must be a number"#),
            (#"{"file_name":"a.png","file_size":524288001,"content_type":"image/png"}"#, "above this server's upload limit of 524288000 bytes"),
            (#"{"file_name":"a.png","file_size":10}"#, #"field "content_type" is required"#),
            (#"{"file_name":"a.png","file_size":10,"content_type":"png"}"#, #"field "content_type": "png" is not a MIME type"#),
        ] as [(String, String)])
    func presignValidation(body: String, message: String) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let response = try await app.call(client, .post, "/api/v1/r/files/presign", token: app.bootstrap.integrationKey, body: body)
            #expect(response.status == .badRequest)
            #expect(response.errorMessage?.contains(message) == true, "\(response.errorMessage ?? "")")
        }
    }

    @Test("presign answers the documented shape: file_key layout, a PUT URL, exactly the signed upload_headers", arguments: TestBackend.available)
    func presignShape(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let response = try await app.call(
                client, .post, "/api/v1/r/files/presign", token: app.bootstrap.integrationKey,
                body: #"{"file_name":"../../etc/My Photo.png","file_size":1048576,"content_type":"image/png"}"#)
            #expect(response.status == .ok)
            let answer = try response.json()
            let key = try #require(answer["file_key"]?.stringValue)
            let segments = key.split(separator: "/")
            #expect(segments.count == 5 && segments[0] == "inputs" && segments[1] == Substring(app.bootstrap.teamId.lowercased))
            #expect(UUID(uuidString: String(segments[2])) != nil && segments[3] == "aW1hZ2UvcG5n" && segments[4] == "My Photo.png")
            #expect(answer["upload_headers"]?.stringDictionary == ["Content-Length": "1048576", "If-None-Match": "*"])
            let url = try #require(answer["upload_url"]?.stringValue)
            #expect(url.hasPrefix("http://127.0.0.1:\(app.environment.s3Port)/switchyard/inputs/") && url.contains("X-Amz-Signature="))
            #expect(url.contains("X-Amz-SignedHeaders=content-length%3Bhost%3Bif-none-match"))
            #expect(answer["expires_at"]?.stringValue != nil)
        }
    }

    @Test("the upload URL takes exactly the declared bytes once: other length 403, a header left out 403, a second PUT 412")
    func uploadRules() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let presign = try await app.call(
                client, .post, "/api/v1/r/files/presign", token: app.bootstrap.integrationKey,
                body: #"{"file_name":"a.txt","file_size":11,"content_type":"text/plain"}"#
            ).json()
            let url = try #require(presign["upload_url"]?.stringValue)
            let headers = try #require(presign["upload_headers"]?.stringDictionary)
            #expect(try await app.put(url, headers: headers, body: Array("short".utf8)) == 403)
            #expect(try await app.put(url, headers: headers.filter { $0.key != "If-None-Match" }, body: Array("hello world".utf8)) == 403)
            #expect(try await app.put(url, headers: headers, body: Array("hello world".utf8)) == 200)
            #expect(try await app.put(url, headers: headers, body: Array("hello world".utf8)) == 412)
        }
    }

    @Test("viewers cannot presign; sessions need X-Team-ID")
    func presignRoles() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let body = #"{"file_name":"a.png","file_size":3,"content_type":"image/png"}"#
            let viewer = try await app.member(role: .viewer)
            #expect(try await app.call(client, .post, "/api/v1/r/files/presign", token: viewer, body: body).status == .forbidden)
            let session = try await app.ownerSession(client)
            #expect(try await app.call(client, .post, "/api/v1/r/files/presign", token: session, body: body).status == .badRequest)
            #expect(
                try await app.call(client, .post, "/api/v1/r/files/presign", token: session, team: app.bootstrap.teamId, body: body).status == .ok)
        }
    }

    @Test(
        "file parameters on run: never uploaded, another team's, a type outside accept are 400s saying which; an upload runs",
        arguments: TestBackend.available.map { ($0, TestObjectStore.embedded) }
            + TestObjectStore.available.filter { $0 != .embedded }.map { (TestBackend.sqlite, $0) })
    func fileParameters(backend: TestBackend, objectStore: TestObjectStore) async throws {
        try await TestApp.with(backend, objectStore: objectStore) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try textToImageImport())
            let key = app.bootstrap.integrationKey
            func run(_ fileKey: String) async throws -> TestResponse {
                try await app.call(
                    client, .post, "/api/v1/r/workflows/slug/text-to-image/run", token: key,
                    body: #"{"parameters":{"prompt":"x","input_image":"\#(fileKey)"}}"#)
            }
            let missing = "inputs/\(app.bootstrap.teamId.lowercased)/\(UUIDv7.make(at: Date()).lowercased)/aW1hZ2UvcG5n/ghost.png"
            let never = try await run(missing)
            #expect(never.status == .badRequest)
            #expect(
                never.errorMessage == #"parameter "input_image": file_key "\#(missing)" was never uploaded (PUT the file to its upload_url first)"#)

            let other = try await app.otherTeam()
            let foreign = try await app.upload(client, token: other.integrationKey)
            #expect(try await run(foreign).errorMessage?.contains("was not uploaded by this team") == true)

            let text = try await app.upload(client, token: key, fileName: "notes.txt", contentType: "text/plain")
            let wrongType = try await run(text)
            #expect(wrongType.status == .badRequest)
            #expect(wrongType.errorMessage == #"parameter "input_image": the file is text/plain, which is not one of image/*"#)

            let image = try await app.upload(client, token: key)
            let accepted = try await run(image)
            #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            #expect(try await app.storage.tasks(teamId: app.bootstrap.teamId, status: nil, page: PageRequest()).totalCount == 1)
        }
    }
}
