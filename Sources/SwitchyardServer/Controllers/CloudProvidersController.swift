import Foundation
import Hummingbird
import SwitchyardComfyUI
import SwitchyardCore

/// `/cloud-providers/comfy-cloud` (api.md §2.7, management surface; owners and admins): set the team's Comfy Cloud
/// key (checked against the service's user endpoint when it answers), read its status, delete it.
struct CloudProvidersController {
    let storage: any SwitchyardStorage
    let box: SecretBox
    let clock: any WallClock
    let settings: CloudSettings
    /// Told of every change, so the team's runner starts, follows the new key or stops.
    let runner: CloudRunner

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.put("comfy-cloud", use: put)
        group.get("comfy-cloud", use: get)
        group.delete("comfy-cloud", use: delete)
    }

    private func manager(_ context: SwitchyardRequestContext) throws -> UUID {
        let caller = try context.requireCaller()
        try caller.require(.manage, to: "manage cloud providers")
        return try caller.requireTeam()
    }

    /// What the service said of a key.
    enum Verification: Equatable {
        /// `GET /api/user` answered 200 with an active account.
        case verified
        /// It answered, and refused the key or the account: the key is not stored.
        case refused(String)
        /// It could not be asked (unreachable, 5xx, an answer we do not understand): stored, not verified.
        case unverified(String)
    }

    func verify(_ key: String) async -> Verification {
        let answer: ComfyCloudClient.Answer
        do {
            answer = try await ComfyCloudClient(baseURL: settings.comfyBaseURL, apiKey: key).user()
        } catch {
            return .unverified("Comfy Cloud could not be reached to check the key (\(error))")
        }
        switch answer.status {
        case 200:
            let status = answer.json?["status"]?.stringValue
            if status == "active" { return .verified }
            if status == "waitlisted" { return .refused("Comfy Cloud says the account of this key is waitlisted, so it has no API access") }
            return .unverified("Comfy Cloud's user endpoint answered an account status of \(status.map { "\"\($0)\"" } ?? "none")")
        case 401, 403:
            return .refused("Comfy Cloud refused this key (\(answer.status)\(answer.errorMessage.map { ": \($0)" } ?? ""))")
        default:
            return .unverified("Comfy Cloud's user endpoint answered \(answer.status); the key was stored without a check")
        }
    }

    @Sendable func put(_ request: Request, context: SwitchyardRequestContext) async throws -> Detail {
        let teamId = try manager(context)
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let key = try fields.required("api_key") { key throws(SwitchyardError) in try fields.string(key, length: 1...512) }
        // No whitespace (Unicode's) and no C0/C1 control characters: the schema's `^[^\s\x00-\x1f\x7f-\x9f]+$`.
        guard key.unicodeScalars.allSatisfy({ !$0.properties.isWhitespace && !(0...0x1F).contains($0.value) && !(0x7F...0x9F).contains($0.value) })
        else {
            throw SwitchyardError.invalid("field \"api_key\" must not contain spaces or control characters")
        }
        let fallback = try fields.bool("cloud_fallback") ?? false
        let verification = await verify(key)
        if case .refused(let reason) = verification { throw SwitchyardError.invalid("field \"api_key\": \(reason)") }
        let now = clock.now()
        let binding = Self.binding(teamId: teamId, provider: .comfyCloud)
        var message: String?
        if case .unverified(let reason) = verification { message = reason }
        let stored = try await storage.putCloudCredential(
            CloudCredential(
                teamId: teamId, provider: .comfyCloud, sealedKey: try box.seal(key, boundTo: binding), keyPreview: CloudCredential.preview(of: key),
                status: .active, statusMessage: message, cloudFallback: fallback, verifiedAt: verification == .verified ? now : nil,
                createdAt: now, updatedAt: now))
        await runner.credentialChanged(teamId: teamId)
        context.logger.info(
            "cloud provider key set",
            metadata: ["provider": "comfy_cloud", "verified": "\(verification == .verified)", "cloud_fallback": "\(fallback)"])
        return Detail(stored)
    }

    @Sendable func get(_ request: Request, context: SwitchyardRequestContext) async throws -> Detail {
        let teamId = try manager(context)
        guard let credential = try await storage.cloudCredential(teamId: teamId, provider: .comfyCloud) else {
            throw SwitchyardError.notFound("no Comfy Cloud key is set for this team (PUT /cloud-providers/comfy-cloud sets one)")
        }
        return Detail(credential)
    }

    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        guard try await storage.deleteCloudCredential(teamId: teamId, provider: .comfyCloud) else {
            throw SwitchyardError.notFound("no Comfy Cloud key is set for this team")
        }
        await runner.credentialChanged(teamId: teamId)
        context.logger.info("cloud provider key deleted", metadata: ["provider": "comfy_cloud"])
        return Response(status: .noContent)
    }

    /// What a sealed key is bound to: its team and provider, so a sealed key moved to another row does not open.
    static func binding(teamId: UUID, provider: CloudProvider) -> UUID {
        SecretBox.binding(forSetting: "cloud_credentials.\(teamId.lowercased).\(provider.rawValue)")
    }

    /// CloudProviderCredential (api.md §2.7), with whether and when the service accepted the key and why its status
    /// is what it is.
    struct Detail: ResponseEncodable, Sendable {
        let providerName: String
        let credentialStatus: String
        let cloudFallback: Bool
        let keyPreview: String
        let verified: Bool
        @Nullable var verifiedAt: Date?
        @Nullable var statusMessage: String?
        let createdAt: Date
        let updatedAt: Date

        init(_ credential: CloudCredential) {
            providerName = credential.provider.rawValue
            credentialStatus = credential.status.rawValue
            cloudFallback = credential.cloudFallback
            keyPreview = credential.keyPreview
            verified = credential.verifiedAt != nil
            verifiedAt = credential.verifiedAt
            statusMessage = credential.statusMessage
            createdAt = credential.createdAt
            updatedAt = credential.updatedAt
        }
    }
}
