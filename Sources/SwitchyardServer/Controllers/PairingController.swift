import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore

/// Device pairing (api.md §2.10; docs/teams.md): a CLI starts a pairing and shows the user code, a signed-in user
/// confirms it for a team, and the CLI's next poll collects a `dk-` key and its companion `ak-` key — minted by
/// that poll, delivered once; the pairing is gone afterwards (404).
struct PairingController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    let dispatcher: Dispatcher
    let limiter: RateLimiter

    /// `/desktop/pair/start`, `/desktop/pair/poll` (no credentials: the device code is the secret).
    func addPublicRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("desktop/pair/start", use: start)
        group.post("desktop/pair/poll", use: poll)
        group.get("desktop/pair", use: page)
    }

    /// The `verification_uri` of versions before the dashboard: the dashboard's device approval page now
    /// (`/pair`, which signs the user in first).
    @Sendable func page(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let code = (request.uri.formQueryValue("user_code") ?? "").addingPercentEncoding(withAllowedCharacters: Dashboard.unreserved) ?? ""
        return Response.redirect(to: "/pair?user_code=" + code, type: .normal)
    }

    /// `/desktop/pair/confirm` (session only, `X-Team-ID` required).
    func addConfirmRoute(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("desktop/pair/confirm", use: confirm)
    }

    /// `/auth/device/revoke` (the `dk-` key revokes itself).
    func addRevokeRoute(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("auth/device/revoke", use: revoke)
    }

    /// `/desktop/pair/pending` (a user session): what the device that shows a code said of itself, for the person
    /// about to approve it.
    func addPendingRoute(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get("desktop/pair/pending", use: pending)
    }

    /// RFC 8628's device authorization response.
    struct Started: ResponseEncodable {
        let deviceCode: String
        let userCode: String
        let verificationUri: String
        let expiresIn: Int
        let interval: Int
    }

    /// What the device said of itself, for the person about to approve it.
    struct Pending: ResponseEncodable {
        let userCode: String
        @Nullable var requestedName: String?
        @Nullable var requestedFrom: String?
        let requestedAt: Date
        let expiresAt: Date
    }

    /// A poll's answer: not yet (`pending`), too soon (`slow_down`, with a 429), or the keys (`approved`, once).
    enum Poll: ResponseEncodable {
        case pending(interval: Int)
        case slowDown(interval: Int)
        case approved(rawKey: String, agentKey: String?, teamId: UUID, keyPrefix: String)

        enum CodingKeys: String, CodingKey {
            case status, interval, errorMessage = "error_message", rawKey = "raw_key", agentKey = "agent_key", teamId = "team_id"
            case keyPrefix = "key_prefix"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .pending(let interval):
                try container.encode("pending", forKey: .status)
                try container.encode(interval, forKey: .interval)
            case .slowDown(let interval):
                try container.encode("slow_down", forKey: .status)
                try container.encode(interval, forKey: .interval)
                try container.encode(
                    "polled sooner than the interval allows; poll every \(interval) s from now on (RFC 8628 slow_down)", forKey: .errorMessage)
            case .approved(let rawKey, let agentKey, let teamId, let keyPrefix):
                try container.encode("approved", forKey: .status)
                try container.encode(rawKey, forKey: .rawKey)
                try container.encode(agentKey, forKey: .agentKey)
                try container.encode(teamId, forKey: .teamId)
                try container.encode(keyPrefix, forKey: .keyPrefix)
            }
        }
    }

    @Sendable func start(_ request: Request, context: SwitchyardRequestContext) async throws -> Started {
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let requestedName = try fields.string("device_name", length: 1...100, trim: true)
        if let requestedName, requestedName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw SwitchyardError.invalid("field \"device_name\" must not contain control characters")
        }
        try limiter.take([("pair start \(limiter.clientAddress(request, context))", limiter.rules.pairingStartPerAddress)], what: "pairing")
        let now = clock.now()
        var random = SystemRandomNumberGenerator()
        let deviceCode = CredentialSecret.randomString(length: 48, using: &random)
        let userCode = DevicePairing.makeUserCode(using: &random)
        let pairing = DevicePairing(
            id: UUIDv7.make(at: now), deviceCodeHash: SecretHasher.keyHash(deviceCode), userCode: userCode, createdAt: now,
            expiresAt: now.addingTimeInterval(DevicePairing.lifetime), requestedName: requestedName, requestedFrom: Self.requester(request, context))
        try await storage.insertPairing(pairing)
        let display = DevicePairing.display(userCode)
        return Started(
            deviceCode: deviceCode, userCode: display, verificationUri: "\(BrowserSessions.origin(of: request))/pair?user_code=\(display)",
            expiresIn: Int(DevicePairing.lifetime), interval: DevicePairing.pollInterval)
    }

    @Sendable func pending(_ request: Request, context: SwitchyardRequestContext) async throws -> Pending {
        try context.requireCaller().requireSession(to: "look at a pairing request")
        let typed = request.uri.formQueryValue("user_code") ?? ""
        guard let userCode = DevicePairing.normalise(typed) else {
            throw SwitchyardError.invalid("query parameter \"user_code\": \"\(typed)\" is not a pairing code (8 letters and digits, like AB7K-PNQ3)")
        }
        guard let pairing = try await storage.pendingPairing(userCode: userCode, at: clock.now()) else {
            throw SwitchyardError.notFound("no pending pairing with code \(DevicePairing.display(userCode)); it expired or was already confirmed")
        }
        return Pending(
            userCode: DevicePairing.display(userCode), requestedName: pairing.requestedName, requestedFrom: pairing.requestedFrom,
            requestedAt: pairing.createdAt, expiresAt: pairing.expiresAt)
    }

    /// Where a pairing request came from: the peer's address, and what a proxy says it forwarded for (shown as
    /// said, since only the operator knows whether a proxy is in front).
    static func requester(_ request: Request, _ context: SwitchyardRequestContext) -> String? {
        let forwarded = request.headers[.init("X-Forwarded-For")!].map { String($0.prefix(200)) }
        switch (context.remoteAddress, forwarded) {
        case (let peer?, let forwarded?): return "\(peer) (forwarded for \(forwarded))"
        case (let peer?, nil): return peer
        case (nil, let forwarded?): return "forwarded for \(forwarded)"
        case (nil, nil): return nil
        }
    }

    @Sendable func confirm(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let typed = try fields.required("user_code") { key throws(SwitchyardError) in try fields.string(key, length: 1...64) }
        guard let userCode = DevicePairing.normalise(typed) else {
            throw SwitchyardError.invalid("field \"user_code\": \"\(typed)\" is not a pairing code (8 letters and digits, like AB7K-PNQ3)")
        }
        try limiter.take(
            [
                ("pair confirm address \(limiter.clientAddress(request, context))", limiter.rules.pairingConfirmPerAddress),
                ("pair confirm user \(try caller.requireUser().lowercased)", limiter.rules.pairingConfirmPerUser),
            ], what: "pairing confirmation")
        let now = clock.now()
        let requested = try await storage.pendingPairing(userCode: userCode, at: now)?.requestedName
        let name = try fields.string("device_name", length: 1...100, trim: true) ?? requested ?? "Desktop (paired \(RFC3339.format(now).prefix(10)))"
        guard
            try await storage.confirmPairing(
                userCode: userCode, userId: try caller.requireUser(), teamId: try caller.requireTeam(), deviceName: name, at: now)
        else {
            throw SwitchyardError.notFound("no pending pairing with code \(DevicePairing.display(userCode)); it expired or was already confirmed")
        }
        context.logger.info("device pairing confirmed", metadata: ["device_name": "\(name)"])
        return Success(message: "Pairing confirmed; the desktop's next poll will receive the credential.")
    }

    @Sendable func poll(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Poll> {
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let deviceCode = try fields.required("device_code") { key throws(SwitchyardError) in try fields.string(key, length: 1...200) }
        try limiter.take([("pair poll \(limiter.clientAddress(request, context))", limiter.rules.pairingPollPerAddress)], what: "pairing poll")
        let now = clock.now()
        let codeHash = SecretHasher.keyHash(deviceCode)
        guard let pairing = try await storage.pairing(deviceCodeHash: codeHash, at: now) else {
            limiter.forget(codeHash)
            throw SwitchyardError.notFound("pairing not found: it expired or its credential was already delivered; start again")
        }
        let pace = limiter.pace(codeHash, interval: DevicePairing.pollInterval, forgetAfter: DevicePairing.lifetime)
        if pace.tooFast {
            return EditedResponse(
                status: .tooManyRequests, headers: [.retryAfter: String(pace.interval)], response: .slowDown(interval: pace.interval))
        }
        guard let userId = pairing.confirmedBy, let teamId = pairing.teamId else {
            return EditedResponse(response: .pending(interval: pace.interval))
        }
        limiter.forget(codeHash)
        let name = pairing.deviceName ?? "Desktop"
        // The companion agent key lets the paired machine run `switchyard agent`; only roles that may change the
        // team's work get one (an agent receives the team's tasks and reports their results).
        let role = try await storage.role(userId: userId, teamId: teamId)
        let agentSecret = CredentialSecret.generate(kind: .agent)
        let agent = Credential(
            id: UUIDv7.make(at: now), teamId: teamId, userId: userId, kind: .agent, displayName: String("\(name) (agent)".prefix(100)),
            keyPrefix: CredentialSecret.displayPrefix(of: agentSecret), keyHash: SecretHasher.keyHash(agentSecret), createdAt: now,
            revokedAt: role?.canWrite == true ? nil : now)
        let deviceSecret = CredentialSecret.generate(kind: .device)
        let device = Credential(
            id: UUIDv7.make(at: now), teamId: teamId, userId: userId, kind: .device, displayName: name,
            keyPrefix: CredentialSecret.displayPrefix(of: deviceSecret), keyHash: SecretHasher.keyHash(deviceSecret), createdAt: now,
            companionId: agent.id)
        guard try await storage.completePairing(id: pairing.id, device: device, agent: agent) else {
            throw SwitchyardError.notFound("pairing not found: it expired or its credential was already delivered; start again")
        }
        context.logger.info("device paired", metadata: ["credential_id": "\(device.id.lowercased)", "paired_team_id": "\(teamId.lowercased)"])
        return EditedResponse(
            response: .approved(
                rawKey: deviceSecret, agentKey: role?.canWrite == true ? agentSecret : nil, teamId: teamId, keyPrefix: device.keyPrefix))
    }

    @Sendable func revoke(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        guard caller.kind == .device, let credentialId = caller.credentialId, let teamId = caller.teamId else {
            throw SwitchyardError.unauthenticated("POST /auth/device/revoke is called with the dk- key it revokes")
        }
        guard let device = try await storage.credential(id: credentialId, teamId: teamId),
            try await storage.revokeDevice(credentialId: credentialId, teamId: teamId, at: clock.now())
        else { throw SwitchyardError.notFound("credential not found") }
        if let companion = device.companionId {
            await dispatcher.credentialsRevoked(teamId: teamId, credentialIds: [companion], reason: "its device key was revoked")
        }
        context.logger.info("device key revoked", metadata: ["credential_id": "\(credentialId.lowercased)"])
        return Success()
    }
}
