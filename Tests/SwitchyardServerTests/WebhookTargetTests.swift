import Foundation
import HummingbirdTesting
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardServer

extension WebhooksTests {
    @Test("IPv6 forms that carry an IPv4 address are judged as that address (NAT64, IPv4-compatible, -translated, 6to4); Teredo never")
    func embeddedIPv4() {
        let strict = WebhookTargetPolicy()
        let cases: [(String, Bool)] = [
            ("https://[64:ff9b::10.0.0.1]/x", false),
            ("https://[64:ff9b::a9fe:a9fe]/x", false),  // 169.254.169.254
            ("https://[64:ff9b::8.8.8.8]/x", true),
            ("https://[64:ff9b:1::8.8.8.8]/x", false),  // local-use NAT64
            ("https://[::10.0.0.1]/x", false),
            ("https://[::127.0.0.1]/x", false),
            ("https://[::ffff:0:192.168.0.1]/x", false),
            ("https://[::ffff:8.8.8.8]/x", true),
            ("https://[2002:0a00:0001::1]/x", false),  // 6to4 of 10.0.0.1
            ("https://[2002:7f00:1::1]/x", false),  // 6to4 of 127.0.0.1
            ("https://[2002:0808:0808::1]/x", true),
            ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x", false),  // Teredo
            ("https://[2606:4700::1111]/x", true),
        ]
        for (url, accepted) in cases {
            #expect(((try? strict.validate(url)) != nil) == accepted, "\(url)")
        }
        #expect(IPAddressClass("::127.0.0.1") == .loopback)
        #expect(IPAddressClass("64:ff9b::c0a8:1") == .private)
    }

    // `hooks.localhost` is resolved by the test's resolver only (the system may not know it): the delivery reaching the
    // receiver, with one lookup, shows the connection went to the address the check saw.
    @Test("a delivery connects to the address that was checked: the name is resolved once, and only by the check")
    func connectsToTheCheckedAddress() async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { port in
            try await TestApp.with(.sqlite, configure: Self.stepped) { app, client in
                let lookups = Mutex<[String]>([])
                app.built.webhookSender.resolveHosts { host, _ in
                    lookups.withLock { $0.append(host) }
                    return ["127.0.0.1"]
                }
                let session = try await app.ownerSession(client)
                let created = try await app.call(
                    client, .post, "/api/v1/webhooks", token: session, team: app.bootstrap.teamId,
                    body: #"{"display_name":"pinned","webhook_url":"http://hooks.localhost:\#(port)/hook","webhook_events":["task.cancelled"]}"#)
                let webhook = try #require(try created.json()["id"]?.stringValue)
                _ = try await cancelledTask(app, client)
                let log = try await deliveryLog(app, client, webhook: webhook)
                #expect(log.first?.status == "delivered", "\(Self.attempts(log.first))")
                #expect(lookups.withLock { $0 } == ["hooks.localhost"])
                #expect(receiver.received.count == 1)

                // The connection is kept and reused: a second delivery leaves one idle connection, not two.
                #expect(app.built.webhookSender.idleConnections == 1)
                _ = try await cancelledTask(app, client)
                let second = try await deliveryLog(app, client, webhook: webhook)
                #expect(second.filter { $0.status == "delivered" }.count == 2)
                #expect(receiver.received.count == 2)
                #expect(app.built.webhookSender.idleConnections == 1)
            }
        }
    }

    @Test("a name that now resolves to a private address is refused before any connection; the log says why")
    func rebindingRefused() async throws {
        try await TestApp.with(.sqlite, configure: Self.stepped) { app, client in
            app.built.webhookSender.resolveHosts { _, _ in ["93.184.215.14", "10.0.0.7"] }
            let session = try await app.ownerSession(client)
            let created = try await app.call(
                client, .post, "/api/v1/webhooks", token: session, team: app.bootstrap.teamId,
                body: #"{"display_name":"rebind","webhook_url":"https://hooks.example.com/in","webhook_events":["task.cancelled"]}"#)
            let webhook = try #require(try created.json()["id"]?.stringValue)
            _ = try await cancelledTask(app, client)
            let log = try await deliveryLog(app, client, webhook: webhook)
            let error = Self.attempts(log.first).first?.error
            #expect(error?.contains("hooks.example.com (10.0.0.7) is in a private network") == true, "\(error ?? "")")
        }
    }

    @Test("a closed port and a refused connection read the same in the delivery log as any other missing answer")
    func coarseConnectionErrors() async throws {
        let closedPort = Mutex(0)
        try await WebhookReceiver().run { port in closedPort.withLock { $0 = port } }
        let port = closedPort.withLock { $0 }
        try await TestApp.with(.sqlite, configure: Self.stepped) { app, client in
            let webhook = try await createWebhook(app, client, port: port, events: #""task.cancelled""#)
            _ = try await cancelledTask(app, client)
            let log = try await deliveryLog(app, client, webhook: webhook.id)
            let error = try #require(Self.attempts(log.first).first?.error)
            #expect(error == "no HTTP answer within 10 s (connection or TLS failed, or nothing answered)")
            #expect(!error.lowercased().contains("refused") && !error.contains("\(port)"))
        }
    }
}
