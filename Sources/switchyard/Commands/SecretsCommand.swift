import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardServer

struct SecretsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Manage the server's own secrets.",
        subcommands: [RotateSessionKey.self]
    )

    struct RotateSessionKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Replace the key that signs user sessions; the old one keeps verifying for --overlap seconds.",
            discussion: """
                Running servers sign with the new key within 30 seconds, without a restart. Sessions signed with the \
                old key stay valid until the overlap ends (default: the session lifetime, so nobody is signed out); \
                --overlap 0 ends them at once (after a leak). Keys whose overlap has ended are removed.
                """
        )

        @OptionGroup var options: ServerOptions

        @Option(help: "Seconds the replaced key keeps verifying (default: auth.sessionTtl, the session lifetime).")
        var overlap: Int?

        func validate() throws {
            if let overlap, overlap < 0 { throw ValidationError("--overlap must be 0 or more seconds") }
        }

        func run() async throws {
            let configuration = try await options.loadConfiguration()
            let logger = makeLogger(level: configuration.logLevel, format: configuration.logFormat)
            let overlap = TimeInterval(overlap ?? Int(configuration.sessionLifetime))
            let rotation = try await withStorage(configuration: configuration, logger: logger) { storage in
                try await rotateSessionSigningKey(configuration: configuration, storage: storage, overlap: overlap)
            }
            print("session signing key rotated: new key \(rotation.signingKid) signs from now on")
            for (kid, retiresAt) in rotation.retiring {
                print("  \(kid) still verifies until \(RFC3339.format(retiresAt))")
            }
            for kid in rotation.dropped { print("  \(kid) had retired and was removed") }
        }
    }
}
