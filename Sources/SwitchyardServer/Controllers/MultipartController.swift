import Foundation
import Hummingbird
import SwitchyardCore
import SwitchyardObjectStore

/// `/uploads/multipart/*` (api.md §2.3; user sessions only, as documented): large uploads in parts, to a
/// `storage_key` a presign endpoint issued to the caller's team (`models/{team}/…` or `inputs/{team}/…`).
/// The store keeps the upload's state; another team's key is refused before the store is asked.
struct MultipartController {
    let objects: ObjectStorage
    let maxBodySize: Int

    /// The recommended part size (the docs' example: 100 MiB), raised when a file would need more than S3's
    /// 10,000 parts.
    static func partSize(for fileSize: Int) -> Int {
        let minimum = 100 * 1024 * 1024
        let needed = (fileSize + 9_999) / 10_000
        let mebibyte = 1024 * 1024
        return max(minimum, (needed + mebibyte - 1) / mebibyte * mebibyte)
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("initiate", use: initiate)
        group.post("presign-parts", use: presignParts)
        group.post("complete", use: complete)
        group.post("abort", use: abort)
    }

    @Sendable func initiate(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let (fields, key) = try await read(request, context)
        guard let fileSize = try fields.integer("file_size", range: 1...ModelsController.maximumModelSize) else {
            throw SwitchyardError.invalid("field \"file_size\" is required")
        }
        let uploadId = try await store { try await objects.client.createMultipartUpload(key: key) }
        let partSize = Self.partSize(for: fileSize)
        return JSONBody.response([
            "upload_id": .string(uploadId), "storage_key": .string(key), "part_size": .integer(partSize),
            "part_count": .integer((fileSize + partSize - 1) / partSize),
        ])
    }

    @Sendable func presignParts(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let (fields, key) = try await read(request, context)
        let uploadId = try fields.required("upload_id") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        let numbers = try fields.required("part_numbers") { name throws(SwitchyardError) in try fields.array(name, maxCount: 1000) }
        guard !numbers.isEmpty else { throw SwitchyardError.invalid("field \"part_numbers\" must not be empty") }
        let parts = try numbers.enumerated().map { index, value throws(SwitchyardError) -> Int in
            guard case .number(let number) = value, let part = number.intValue, (1...10_000).contains(part) else {
                throw SwitchyardError.invalid("field \"part_numbers[\(index)]\" must be an integer between 1 and 10000")
            }
            return part
        }
        let now = Date()
        return JSONBody.response([
            "parts": .array(
                parts.map { part in
                    [
                        "part_number": .integer(part),
                        "url": .string(
                            objects.presigner.presignedUploadPart(
                                key: key, uploadId: uploadId, partNumber: part, expires: objects.presignLifetime, now: now)),
                    ]
                })
        ])
    }

    @Sendable func complete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let (fields, key) = try await read(request, context)
        let uploadId = try fields.required("upload_id") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        let items = try fields.required("parts") { name throws(SwitchyardError) in try fields.array(name, maxCount: 10_000) }
        let parts = try items.enumerated().map { index, item throws(SwitchyardError) -> (partNumber: Int, etag: String) in
            let part = try JSONFields(object: item, name: "parts[\(index)]")
            let number = try part.required("part_number") { name throws(SwitchyardError) in try part.integer(name, range: 1...10_000) }
            let etag = try part.required("etag") { name throws(SwitchyardError) in try part.string(name, length: 1...200) }
            return (number, etag)
        }
        guard !parts.isEmpty else { throw SwitchyardError.invalid("field \"parts\" must not be empty") }
        try await store { try await objects.client.completeMultipartUpload(key: key, uploadId: uploadId, parts: parts) }
        return JSONBody.response(["file_key": .string(key), "storage_key": .string(key)])
    }

    @Sendable func abort(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let (fields, key) = try await read(request, context)
        let uploadId = try fields.required("upload_id") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        try await store { try await objects.client.abortMultipartUpload(key: key, uploadId: uploadId) }
        return JSONBody.response(["is_success": true])
    }

    /// The body's fields and its `storage_key`, which must have been issued to the caller's team.
    private func read(_ request: Request, _ context: SwitchyardRequestContext) async throws -> (JSONFields, String) {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let teamId = try caller.requireTeam()
        let fields = try JSONFields(body: try await JSONBody.read(request, limit: maxBodySize))
        let key = try fields.required("storage_key") { name throws(SwitchyardError) in try fields.string(name, length: 1...1024) }
        guard ModelsController.isIssued(key, to: teamId) || InputFileKey(key)?.teamId == teamId else {
            throw SwitchyardError.invalid("field \"storage_key\": \"\(key)\" was not issued to this team by a presign endpoint")
        }
        return (fields, key)
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
