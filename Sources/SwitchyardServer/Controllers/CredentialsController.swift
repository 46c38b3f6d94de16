import Foundation
import Hummingbird
import SwitchyardCore

/// `/credentials` (api.md §2.9): session-only, `X-Team-ID` required. Anyone in the team may list; owners and
/// admins create and revoke. The secret is returned once; only its SHA-256 and 12-character prefix are stored.
struct CredentialsController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    /// Revocation removes the key from the authentication cache, so it fails on the very next request here.
    let keyCache: CredentialCache
    /// Agents connected with a revoked `ak-` key (or a device key's companion) are disconnected.
    let dispatcher: Dispatcher

    struct CreateRequest: Decodable {
        let kind: String?
        let displayName: String?
        let expiresInDays: Int?

        enum CodingKeys: String, CodingKey {
            case kind
            case displayName = "display_name"
            case expiresInDays = "expires_in_days"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            kind = try container.decodeIfPresent(String.self, forKey: .kind)
            displayName = try container.decodeIfPresent(String.self, forKey: .displayName)
            if container.contains(.expiresInDays), try container.decodeNil(forKey: .expiresInDays) {
                throw SwitchyardError.invalid(
                    "field \"expires_in_days\" must be an integer 1–365; omit it for a key that never expires (null is not taken for that)")
            }
            expiresInDays = try container.decodeIntegerIfPresent(forKey: .expiresInDays)
        }
    }

    struct CreateResponse: ResponseEncodable {
        let id: UUID
        let kind: CredentialKind
        let displayName: String
        let keyPrefix: String
        let rawKey: String
        let expiresAt: Date?

        enum CodingKeys: String, CodingKey {
            case id, kind
            case displayName = "display_name"
            case keyPrefix = "key_prefix"
            case rawKey = "raw_key"
            case expiresAt = "expires_at"
        }
    }

    struct Item: Encodable {
        let id: UUID
        let kind: CredentialKind
        let displayName: String
        let keyPrefix: String
        let userId: UUID?
        let keyStatus: CredentialStatus
        let createdAt: Date
        let lastUsedAt: Date?
        let expiresAt: Date?
        let revokedAt: Date?

        init(_ credential: Credential, now: Date) {
            id = credential.id
            kind = credential.kind
            displayName = credential.displayName
            keyPrefix = credential.keyPrefix
            userId = credential.userId
            keyStatus = credential.status(at: now)
            createdAt = credential.createdAt
            lastUsedAt = credential.lastUsedAt
            expiresAt = credential.expiresAt
            revokedAt = credential.revokedAt
        }

        // Optional dates are written as null rather than left out, so every item has the same keys.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(kind, forKey: .kind)
            try container.encode(displayName, forKey: .displayName)
            try container.encode(keyPrefix, forKey: .keyPrefix)
            try container.encode(userId, forKey: .userId)
            try container.encode(keyStatus, forKey: .keyStatus)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(lastUsedAt, forKey: .lastUsedAt)
            try container.encode(expiresAt, forKey: .expiresAt)
            try container.encode(revokedAt, forKey: .revokedAt)
        }

        enum CodingKeys: String, CodingKey {
            case id, kind
            case displayName = "display_name"
            case keyPrefix = "key_prefix"
            case userId = "user_id"
            case keyStatus = "key_status"
            case createdAt = "created_at"
            case lastUsedAt = "last_used_at"
            case expiresAt = "expires_at"
            case revokedAt = "revoked_at"
        }
    }

    struct ListResponse: ResponseEncodable {
        let credentials: [Item]
        let pageMeta: PageMeta

        enum CodingKeys: String, CodingKey {
            case credentials
            case pageMeta = "page_meta"
        }
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.delete("{credentialId}", use: revoke)
    }

    @Sendable func create(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<CreateResponse> {
        let caller = try context.requireCaller()
        try caller.requireCredentialManager()
        let body = try await request.decode(as: CreateRequest.self, context: context)
        let kind = try Self.validateKind(body.kind)
        let displayName = try Self.validateDisplayName(body.displayName)
        var expiresAt: Date?
        let now = clock.now()
        if let days = body.expiresInDays {
            guard (1...365).contains(days) else {
                throw SwitchyardError.invalid("field \"expires_in_days\": \(days) is outside 1–365 (omit it for a key that never expires)")
            }
            expiresAt = now.addingTimeInterval(TimeInterval(days) * 86_400)
        }
        let secret = CredentialSecret.generate(kind: kind)
        let credential = Credential(
            id: UUIDv7.make(at: now), teamId: try caller.requireTeam(), userId: caller.userId, kind: kind, displayName: displayName,
            keyPrefix: CredentialSecret.displayPrefix(of: secret), keyHash: SecretHasher.keyHash(secret), createdAt: now, expiresAt: expiresAt
        )
        try await storage.insertCredential(credential)
        context.logger.info("credential created", metadata: ["credential_id": "\(credential.id.lowercased)", "kind": "\(kind.rawValue)"])
        let response = CreateResponse(
            id: credential.id, kind: kind, displayName: displayName, keyPrefix: credential.keyPrefix, rawKey: secret, expiresAt: expiresAt
        )
        return EditedResponse(status: .created, response: response)
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> ListResponse {
        let caller = try context.requireCaller()
        let page = try request.pageRequest
        var kind: CredentialKind?
        if let raw = request.uri.formQueryValue("kind") {
            guard let parsed = CredentialKind(rawValue: raw) else {
                throw SwitchyardError.invalid("query parameter \"kind\": \"\(raw)\" is not one of integration, agent, device")
            }
            kind = parsed
        }
        let result = try await storage.credentials(teamId: try caller.requireTeam(), kind: kind, page: page)
        let now = clock.now()
        return ListResponse(credentials: result.items.map { Item($0, now: now) }, pageMeta: PageMeta(page, totalCount: result.totalCount))
    }

    @Sendable func revoke(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.requireCredentialManager()
        let raw = try context.parameters.require("credentialId")
        guard let id = UUID(uuidString: raw) else {
            if CredentialKind(secret: raw) != nil {
                throw SwitchyardError.invalid(
                    "credentialId must be the credential's id (a UUID from GET /credentials), not its secret or key_prefix"
                )
            }
            throw SwitchyardError.invalid("credentialId: \"\(raw)\" is not a UUID")
        }
        let teamId = try caller.requireTeam()
        guard let credential = try await storage.credential(id: id, teamId: teamId),
            try await storage.revokeCredential(id: id, teamId: teamId, at: clock.now())
        else { throw SwitchyardError.notFound("credential not found") }
        keyCache.invalidate(credentialId: id)
        await dispatcher.credentialsRevoked(
            teamId: teamId, credentialIds: Set([id] + (credential.companionId.map { [$0] } ?? [])), reason: "its key was revoked")
        context.logger.info("credential revoked", metadata: ["credential_id": "\(id.lowercased)"])
        return Response(status: .noContent)
    }

    static func validateKind(_ raw: String?) throws -> CredentialKind {
        guard let raw else { throw SwitchyardError.invalid("field \"kind\" is required (integration or agent)") }
        switch CredentialKind(rawValue: raw) {
        case .integration: return .integration
        case .agent: return .agent
        case .device:
            throw SwitchyardError.invalid("field \"kind\": device keys (dk-) are issued only by device pairing, not by this endpoint")
        case nil:
            throw SwitchyardError.invalid("field \"kind\": \"\(raw)\" is not one of integration, agent")
        }
    }

    static func validateDisplayName(_ raw: String?) throws -> String {
        guard let raw else { throw SwitchyardError.invalid("field \"display_name\" is required") }
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SwitchyardError.invalid("field \"display_name\" must not be empty") }
        guard trimmed.count <= 100 else {
            throw SwitchyardError.invalid("field \"display_name\" is \(trimmed.count) characters long; the maximum is 100")
        }
        return trimmed
    }
}
