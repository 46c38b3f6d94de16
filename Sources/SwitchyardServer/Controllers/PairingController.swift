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

    /// The `verification_uri`: a small page that signs the user in and confirms the code (Switchyard has no
    /// dashboard; the same can be done with curl, docs/teams.md).
    @Sendable func page(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Self.pageHTML)))
    }

    static let pageHTML = """
        <!doctype html><html><head><meta charset="utf-8"><title>Switchyard — pair a device</title>
        <style>body{font:16px system-ui;max-width:28rem;margin:3rem auto}input,select,button{font:inherit;width:100%;margin:.3rem 0;padding:.4rem}
        #who{background:#f3f3f3;padding:.6rem;border-radius:.3rem}</style>
        </head><body><h1>Pair a device</h1><p>Sign in to see which device asks, then approve the code your terminal shows.</p>
        <form id="f"><input id="code" placeholder="ABCD-EFGH" required><input id="email" type="email" placeholder="email" required>
        <input id="password" type="password" placeholder="password" required><div id="who" hidden></div><select id="team" hidden></select>
        <input id="name" placeholder="device name (optional)" hidden><button id="go">Sign in</button></form><p id="out"></p>
        <script>
        const q=new URLSearchParams(location.search);code.value=q.get('user_code')||'';let token=null;
        const api=(p,o={})=>fetch('/api/v1'+p,{...o,headers:{'Content-Type':'application/json',...(token?{Authorization:'Bearer '+token}:{}),...(o.headers||{})}}).then(async r=>{const b=await r.json().catch(()=>({}));if(!r.ok)throw new Error(b.error_message||r.status);return b});
        const line=(label,value)=>{const p=document.createElement('div');p.textContent=label+': '+value;who.append(p)};
        f.onsubmit=async e=>{e.preventDefault();try{
        if(!token){token=(await api('/auth/login',{method:'POST',body:JSON.stringify({email_address:email.value,password:password.value})})).access_token;
        const teams=(await api('/users/me')).team_list;team.replaceChildren(...teams.map(t=>{const o=document.createElement('option');o.value=t.id;o.textContent=t.display_name+' ('+t.member_role+')';return o}));
        const ask=await api('/desktop/pair/pending?user_code='+encodeURIComponent(code.value));
        who.replaceChildren();line('Device',ask.requested_name||'(no name given)');line('From',ask.requested_from||'(unknown)');
        line('Asked at',new Date(ask.requested_at).toLocaleString());who.hidden=false;name.hidden=false;team.hidden=teams.length<2;
        code.readOnly=true;go.textContent='Approve this device';out.textContent='Approve only a device you just started signing in yourself.';return}
        const body={user_code:code.value};if(name.value)body.device_name=name.value;
        await api('/desktop/pair/confirm',{method:'POST',body:JSON.stringify(body),headers:{'X-Team-ID':team.value}});
        out.textContent='Approved. Your terminal will finish signing in.';f.hidden=true}catch(err){out.textContent='Error: '+err.message}};
        </script></body></html>
        """

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
            deviceCode: deviceCode, userCode: display, verificationUri: "\(Self.origin(of: request))/api/v1/desktop/pair?user_code=\(display)",
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

    /// `scheme://host` the caller reached (honouring `X-Forwarded-Proto` from a TLS-terminating proxy).
    static func origin(of request: Request) -> String {
        let scheme = request.headers[.init("X-Forwarded-Proto")!].flatMap { $0 == "https" ? "https" : nil } ?? "http"
        let host = request.head.authority ?? request.headers[.init("Host")!] ?? "localhost"
        return "\(scheme)://\(host)"
    }
}
