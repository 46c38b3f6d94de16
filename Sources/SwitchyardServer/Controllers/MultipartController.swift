import Foundation
import Hummingbird
import SwitchyardCore
import SwitchyardObjectStore

/// `/uploads/multipart/*` (api.md §2.3; user sessions only, as documented): large uploads in parts, to a
/// `storage_key` a presign endpoint issued to the caller's team (`models/{team}/…` or `inputs/{team}/…`).
///
/// An upload cannot overwrite or overflow (docs/decisions.md): `initiate` refuses a key that already holds an object
/// (a registered model's file, another user's input) and a model key to anyone but an owner or admin, and records
/// the upload — key, declared size, part size. Each part URL then signs its part's exact length, `complete` takes
/// only the parts of that size plan and publishes only if the key is still free. Another team's upload or key
/// looks missing.
struct MultipartController {
    let storage: any SwitchyardStorage
    let objects: ObjectStorage
    let clock: any WallClock

    /// The recommended part size (the docs' example: 100 MiB), raised when a file would need more than S3's
    /// 10,000 parts.
    static func partSize(for fileSize: Int) -> Int {
        let minimum = 100 * 1024 * 1024
        let needed = (fileSize + 9_999) / 10_000
        let mebibyte = 1024 * 1024
        return max(minimum, (needed + mebibyte - 1) / mebibyte * mebibyte)
    }

    struct Initiated: ResponseEncodable {
        let uploadId: String
        let storageKey: String
        let partSize: Int
        let partCount: Int
    }

    struct PresignedParts: ResponseEncodable {
        struct Part: Encodable {
            let partNumber: Int
            let contentLength: Int
            let url: String
        }

        let parts: [Part]
    }

    /// The published object: `file_key` for a workflow input, `storage_key` for a model registration (the same key).
    struct Completed: ResponseEncodable {
        let fileKey: String
        let storageKey: String
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("initiate", use: initiate)
        group.post("presign-parts", use: presignParts)
        group.post("complete", use: complete)
        group.post("abort", use: abort)
    }

    @Sendable func initiate(_ request: Request, context: SwitchyardRequestContext) async throws -> Initiated {
        let (caller, fields, key) = try await read(request, context)
        guard let fileSize = try fields.integer("file_size", range: 1...ModelsController.maximumModelSize) else {
            throw SwitchyardError.invalid("field \"file_size\" is required")
        }
        if ModelsController.isIssued(key, to: try caller.requireTeam()) {
            try caller.requireWorkflowManager()
        } else if let name = key.split(separator: "/").last.map(String.init), FileName.sanitize(name) != name {
            throw SwitchyardError.invalid(
                "field \"storage_key\": its file name \"\(name)\" is not one /r/files/presign issues (no control characters, slashes or leading dots)"
            )
        }
        guard try await store({ try await objects.client.headObject(key: key) }) == nil else {
            throw SwitchyardError.conflict("field \"storage_key\": \"\(key)\" already holds an object; presign a new key for a new upload")
        }
        let uploadId = try await store { try await objects.client.createMultipartUpload(key: key) }
        let upload = MultipartUpload(
            uploadId: uploadId, teamId: try caller.requireTeam(), storageKey: key, fileSize: fileSize, partSize: Self.partSize(for: fileSize),
            createdBy: caller.userId, createdAt: clock.now())
        try await storage.insertMultipartUpload(upload)
        return Initiated(uploadId: uploadId, storageKey: key, partSize: upload.partSize, partCount: upload.partCount)
    }

