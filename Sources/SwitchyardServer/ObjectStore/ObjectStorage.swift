import Foundation
import SwitchyardCore
import SwitchyardObjectStore

/// The object store as the API uses it: presigned URLs for callers (with the origin callers reach) and
/// server-side checks (HEAD) through the same S3 client, embedded store or external.
public struct ObjectStorage: Sendable {
    private let clients: StartupValue<(client: S3Client, presigner: S3Client)>
    /// Signs URLs handed to callers and agents.
    public var presigner: S3Client { clients.current.presigner }
    /// Makes the server's own requests.
    public var client: S3Client { clients.current.client }
    /// The largest single upload `POST /r/files/presign` signs (`uploads.maxFileSize`).
    public let maximumUploadSize: Int
    /// How long presigned upload URLs stay valid, in seconds (`uploads.presignTtl`).
    public let presignLifetime: Int

    public init(client: S3Client, presigner: S3Client, maximumUploadSize: Int, presignLifetime: Int) {
        self.clients = StartupValue((client, presigner))
        self.maximumUploadSize = maximumUploadSize
        self.presignLifetime = presignLifetime
    }

    /// A store whose key pair the start reads (the embedded store's): `publish` sets its clients.
    init(maximumUploadSize: Int, presignLifetime: Int) {
        self.clients = StartupValue()
        self.maximumUploadSize = maximumUploadSize
        self.presignLifetime = presignLifetime
    }

    func publish(client: S3Client, presigner: S3Client) {
        clients.set((client, presigner))
    }

    /// An external store: the server and callers use the same endpoint.
    init(external configuration: ServerConfiguration, clock: any WallClock) {
        let client = S3Client(configuration: configuration.externalS3!, now: { clock.now() })
        var presigner = client
        if let endpoint = configuration.s3PublicEndpoint, let origin = S3Origin(endpoint) {
            var published = configuration.externalS3!
            published.origin = origin
            presigner = S3Client(configuration: published, now: { clock.now() })
        }
        self.init(
            client: client, presigner: presigner, maximumUploadSize: configuration.maxUploadSize, presignLifetime: configuration.uploadURLLifetime)
    }

    /// Why a `file` parameter's key cannot be used: never uploaded, or of a type outside `accept` — and, for a task
    /// that runs on Comfy Cloud (`cloud`), larger than the service takes (its documented size and pixel limits, an
    /// image's size read from its header); nil when it can. The key's team has been checked already.
    func violation(of key: InputFileKey, for parameter: ParameterDefinition, cloud: Bool = false) async throws -> String? {
        guard let head = try await client.headObject(key: key.rawValue) else {
            return "parameter \"\(parameter.key)\": file_key \"\(key.rawValue)\" was never uploaded (PUT the file to its upload_url first)"
        }
        if cloud, let problem = try await cloudViolation(of: key, size: head.size) { return "parameter \"\(parameter.key)\": \(problem)" }
        if let accept = parameter.accept, !accept.isEmpty {
            let type = key.contentType ?? "application/octet-stream"
            guard parameter.accepts(mimeType: type) else {
                return "parameter \"\(parameter.key)\": the file is \(type), which is not one of \(accept.joined(separator: ", "))"
            }
        }
        return nil
    }

    private func cloudViolation(of key: InputFileKey, size: Int) async throws -> String? {
        let limit = ComfyCloudLimits.self
        guard size <= limit.maximumFileBytes else {
            return "the file is \(size) bytes, and Comfy Cloud takes inputs of at most \(limit.maximumFileBytes) bytes (50 MB)"
        }
        guard (key.contentType ?? "").hasPrefix("image/"), size > 0,
            let (width, height) = ImageSize.of(try await client.getObject(key: key.rawValue, range: 0...(64 * 1024 - 1)))
        else { return nil }
        if max(width, height) > limit.maximumEdge {
            return "the image is \(width)×\(height) px, and Comfy Cloud takes at most \(limit.maximumEdge) px per edge"
        }
        if width * height > limit.maximumPixels {
            return "the image is \(width)×\(height) px (\(width * height) px), and Comfy Cloud takes at most \(limit.maximumPixels) px (64 MP)"
        }
        return nil
    }
}
