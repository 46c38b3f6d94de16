import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardServer

/// Where a client command connects and as whom, and how it prints. The key comes from, in order: `--key` or
/// `SWITCHYARD_API_KEY`; the login `switchyard login` stored; on the server's own machine, the first-start owner
/// account in `bootstrap.json` (signed in with its password).
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "The server's URL (env SWITCHYARD_SERVER; else the stored login's, else http://127.0.0.1:8080).")
    var server: String?

    @Option(name: .long, help: "An sk- or dk- key (env SWITCHYARD_API_KEY; else the stored login's device key).")
    var key: String?

    @Option(name: .long, help: "The data directory of a local server whose bootstrap.json to use when no key is given (env SWITCHYARD_DATA_DIR).")
    var dataDir: String?

    @Flag(name: .long, help: "Print JSON for scripts: no tables, bars or colour.")
    var json = false

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// A client with the first credentials found.
    func client() async throws -> SwitchyardClient {
        let key = key ?? environment["SWITCHYARD_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let stored = try? StoredLogin.load()
        let server = server ?? environment["SWITCHYARD_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        if let key {
            let trimmed = key.trimmingCharacters(in: CharacterSet(charactersIn: "\"' \n"))
            guard ["sk-", "dk-"].contains(where: trimmed.hasPrefix) else {
                throw CLIError.usage(
                    "the key must be an sk- (integration) or dk- (device) key\(trimmed.hasPrefix("ak-") ? "; ak- keys are for switchyard agent" : "")"
                )
            }
            return SwitchyardClient(server: server ?? stored?.server ?? "http://127.0.0.1:8080", token: trimmed)
        }
        if let stored, server == nil || server == stored.server {
            return SwitchyardClient(server: stored.server, token: stored.deviceKey)
        }
        let directory = dataDir ?? environment["SWITCHYARD_DATA_DIR"] ?? "./switchyard-data"
        let path = (directory as NSString).appendingPathComponent("bootstrap.json")
        if let data = FileManager.default.contents(atPath: path) {
            let bootstrap: BootstrapResult
            do { bootstrap = try JSONDecoder().decode(BootstrapResult.self, from: data) } catch {
                throw CLIError.usage("\(path) is not a bootstrap.json the server wrote: \(error)")
            }
            do {
                return try await SwitchyardClient.signIn(
                    server: server ?? "http://127.0.0.1:8080", emailAddress: bootstrap.emailAddress, password: bootstrap.password,
                    teamId: bootstrap.teamId.uuidString.lowercased())
            } catch let error as SwitchyardAPIError where error.isAuthorization {
                throw CLIError.auth("the owner account in \(path) could not sign in (its password changed?): use switchyard login, or --key")
            }
        }
        throw CLIError.auth(
            "no credentials: run switchyard login, pass --key (or SWITCHYARD_API_KEY), or run this beside the server's data directory")
    }
}

/// Failures of a client command, with the exit code each one means.
enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    case auth(String)
    case notFound(String)
    /// The task ran and did not complete (failed or cancelled).
    case taskFailed(String)
    case other(String)

    var description: String {
        switch self {
        case .usage(let text), .auth(let text), .notFound(let text), .taskFailed(let text), .other(let text): text
        }
    }

    /// 0 ok, 1 task failed (or another failure), 2 usage, 3 authentication, 4 not found.
    var exitCode: Int32 {
        switch self {
        case .taskFailed, .other: 1
        case .usage: 2
        case .auth: 3
        case .notFound: 4
        }
    }

    /// A task that ended other than completed: its status and error.
    static func ended(_ task: TaskInfo) -> CLIError {
        .taskFailed("task \(task.id.lowercased) \(task.status.rawValue)\(task.error.map { $0.isEmpty ? "" : ": \($0)" } ?? "")")
    }

    init(_ error: any Error) {
        switch error {
        case let error as CLIError: self = error
        case let error as SwitchyardAPIError:
            switch error.status {
            case 401, 403: self = .auth(error.message)
            case 404: self = .notFound(error.message)
            case 400, 409, 413, 422: self = .usage(error.message)
            default: self = .other(error.description)
            }
        case let error as ValidationError: self = .usage(error.message)
        default: self = .other("\(error)")
        }
    }
}

/// Runs a client command's body: its failures are printed as `error: …` on stderr and end the process with the
/// code they mean.
func clientCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let failure = CLIError(error)
        Terminal.error("error: \(failure.description)")
        throw ExitCode(failure.exitCode)
    }
}
