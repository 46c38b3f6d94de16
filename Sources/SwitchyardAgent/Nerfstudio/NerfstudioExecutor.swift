import Foundation
import Logging
import Subprocess
import SwitchyardCore
import SwitchyardWire
import Synchronization

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Runs a Nerfstudio pipeline (spec/nerfstudio.md) as three processes — `ns-process-data`, `ns-train`, `ns-export` —
/// in a working folder of its own per attempt, headless (`--vis tensorboard`, plain log lines), with the flags the
/// workflow's spec may set (`NerfstudioPipeline`, an allow-list) after the ones the agent owns (paths, run name,
/// viewer, logging). Progress comes from the step table; success is judged by the files each phase must leave
/// (`transforms.json`, the final checkpoint, the export), since the tools exit 0 on some failures. Cancelling the
/// attempt sends SIGINT to the process group, then SIGKILL after `cancelGrace`.
public struct NerfstudioExecutor: ToolExecutor {
    public let tool = "nerfstudio"
    /// Where `ns-process-data`, `ns-train` and `ns-export` are; nil: found on `PATH`.
    let binDirectory: String?
    /// Attempts work in `<workRoot>/<attempt id>/`, removed when the attempt ends.
    let workRoot: String
    let cancelGrace: Duration
    /// The most bytes an image set may unpack to, and the most files it may hold.
    let maxUnpackedBytes: Int
    let maxUnpackedFiles: Int
    let logger: Logger

    public init(
        binDirectory: String? = nil, workRoot: String, cancelGrace: Duration = .seconds(10), maxUnpackedBytes: Int = 20 << 30,
        maxUnpackedFiles: Int = 20_000, logger: Logger
    ) {
        self.binDirectory = binDirectory
        self.workRoot = workRoot
        self.cancelGrace = cancelGrace
        self.maxUnpackedBytes = maxUnpackedBytes
        self.maxUnpackedFiles = maxUnpackedFiles
        self.logger = logger
    }

    static let commands = ["ns-process-data", "ns-train", "ns-export"]

    public func health() async -> ToolHealth {
        let missing = Self.commands.filter { executable($0) == nil }
        guard missing.isEmpty else {
            return ToolHealth(
                healthy: false,
                detail: "Nerfstudio's \(missing.joined(separator: ", ")) not found in \(binDirectory ?? "PATH") (docs/agent.md, \"Nerfstudio\")")
        }
        return ToolHealth(healthy: true, systemStats: SystemStats(gpuDevices: await gpus()))
    }

