import ArgumentParser
import Foundation
import SwitchyardClient

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Pair this machine with a Switchyard server and store a device key (and an agent key) for the CLI.",
        discussion: """
            Prints a code; approve it on the server's verification page (or with POST /api/v1/desktop/pair/confirm). \
            The keys are written to ~/.config/switchyard/credentials.json (mode 0600; SWITCHYARD_CREDENTIALS overrides the path); \
            `switchyard agent` then runs without --server and --key. See docs/teams.md.
            """
    )

    @Option(name: .long, help: "The server's URL, e.g. https://switchyard.example.com (default http://127.0.0.1:8080).")
    var server: String = "http://127.0.0.1:8080"

    @Option(name: .long, help: "Where to store the keys (default \(StoredLogin.defaultPath)).")
    var credentials: String?

    func run() async throws {
        let login = DeviceLogin(server: server)
        let started = try await login.start()
        // On stderr, unbuffered: the code must reach the person even when stdout is a file or a pipe.
        Terminal.note(
            """
            To pair this machine, open
                \(started.verificationURI)
            and approve the code  \(started.userCode)  (it expires in \(started.expiresIn / 60) minutes).
            (Or, signed in: curl -X POST <server>/api/v1/desktop/pair/confirm -H "Authorization: Bearer <session>" \\
               -H "X-Team-ID: <team>" -d '{"user_code":"\(started.userCode)"}')
            Waiting for approval…
            """)
        let stored = try await login.waitForApproval(started)
        let path = credentials ?? StoredLogin.defaultPath
        try stored.save(to: path)
        Terminal.note("Paired with team \(stored.teamId). Keys stored in \(path).")
        if stored.agentKey == nil { Terminal.note("No agent key was issued (viewers cannot run agents).") }
    }
}
