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

    @Sendable func presign(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let teamId = try caller.requireTeam()
        let upload = try UploadRequest.validate(body: try await JSONBody.read(request, context: context), maximumSize: objects.maximumUploadSize)
        let now = clock.now()
        let key = InputFileKey.make(teamId: teamId, uploadId: UUIDv7.make(at: now), contentType: upload.contentType, fileName: upload.fileName)
        let (url, headers) = objects.presigner.presignedPut(key: key, contentLength: upload.fileSize, expires: objects.presignLifetime, now: now)
        return JSONBody.response([
            "file_key": .string(key),
            "upload_url": .string(url),
            "upload_headers": .object(Dictionary(uniqueKeysWithValues: headers.map { ($0.name, JSONValue.string($0.value)) })),
            "expires_at": .date(now.addingTimeInterval(TimeInterval(objects.presignLifetime))),
        ])
    }
}
