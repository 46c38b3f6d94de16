import Foundation
import NIOCore
import NIOPosix
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The `switchyard` binary's client commands against a live `serve` with an agent on the fake ComfyUI: output, files
/// and the exit codes the README promises (0 ok, 1 task failed, 2 usage, 3 authentication, 4 not found).
@Suite("CLI client commands")
struct CLITests {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the `switchyard` built beside the test bundle; answers when it exits.
    static func switchyard(_ arguments: [String], environment: [String: String] = [:]) async throws -> Outcome {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchyard")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw TestSupportError("\(binary.path) is missing: build it (swift build) before the tests")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var inherited = ProcessInfo.processInfo.environment
        inherited["SWITCHYARD_CREDENTIALS"] = "/nonexistent/credentials.json"
        inherited["SWITCHYARD_DATA_DIR"] = "/nonexistent"
        process.environment = inherited.merging(environment) { $1 }
        // Files rather than pipes: a child that writes more than a pipe holds never blocks on a reader that waits for its exit.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-run-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (outPath, errPath) = (directory.appendingPathComponent("out"), directory.appendingPathComponent("err"))
        _ = FileManager.default.createFile(atPath: outPath.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outPath)
        process.standardError = try FileHandle(forWritingTo: errPath)
        // A test that gives up (its deadline) stops the child too.
        let status = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
                do { try process.run() } catch { continuation.resume(throwing: error) }
            }
        } onCancel: {
            process.terminate()
        }
        return Outcome(
            status: status, stdout: String(decoding: try Data(contentsOf: outPath), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errPath), as: UTF8.self))
    }

    @Test("serve on a port in use stops before the first start's secrets, naming the port and the flag")
    func portInUse() async throws {
        let taken = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        defer { taken.close(promise: nil) }
        let port = try #require(taken.localAddress?.port)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let serve = try await withDeadline(.seconds(60)) {
            try await Self.switchyard(["serve", "--data-dir", directory, "--port", "0", "--s3-port", "\(port)"])
        }
        #expect(
            serve.status == 2 && serve.stderr.contains("127.0.0.1:\(port) for the embedded object store") && serve.stderr.contains("--s3-port"),
            "\(serve)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/bootstrap.json") && !serve.stdout.contains("password"))
    }

    @Test("run --wait downloads the outputs; failed runs, bad parameters, bad keys and unknown workflows exit 1, 2, 3 and 4")
    func runAndExitCodes() async throws {
        try await ClientSDKTests.withServer { app, fake, owner, caller in
            _ = try await owner.importWorkflow(try ClientSDKTests.exampleWorkflow)
            var failing = try ClientSDKTests.exampleWorkflow
            failing = try JSONValue.parse(failing.jsonString.replacingOccurrences(of: "switchyard/invert", with: "../escape"))
            if case .object(var members) = failing {
                members["workflow_slug"] = "escape"
                _ = try await owner.importWorkflow(.object(members))
            }
            let server = ["--server", caller.server]
            let key = ["SWITCHYARD_API_KEY": app.bootstrap.integrationKey]
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: directory) }

            let run = try await Self.switchyard(
                ["run", "invert", "-p", "color=255", "-p", "width=64", "--out", directory] + server, environment: key)
            #expect(run.status == 0, "\(run.stderr)")
            let path = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(path.hasPrefix(directory + "/invert_") && FileManager.default.fileExists(atPath: path), "\(run.stdout)")
            #expect(run.stderr.contains("submitted (invert v1)"))

            let json = try await Self.switchyard(["run", "invert", "--wait", "--json", "--out", directory] + server, environment: key)
            let answer = try JSONValue.parse(json.stdout)
            #expect(json.status == 0 && answer["task"]?["task_status"] == "completed" && answer["files"]?.arrayValue?.count == 1, "\(json)")
            #expect(json.stdout.hasSuffix("}\n") && json.stderr.isEmpty)

            let submitted = try await Self.switchyard(["run", "invert"] + server, environment: key)
            let taskId = try #require(UUID(uuidString: submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(submitted)")
            let watched = try await Self.switchyard(["tasks", "watch", taskId.lowercased, "--json"] + server, environment: key)
            let lines = watched.stdout.split(separator: "\n").map { try? JSONValue.parse(String($0)) }
            #expect(watched.status == 0 && lines.last??["event"] == "completed" && lines.first??["event"] == "status")

            let failed = try await Self.switchyard(["run", "escape", "--wait"] + server, environment: key)
            #expect(failed.status == 1 && failed.stderr.contains("failed"), "\(failed)")
            let usage = try await Self.switchyard(["run", "invert", "-p", "color=red"] + server, environment: key)
            #expect(usage.status == 2 && usage.stderr == "error: parameter \"color\": \"red\" is not a number\n")
            let refused = try await Self.switchyard(
                ["run", "invert"] + server, environment: ["SWITCHYARD_API_KEY": "sk-" + String(repeating: "0", count: 40)])
            #expect(refused.status == 3, "\(refused)")
            let missing = try await Self.switchyard(["tasks", "show", UUID().uuidString] + server, environment: key)
            #expect(missing.status == 4 && missing.stderr.contains("task not found"))
            let unparsed = try await Self.switchyard(["run"], environment: key)
            #expect(unparsed.status == 2 && unparsed.stderr.contains("Usage:"))
            // No key anywhere: beside the server's data directory the CLI signs in as the first start's owner.
            let keys = try await Self.switchyard(["keys", "list", "--json", "--data-dir", app.environment.configuration.dataDirectory] + server)
            let kinds = try JSONValue.parse(keys.stdout).arrayValue?.compactMap { $0["kind"]?.stringValue }.sorted()
            #expect(keys.status == 0 && kinds == ["agent", "integration"], "\(keys)")
            let nothing = try await Self.switchyard(["tasks", "list"] + server)
            #expect(nothing.status == 3 && nothing.stderr.contains("no credentials"), "\(nothing)")
            let version = try await Self.switchyard(["--version"])
            #expect(version.status == 0 && version.stdout.hasPrefix("switchyard "))
            _ = fake
        }
    }
}