    @Sendable func presignParts(_ request: Request, context: SwitchyardRequestContext) async throws -> PresignedParts {
        let (upload, fields) = try await readUpload(request, context)
        let numbers = try fields.required("part_numbers") { name throws(SwitchyardError) in try fields.array(name, maxCount: 1000) }
        guard !numbers.isEmpty else { throw SwitchyardError.invalid("field \"part_numbers\" must not be empty") }
        let parts = try numbers.enumerated().map { index, value throws(SwitchyardError) -> (number: Int, length: Int) in
            guard case .number(let number) = value, let part = number.intValue, let length = upload.length(ofPart: part) else {
                throw SwitchyardError.invalid(
                    "field \"part_numbers[\(index)]\" must be an integer between 1 and \(upload.partCount) (the part count)")
            }
            return (part, length)
        }
        let now = Date()
        return PresignedParts(
            parts: parts.map { part in
                PresignedParts.Part(
                    partNumber: part.number, contentLength: part.length,
                    url: objects.presigner.presignedUploadPart(
                        key: upload.storageKey, uploadId: upload.uploadId, partNumber: part.number, contentLength: part.length,
                        expires: objects.presignLifetime, now: now))
            })
    }

    @Sendable func complete(_ request: Request, context: SwitchyardRequestContext) async throws -> Completed {
        let (upload, fields) = try await readUpload(request, context)
        let items = try fields.required("parts") { name throws(SwitchyardError) in try fields.array(name, maxCount: 10_000) }
        let parts = try items.enumerated().map { index, item throws(SwitchyardError) -> (partNumber: Int, etag: String) in
            let part = try JSONFields(object: item, name: "parts[\(index)]")
            let number = try part.required("part_number") { name throws(SwitchyardError) in try part.integer(name, range: 1...upload.partCount) }
            let etag = try part.required("etag") { name throws(SwitchyardError) in try part.string(name, length: 1...200) }
            return (number, etag)
        }
        guard !parts.isEmpty else { throw SwitchyardError.invalid("field \"parts\" must not be empty") }
        do {
            try await store {
                try await objects.client.completeMultipartUpload(key: upload.storageKey, uploadId: upload.uploadId, parts: parts, ifNoneMatch: true)
            }
        } catch let error as S3ClientError where error.status == 412 {
            throw SwitchyardError.conflict("\"\(upload.storageKey)\" was written meanwhile; this upload was not published (abort it)")
        }
        _ = try await storage.deleteMultipartUpload(id: upload.uploadId, teamId: upload.teamId)
        return Completed(fileKey: upload.storageKey, storageKey: upload.storageKey)
    }

    @Sendable func abort(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let (upload, _) = try await readUpload(request, context)
        try await store { try await objects.client.abortMultipartUpload(key: upload.storageKey, uploadId: upload.uploadId) }
        _ = try await storage.deleteMultipartUpload(id: upload.uploadId, teamId: upload.teamId)
        return Success()
    }

    /// The caller (who may run tasks), the body's fields and its `storage_key`, which must have been issued to the
    /// caller's team.
    private func read(_ request: Request, _ context: SwitchyardRequestContext) async throws -> (Caller, JSONFields, String) {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let teamId = try caller.requireTeam()
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let key = try fields.required("storage_key") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        guard ModelsController.isIssued(key, to: teamId) || InputFileKey(key)?.teamId == teamId else {
            throw SwitchyardError.invalid("field \"storage_key\": \"\(key)\" was not issued to this team by a presign endpoint")
        }
        return (caller, fields, key)
    }

    /// The upload of `upload_id` as `initiate` recorded it for the caller's team and this `storage_key`; 404 otherwise.
    private func readUpload(_ request: Request, _ context: SwitchyardRequestContext) async throws -> (MultipartUpload, JSONFields) {
        let (caller, fields, key) = try await read(request, context)
        let uploadId = try fields.required("upload_id") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        guard let upload = try await storage.multipartUpload(id: uploadId, teamId: try caller.requireTeam()), upload.storageKey == key else {
            throw SwitchyardError.notFound("upload not found (aborted, completed, or another key's)")
        }
        return (upload, fields)
    }

    /// The store's refusals as API errors: an unknown upload is a 404, a bad part list a 400.
    private func store<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as S3ClientError {
            switch error.code {
            case "NoSuchUpload": throw SwitchyardError.notFound("upload not found (aborted, completed, or another key's)")
            case "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML":
                throw SwitchyardError.invalid("parts: \(error.message) (\(error.code))")
            default: throw error
            }
        }
    }
}
