import Foundation
import HummingbirdTesting
import Logging
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing
import ZIPFoundation

@testable import SwitchyardAgent

/// A Nerfstudio workflow end to end on an agent with the stand-in toolchain (Tests/Fixtures/nerfstudio/bin:
/// `ns-process-data`, `ns-train`, `ns-export`, `nvidia-smi`, which print and write what the real tools do).
@Suite("Nerfstudio on an agent")
struct NerfstudioTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/nerfstudio/bin").path

    static let importBody = """
        {"workflow_slug":"splat","display_name":"Splat","tool_type":"nerfstudio","required_labels":["nerfstudio"],"task_timeout":600,
         "max_retries":0,
         "workflow_json":{"input":{"type":"images","file":"capture.zip"},"process":{"matching_method":"exhaustive","gpu":true},
           "train":{"method":"splatfacto","max_num_iterations":300,"steps_per_save":100,"machine":{"seed":7},
                    "dataparser":{"name":"nerfstudio-data","downscale_factor":2}},
           "export":{"kind":"gaussian-splat","ply_color_mode":"rgb"},"limits":{"min_pose_fraction":0.5}},
         "parameters":[{"key":"capture","type":"file","target_path":"input.file"},
                       {"key":"iterations","type":"number","target_path":"train.max_num_iterations","min":10,"max":100000,"default":300}]}
        """

    /// A folder of wrappers around the stand-in tools that set `knobs` (and a marker folder) in their environment.
    static func toolchain(_ knobs: [String: String], marks: String) throws -> String {
        let bin = FileManager.default.temporaryDirectory.appendingPathComponent("ns-bin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let exports = (knobs.merging(["STANDIN_MARK": marks]) { $1 }).sorted { $0.key < $1.key }.map { "export \($0.key)='\($0.value)'" }
        for tool in ["ns-process-data", "ns-train", "ns-export", "nvidia-smi"] {
            let script = "#!/bin/sh\n" + exports.joined(separator: "\n") + "\nexec '\(fixtures)/\(tool)' \"$@\"\n"
            FileManager.default.createFile(atPath: "\(bin)/\(tool)", contents: Data(script.utf8), attributes: [.posixPermissions: 0o755])
        }
        return bin
    }

    /// A zip holding `entries` (path → bytes).
    static func zip(_ entries: [(String, [UInt8])]) throws -> [UInt8] {
        let archive = try Archive(accessMode: .create)
        for (path, bytes) in entries {
            try archive.addEntry(
                with: path, type: .file, uncompressedSize: Int64(bytes.count),
                provider: { position, size in
                    Data(bytes[Int(position)..<Int(position) + size])
                })
        }
        return Array(archive.data ?? Data())
    }

    /// Serve, the workflow imported, a Nerfstudio agent on the stand-in (with `knobs`) connected; `body` gets the app,
    /// its client and the marker folder.
    static func withAgent(
        _ knobs: [String: String] = [:], _ body: @escaping @Sendable (TestApp, any TestClientProtocol, String) async throws -> Void
    ) async throws {
        let marks = FileManager.default.temporaryDirectory.appendingPathComponent("ns-marks-\(UUID().uuidString)").path
        let bin = try toolchain(knobs, marks: marks)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ns-work-\(UUID().uuidString)").path
        defer { for folder in [bin, marks, work] { try? FileManager.default.removeItem(atPath: folder) } }
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: importBody)
            var configuration = AgentConfiguration()
            configuration.server = "http://127.0.0.1:\(client.port!)"
            configuration.key = app.bootstrap.agentKey
            configuration.agentId = "splatter"
            configuration.tool = "nerfstudio"
            configuration.modelSync = false
            configuration.prefetch = 0
            configuration.labels = AgentConfiguration.advertisedLabels(configured: [], tool: "nerfstudio")
            let logs = LogSignal()
            let logger = logs.logger(label: "nerfstudio-agent")
            let executor = NerfstudioExecutor(binDirectory: bin, workRoot: work, cancelGrace: .seconds(5), logger: logger)
            let runner = AgentRunner(configuration: configuration, executor: executor, logger: logger)
            let agent = Task { try await runner.run() }
            defer { agent.cancel() }
            try await logs.wait(for: "connected to the gateway")
            try await body(app, client, marks)
        }
    }

    static func runCapture(_ app: TestApp, _ client: any TestClientProtocol, entries: [(String, [UInt8])]? = nil, iterations: Int = 300) async throws
        -> UUID
    {
        let archive = try zip(entries ?? (1...3).map { ("shots/img_\($0).jpg", [UInt8](repeating: UInt8($0), count: 256)) })
        let key = try await app.upload(
            client, token: app.bootstrap.integrationKey, fileName: "capture.zip", contentType: "application/zip", bytes: archive)
        return try await app.run(client, slug: "splat", body: #"{"parameters":{"capture":"\#(key)","iterations":\#(iterations)}}"#)
    }

    @Test("a capture runs through process, train (progress from the step table) and export; the splat and the config are the result")
    func endToEnd() async throws {
        try await Self.withAgent(["STANDIN_STEP_DELAY": "0.15"]) { app, client, marks in
            let agent = try await app.agent(client, "splatter")
            #expect(agent.labels.contains("nerfstudio") && agent.labels.contains("gpu"))
            let id = try await Self.runCapture(app, client, iterations: 400)
            let events = try await app.followEvents(port: client.port!, id)
            #expect(events.contains("event: completed"), "\(events)")
            let progress = events.split(separator: "\n").filter { $0.hasPrefix("data:") && $0.contains(#""step_total":400"#) }
            #expect(progress.count >= 2, "\(events)")

            let result = try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey).json()
            let outputs = try #require(result["task_output"]?["outputs"]?.objectValue)
            #expect(outputs["export.files.0"]?["file_name"] == "splat.ply")
            #expect(outputs["train.files.0"]?["file_name"] == "config.yml")
            #expect(outputs["process.files.0"]?["file_name"] == "transforms.json")
            let splat = try await app.get(try #require(result["download_urls"]?["export.files.0"]?.stringValue))
            #expect(splat.starts(with: Array("ply\nformat binary_little_endian".utf8)))

            // The agent's own flags first, the spec's after; dataparser options after the dataparser's name.
            let calls = try String(contentsOfFile: marks + "/calls", encoding: .utf8).split(separator: "\n").map(String.init)
            let train = try #require(calls.first { $0.hasPrefix("ns-train ") })
            #expect(train.hasPrefix("ns-train splatfacto --data "))
            #expect(train.contains("--vis tensorboard --viewer.quit-on-train-completion True --logging.local-writer.max-log-size 0"))
            #expect(train.hasSuffix("--machine.seed 7 --max-num-iterations 400 --steps-per-save 100 nerfstudio-data --downscale-factor 2"))
            let process = try #require(calls.first { $0.hasPrefix("ns-process-data ") })
            #expect(process.hasPrefix("ns-process-data images --data ") && process.hasSuffix("--gpu --matching-method exhaustive"))
            let export = try #require(calls.first { $0.hasPrefix("ns-export ") })
            #expect(export.contains("gaussian-splat --load-config ") && export.hasSuffix("--output-filename splat.ply --ply-color-mode rgb"))
        }
    }

    @Test("cancel: SIGINT to the process group, the task ends cancelled with stopped_at, no export runs")
    func cancel() async throws {
        // ns-train holds after its first row until a signal comes: the cancel is the only way on.
        try await Self.withAgent(["STANDIN_HOLD": "1"]) { app, client, marks in
            let id = try await Self.runCapture(app, client)
            var cancelled = false
            _ = try await app.followEvents(port: client.port!, id) { text in
                // Once training runs (its first row reported).
                guard !cancelled, text.contains(#""current_node":"ns-train""#) else { return }
                cancelled = true
                let answer = try await app.call(client, .post, "/api/v1/r/tasks/\(id.lowercased)/cancel", token: app.bootstrap.integrationKey)
                #expect(answer.status == .ok)
            }
            let result = try await app.follow(
                id, read: { try await app.call(client, .get, "/api/v1/r/tasks/\(id.lowercased)/result", token: app.bootstrap.integrationKey).json() },
                until: { $0["stopped_at"]?.stringValue != nil })
            #expect(result["task_status"] == "cancelled")
            #expect(FileManager.default.fileExists(atPath: marks + "/sigint"))
            let calls = try String(contentsOfFile: marks + "/calls", encoding: .utf8)
            #expect(!calls.contains("ns-export"))
        }
    }

    @Test(
        "failures: out of memory (status, last lines, GPU memory), no transforms.json despite exit 0, too few poses, a failed export",
        arguments: [
            (["STANDIN_TRAIN": "oom"], "ns-train exited with status 1 (GPU memory: 11559 of 81559 MiB used): "),
            (["STANDIN_PROCESS": "noimages"], "ns-process-data finished without transforms.json"),
            (["STANDIN_POSES": "31.5"], "COLMAP found poses for 32 % of the images, below the workflow's min_pose_fraction 50 %"),
            (["STANDIN_EXPORT": "fail"], "ns-export exited with status 1"),
        ])
    func failures(knobs: [String: String], message: String) async throws {
        try await Self.withAgent(knobs) { app, client, _ in
            let id = try await Self.runCapture(app, client)
            let task = try await app.waitForTask(client, id) { $0.status.isTerminal }
            #expect(task.status == .failed)
            #expect(task.error?.contains(message) == true, "\(task.error ?? "")")
            if knobs["STANDIN_TRAIN"] == "oom" { #expect(task.error?.contains("CUDA out of memory") == true) }
        }
    }

    @Test("an image set is unpacked safely: a path out of its folder, or more bytes than allowed, fails the task before any tool runs")
    func unsafeArchives() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("unzip-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (entries, needle, maxBytes) in [
            ([("../escape.jpg", [UInt8](repeating: 1, count: 8))], "a path outside its folder", 1 << 20),
            ([("/etc/cron.d/x", [UInt8](repeating: 1, count: 8))], "a path outside its folder", 1 << 20),
            ([("big.jpg", [UInt8](repeating: 1, count: 4096))], "more than 1000 bytes", 1000),
        ] as [([(String, [UInt8])], String, Int)] {
            let archive = folder + "/a.zip"
            try Data(try Self.zip(entries)).write(to: URL(fileURLWithPath: archive))
            #expect(throws: ExecutionFailure.self) { try SafeUnzip.extract(archive, into: folder + "/out", maxBytes: maxBytes, maxFiles: 10) }
            do { try SafeUnzip.extract(archive, into: folder + "/out", maxBytes: maxBytes, maxFiles: 10) } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: folder + "/escape.jpg"))
        }
        try await Self.withAgent { app, client, marks in
            let id = try await Self.runCapture(app, client, entries: [("../../escape.jpg", [1, 2, 3])])
            let task = try await app.waitForTask(client, id) { $0.status.isTerminal }
            #expect(task.status == .failed && task.error?.contains("a path outside its folder") == true, "\(task.error ?? "")")
            let calls = (try? String(contentsOfFile: marks + "/calls", encoding: .utf8)) ?? ""
            #expect(!calls.contains("ns-process-data"))
        }
    }

    @Test("the step table: appended rows and ANSI-redrawn rows; COLMAP's pose report")
    func parsing() {
        let row = "610 (0.61%)          115.968 ms           3 h, 12 m, 6 s       72.68 K"
        #expect(NerfstudioProgress.step(in: row) == .init(step: 610, percent: 0.61, eta: "3 h, 12 m, 6 s"))
        #expect(
            NerfstudioProgress.step(in: "\r\u{1B}[3A\u{1B}[1K\r29999 (100.00%)     10.000 ms            0 s, 12.000 ms       1.00 M")?.step == 29999)
        #expect(NerfstudioProgress.step(in: "Step (% Done)       Train Iter (time)") == nil)
        #expect(NerfstudioProgress.poseFraction(in: "[bold red]COLMAP found poses for 85.00% of the images") == 0.85)
        #expect(NerfstudioProgress.poseFraction(in: "COLMAP found poses for all images, CONGRATS!") == 1)
    }
}