    public func execute(_ job: ExecutionJob, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
        report(.started)
        let pipeline: NerfstudioPipeline
        do { pipeline = try NerfstudioPipeline(job.definition) } catch { throw ExecutionFailure(error.message, fault: .task) }
        let folder = URL(fileURLWithPath: workRoot).appendingPathComponent(job.attemptId).path
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let input = try placeInput(job, pipeline, in: folder)

        // 1. Process: the capture → a dataset with camera poses.
        let processed = folder + "/processed"
        let reportedPoses = Mutex<Double?>(nil)
        try await runPhase(
            "ns-process-data", [pipeline.inputType.rawValue, "--data", input, "--output-dir", processed] + pipeline.processArguments,
            in: folder
        ) { line in
            if let fraction = NerfstudioProgress.poseFraction(in: line) { reportedPoses.withLock { $0 = fraction } }
        }
        let poses = reportedPoses.withLock { $0 }
        report(.progress(ExecutionProgress(progress: 0.15, currentNode: "ns-process-data")))
        guard FileManager.default.fileExists(atPath: processed + "/transforms.json") else {
            throw ExecutionFailure("ns-process-data finished without transforms.json (no usable images, or COLMAP found no poses)", fault: .task)
        }
        if let minimum = pipeline.minPoseFraction, let poses, poses < minimum {
            throw ExecutionFailure(
                "COLMAP found poses for \(Self.percent(poses)) of the images, below the workflow's min_pose_fraction \(Self.percent(minimum))",
                fault: .task)
        }

        // 2. Train, headless, to a predictable run folder.
        let outputs = folder + "/outputs"
        let experiment = "job"
        let agentFlags = [
            "--data", processed, "--output-dir", outputs, "--experiment-name", experiment, "--timestamp", "run", "--vis", "tensorboard",
            "--viewer.quit-on-train-completion", "True", "--logging.local-writer.max-log-size", "0",
        ]
        let total = pipeline.maxIterations
        try await runPhase(
            "ns-train",
            [pipeline.method] + agentFlags + pipeline.trainArguments + [pipeline.dataparser] + pipeline.dataparserArguments, in: folder
        ) { line in
            guard let step = NerfstudioProgress.step(in: line) else { return }
            let fraction = total.map { Double(step.step + 1) / Double($0) } ?? step.percent / 100
            report(
                .progress(
                    ExecutionProgress(
                        progress: 0.15 + 0.8 * min(max(fraction, 0), 1), stepCurrent: step.step + 1, stepTotal: total, currentNode: "ns-train")))
        }
        let run = "\(outputs)/\(experiment)/\(pipeline.method)/run"
        let checkpoint = try finalCheckpoint(in: run + "/nerfstudio_models", total: total)
        guard FileManager.default.fileExists(atPath: run + "/config.yml") else {
            throw ExecutionFailure("ns-train finished without \(run)/config.yml", fault: .task)
        }

        // 3. Export.
        let exported = folder + "/export"
        var exportFlags = ["--load-config", run + "/config.yml", "--output-dir", exported]
        if pipeline.exportKind == "gaussian-splat" { exportFlags += ["--output-filename", "splat.ply"] }
        try await runPhase("ns-export", [pipeline.exportKind] + exportFlags + pipeline.exportArguments, in: folder) { _ in }
        let expected = NerfstudioPipeline.exportFiles[pipeline.exportKind] ?? ""
        guard FileManager.default.fileExists(atPath: exported + "/" + expected) else {
            throw ExecutionFailure("ns-export \(pipeline.exportKind) finished without \(expected)", fault: .task)
        }
        report(.progress(ExecutionProgress(progress: 1, currentNode: "ns-export")))

        var produced: [ProducedOutput] = []
        let files = (try? FileManager.default.contentsOfDirectory(atPath: exported).sorted()) ?? []
        for (index, name) in files.enumerated() { produced.append(try output("export", index, exported + "/" + name)) }
        produced.append(try output("train", 0, run + "/config.yml"))
        if FileManager.default.fileExists(atPath: run + "/dataparser_transforms.json") {
            produced.append(try output("train", 1, run + "/dataparser_transforms.json"))
        }
        produced.append(try output("process", 0, processed + "/transforms.json"))
        if pipeline.keepCheckpoint { produced.append(try output("checkpoint", 0, checkpoint)) }
        return produced
    }

    public func recoverable(window: Duration) async -> [RecoveredAttempt] { [] }

    public func resume(_ attempt: RecoveredAttempt, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
        throw ExecutionFailure("a Nerfstudio run does not survive an agent restart", fault: .agent)
    }

    public func abandon(_ attempt: RecoveredAttempt) async {}

    public func modelFolders() async -> [String: [String]]? { nil }

    // MARK: Phases

