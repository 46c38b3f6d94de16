import Foundation
import Hummingbird
import SwitchyardCore

/// `/r/files/presign` (api.md §2.3): a presigned PUT for one workflow input. `Content-Length` (the exact
/// `file_size`) and `If-None-Match: *` are signed in and returned as `upload_headers`, so the store refuses
/// any other length (403) and any overwrite (412).
struct FilesController {
    let objects: ObjectStorage
    let clock: any WallClock

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("presign", use: presign)
    }

    struct Presigned: ResponseEncodable {
        let fileKey: String
        let uploadUrl: String
        let uploadHeaders: [String: String]
        let expiresAt: Date
    }

    @Sendable func presign(_ request: Request, context: SwitchyardRequestContext) async throws -> Presigned {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let teamId = try caller.requireTeam()
        let upload = try UploadRequest.validate(
            body: try await request.decode(as: JSONValue.self, context: context), maximumSize: objects.maximumUploadSize)
        let now = clock.now()
        let key = InputFileKey.make(teamId: teamId, uploadId: UUIDv7.make(at: now), contentType: upload.contentType, fileName: upload.fileName)
        let (url, headers) = objects.presigner.presignedPut(key: key, contentLength: upload.fileSize, expires: objects.presignLifetime, now: now)
        return Presigned(
            fileKey: key, uploadUrl: url, uploadHeaders: [String: String](signedHeaders: headers),
            expiresAt: now.addingTimeInterval(TimeInterval(objects.presignLifetime)))
    }
}