    /// Runs one tool in its own process group, reading both streams line by line; a non-zero exit (or a signal) fails
    /// the attempt with the exit status, the last lines it printed and the GPU's memory. Cancellation stops the group
    /// (SIGINT, then SIGKILL after `cancelGrace`) and throws `ExecutionStopped` once it has ended.
    private func runPhase(_ command: String, _ arguments: [String], in folder: String, onLine: @escaping @Sendable (String) -> Void) async throws {
        guard let path = executable(command) else {
            throw ExecutionFailure("\(command) not found in \(binDirectory ?? "PATH")", fault: .agent, toolUnavailable: true)
        }
        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [
            .send(signal: .interrupt, toProcessGroup: true, allowedDurationToNextStep: cancelGrace),
            .send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .seconds(1)),
        ]
        logger.info("nerfstudio phase", metadata: ["command": "\(command)", "arguments": "\(arguments.joined(separator: " "))"])
        let tail = LineTail()
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments), environment: .inherit.updating(["PYTHONUNBUFFERED": "1"]),
            workingDirectory: FilePath(folder), platformOptions: options, input: .none, output: .sequence, error: .sequence
        ) { execution in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await line in execution.standardOutput.strings() {
                        tail.append(line)
                        onLine(line)
                    }
                }
                group.addTask {
                    for try await line in execution.standardError.strings() {
                        tail.append(line)
                        onLine(line)
                    }
                }
                try await group.waitForAll()
            }
        }
        if Task.isCancelled { throw ExecutionStopped(at: Date()) }
        switch result.terminationStatus {
        case .exited(0):
            return
        case .exited(let code):
            let fault: FaultOrigin = tail.text.contains("is not available") && tail.text.contains("device") ? .agent : .task
            throw ExecutionFailure("\(command) exited with status \(code)\(await gpuMemory()): \(tail.text)", fault: fault)
        case .signaled(let signal):
            throw ExecutionFailure("\(command) was killed by signal \(signal)\(await gpuMemory()): \(tail.text)", fault: .agent)
        }
    }

    /// The last checkpoint, which must be the final step's when the run length is known (a run stopped early leaves an
    /// earlier one).
    private func finalCheckpoint(in folder: String, total: Int?) throws -> String {
        let checkpoints = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
            $0.hasPrefix("step-") && $0.hasSuffix(".ckpt")
        }
        .sorted()
        guard let last = checkpoints.last else { throw ExecutionFailure("ns-train finished without a checkpoint in \(folder)", fault: .task) }
        if let total {
            let expected = String(format: "step-%09d.ckpt", total - 1)
            guard last == expected else {
                throw ExecutionFailure("ns-train stopped before the end: its last checkpoint is \(last), not \(expected)", fault: .task)
            }
        }
        return folder + "/" + last
    }

    // MARK: Files

    /// Writes the capture into the attempt's folder: a video as it is, an image set unpacked (safely) into `images/`.
    private func placeInput(_ job: ExecutionJob, _ pipeline: NerfstudioPipeline, in folder: String) throws -> String {
        let chosen =
            job.inputs.first { input in pipeline.inputFile.map { $0 == input.offer.fileName || $0.hasSuffix("/" + input.offer.fileName) } ?? false }
            ?? (job.inputs.count == 1 ? job.inputs.first : nil)
        guard let input = chosen else {
            throw ExecutionFailure(
                "the pipeline's input.file names no file parameter of the run (\(job.inputs.count) file inputs)", fault: .task)
        }
        let name = FileName.sanitize(input.offer.fileName) ?? "capture"
        switch pipeline.inputType {
        case .video:
            let path = folder + "/" + name
            try Data(input.bytes).write(to: URL(fileURLWithPath: path))
            return path
        case .images:
            let archive = folder + "/capture.zip"
            try Data(input.bytes).write(to: URL(fileURLWithPath: archive))
            let images = folder + "/images"
            try SafeUnzip.extract(archive, into: images, maxBytes: maxUnpackedBytes, maxFiles: maxUnpackedFiles)
            try? FileManager.default.removeItem(atPath: archive)
            return images
        }
    }

    private func output(_ phase: String, _ index: Int, _ path: String) throws -> ProducedOutput {
        let name = (path as NSString).lastPathComponent
        let contentType =
            switch (name as NSString).pathExtension.lowercased() {
            case "ply": "application/ply"
            case "json": "application/json"
            case "yml", "yaml": "application/yaml"
            case "obj": "model/obj"
            case "png": "image/png"
            default: "application/octet-stream"
            }
        return ProducedOutput(
            nodeId: phase, kind: "files", index: index, fileName: name, contentType: contentType,
            bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    private func executable(_ command: String) -> String? {
        let folders = binDirectory.map { [$0] } ?? (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return folders.map { "\($0)/\(command)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    // MARK: GPU

    /// The GPUs `nvidia-smi` lists (none without it).
    private func gpus() async -> [SystemStats.GPUDevice] {
        guard let text = await nvidiaSMI() else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, let total = Int(cells[1]), let free = Int(cells[2]) else { return nil }
            return SystemStats.GPUDevice(name: cells[0], vramTotal: total << 20, vramFree: free << 20)
        }
    }

    /// `; GPU memory: 10240 of 81920 MiB used` for the error of a failed phase, when `nvidia-smi` answers.
    private func gpuMemory() async -> String {
        let devices = await gpus()
        guard !devices.isEmpty else { return "" }
        let used = devices.map { "\(($0.vramTotal - $0.vramFree) >> 20) of \($0.vramTotal >> 20) MiB" }.joined(separator: ", ")
        return " (GPU memory: \(used) used)"
    }

    private func nvidiaSMI() async -> String? {
        guard let path = executable("nvidia-smi") else { return nil }
        let result = try? await Subprocess.run(
            .path(FilePath(path)), arguments: ["--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            output: .string(limit: 64 * 1024))
        guard case .exited(0) = result?.terminationStatus else { return nil }
        return result?.standardOutput
    }

    static func percent(_ fraction: Double) -> String { String(format: "%.0f %%", fraction * 100) }
}

/// The last lines a process printed, for its error.
final class LineTail: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) {
        let plain = NerfstudioProgress.stripANSI(line).trimmingCharacters(in: .whitespaces)
        guard !plain.isEmpty else { return }
        lines.withLock { lines in
            lines.append(String(plain.prefix(500)))
            if lines.count > 12 { lines.removeFirst(lines.count - 12) }
        }
    }

    var text: String { lines.withLock { $0.joined(separator: " | ") } }
}
