import Foundation
import Logging
import SwitchyardAgent
import SwitchyardComfyUI
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

@Suite("ComfyUI executor against the fake")
struct ComfyUIExecutorTests {
    static let logger = Logger(label: "executor-test")

    static func job(_ graph: String, inputs: [ExecutionJob.Input] = []) throws -> ExecutionJob {
        ExecutionJob(
            attemptId: UUID().uuidString.lowercased(), taskId: UUID().uuidString.lowercased(), definition: try JSONValue.parse(graph), inputs: inputs)
    }

    @Test("a run: progress rises monotonically, at most ten reports a second; the output bytes are ComfyUI's")
    func run() async throws {
        try await FakeComfyUI.with(.init(progressTick: .milliseconds(5))) { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let reports = Mutex<[ExecutionProgress]>([])
            let graph =
                #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
                + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 0.4}},"#
                + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "jobs/run"}}}"#
            let outputs = try await executor.execute(try Self.job(graph)) { report in
                if case .progress(let progress) = report { reports.withLock { $0.append(progress) } }
            }
            #expect(outputs.count == 1)
            let output = try #require(outputs.first)
            #expect(output.nodeId == "3" && output.kind == "images" && output.index == 0 && output.contentType == "image/png")
            #expect(output.bytes == (await fake.file(type: "output", subfolder: "jobs", filename: output.fileName)))
            let values = reports.withLock { $0 }.map(\.progress)
            // The end is the completion itself: no unthrottled closing report at 1 (it would cost the control plane a write).
            #expect(values.last ?? 0 > 0.4)
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
            // At least one report (a loaded machine may starve the fake's ticks), at most ten a second.
            #expect(!values.isEmpty && values.count <= 8, "0.4 s of progress at ≤10/s: \(values)")
            #expect(reports.withLock { $0 }.contains { $0.currentNode == "2" })
        }
    }

    @Test(
        "after a crash, a new executor for the same agent finds its prompt in ComfyUI (running, then finished), follows it to its outputs without posting it again, and stops one given up; other agents' prompts are not its"
    )
    func recovery() async throws {
        try await FakeComfyUI.with { fake in
            let graph =
                #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
                + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 0.3}},"#
                + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "jobs/recovered"}}}"#
            let crashed = ComfyUIExecutor(baseURL: fake.baseURL, agentId: "gpu-r", logger: Self.logger)
            let job = try Self.job(graph)
            let (started, began) = AsyncStream.makeStream(of: Void.self)
            // The first process: its prompt is running when it "dies" (its work is left running, its socket closed).
            let abandoned = Task { try? await crashed.execute(job) { if $0 == .started { began.yield() } } }
            _ = await started.first { _ in true }
            crashed.close()

            #expect(
                await ComfyUIExecutor(baseURL: fake.baseURL, agentId: "someone-else", logger: Self.logger).recoverable(window: .seconds(120)) == [])
            let restarted = ComfyUIExecutor(baseURL: fake.baseURL, agentId: "gpu-r", logger: Self.logger)
            defer { restarted.close() }
            let found = await restarted.recoverable(window: .seconds(120))
            // Running, or (on a slow machine) finished already: either way it is found, once.
            #expect(found.map(\.attemptId) == [job.attemptId] && found.first?.taskId == job.taskId && found.first?.keepPreviews == true)
            let outputs = try await restarted.resume(try #require(found.first)) { _ in }
            #expect(outputs.map(\.nodeId) == ["3"])
            #expect(outputs.first?.bytes == (await fake.file(type: "output", subfolder: "jobs", filename: outputs.first?.fileName ?? "")))
            abandoned.cancel()

            // Finished now: listed as such, and its outputs are read from the history.
            let later = ComfyUIExecutor(baseURL: fake.baseURL, agentId: "gpu-r", logger: Self.logger)
            defer { later.close() }
            #expect(await later.recoverable(window: .seconds(120)).map(\.active) == [false])
            #expect(try await later.resume(found[0]) { _ in }.map(\.nodeId) == ["3"])
            #expect(await fake.requests().filter { $0.hasPrefix("POST /prompt") }.count == 1)
            #expect(await fake.promptsRun(extra: "switchyard_task_id", job.taskId) == 1)

            // One given up (the gateway gave its task to another agent): stopped in ComfyUI.
            let second = try Self.job(graph)
            let (secondStarted, secondBegan) = AsyncStream.makeStream(of: Void.self)
            let crashedAgain = ComfyUIExecutor(baseURL: fake.baseURL, agentId: "gpu-r", logger: Self.logger)
            let left = Task { try? await crashedAgain.execute(second) { if $0 == .started { secondBegan.yield() } } }
            _ = await secondStarted.first { _ in true }
            crashedAgain.close()
            let recovered = try #require(await later.recoverable(window: .seconds(120)).first { $0.attemptId == second.attemptId })
            await later.abandon(recovered)
            #expect(await fake.requests().contains { $0.hasPrefix("POST /interrupt") && $0.contains(second.attemptId) })
            left.cancel()
        }
    }

    static let everyKind = """
        {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kinds"}},
         "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
         "4": {"class_type": "SaveAudio", "inputs": {"filename_prefix": "audio/clip"}},
         "5": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "filename_prefix": "video"}},
         "6": {"class_type": "PreviewAny", "inputs": {"source": "a caption"}},
         "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim"}},
         "8": {"class_type": "SaveGLB", "inputs": {"filename_prefix": "mesh/model"}}}
        """

    @Test("every output kind in history is kept: images, temp previews (marked), audio, gifs/video, text, animated, 3D")
    func outputKinds() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let outputs = try await executor.execute(try Self.job(Self.everyKind)) { _ in }
            #expect(
                outputs.map { "\($0.nodeId).\($0.kind).\($0.index)" } == [
                    "2.images.0", "2.images.1", "3.images.0", "3.images.1", "4.audio.0", "5.gifs.0", "6.text.0", "7.images.0", "8.3d.0",
                ])
            #expect(outputs.filter(\.preview).map(\.nodeId) == ["3", "3"])
            let preview = try #require(outputs.first { $0.preview })
            #expect(preview.bytes == (await fake.file(type: "temp", subfolder: "", filename: preview.fileName)))
            #expect(outputs.first { $0.kind == "gifs" }?.contentType == "video/h264-mp4")
            let text = try #require(outputs.first { $0.kind == "text" })
            #expect(text.bytes == Array("a caption".utf8) && text.text == "a caption" && text.fileName == "6_text_0.txt")
            #expect(outputs.first { $0.nodeId == "7" }?.animated == true && outputs.first { $0.nodeId == "2" }?.animated == false)
            #expect(outputs.first { $0.nodeId == "7" }?.contentType == "image/webp")
            #expect(outputs.first { $0.kind == "3d" }?.contentType == "model/gltf-binary")
            #expect(
                outputs.first { $0.kind == "audio" }?.bytes == (await fake.file(type: "output", subfolder: "audio", filename: "clip_00001_.flac")))
        }
    }

    @Test("a workflow that opts out of previews gets none")
    func withoutPreviews() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            var job = try Self.job(Self.everyKind)
            job.keepPreviews = false
            let outputs = try await executor.execute(job) { _ in }
            #expect(!outputs.isEmpty && !outputs.contains { $0.preview || $0.nodeId == "3" })
        }
    }

    @Test("outputs are read only once ComfyUI wrote the history: a slow history write never fails a prompt")
    func historyAfterFinish() async throws {
        // The fake writes the history entry 50 ms after `execution_success`, as the real server does (sooner, but as surely
        // after): reading it on `execution_success` would find nothing.
        try await FakeComfyUI.with(.init(historyDelay: .milliseconds(50))) { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            for color in 0..<5 {
                let graph =
                    #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": \#(color)}},"#
                    + #" "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "race"}}}"#
                let outputs = try await executor.execute(try Self.job(graph)) { _ in }
                #expect(outputs.map(\.nodeId) == ["2"])
            }
            #expect(await fake.prematureHistoryReads() == 0)
        }
    }

    @Test("prompts queue in ComfyUI's own queue over one WebSocket; each reports started when it leaves the queue")
    func pipelined() async throws {
        try await FakeComfyUI.with(.init(nodeDuration: .milliseconds(20))) { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let (startedIds, started) = AsyncStream.makeStream(of: String.self)
            let jobs = try (0..<4).map { color in
                try Self.job(
                    #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": \#(color)}},"#
                        + #" "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "pipe"}}}"#)
            }
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for job in jobs {
                    group.addTask {
                        try await executor.execute(job) { report in
                            if report == .started { started.yield(job.attemptId) }
                        }.count
                    }
                }
                var counts: [Int] = []
                while let count = try await group.next() { counts.append(count) }
                return counts
            }
            started.finish()
            #expect(results == [1, 1, 1, 1])
            #expect(Set(await startedIds.reduce(into: [String]()) { $0.append($1) }) == Set(jobs.map(\.attemptId)))
            #expect(await fake.connections() == 1)
            #expect(await fake.maximumPending() >= 2, "the prompts waited in ComfyUI's queue, not in the agent")
        }
    }

    @Test("an identical graph is served from ComfyUI's cache: no node runs, the same file is returned")
    func cached() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let graph = try recordedGraphText("a_empty_invert_save")
            let first = try await executor.execute(try Self.job(graph)) { _ in }
            let ran = await fake.executedNodes()
            let second = try await executor.execute(try Self.job(graph)) { _ in }
            #expect(await fake.executedNodes() == ran)
            #expect(first.map(\.fileName) == second.map(\.fileName) && first.map(\.bytes) == second.map(\.bytes))
        }
    }

    @Test("faults: 500 on POST, a socket dropped mid-prompt, ComfyUI gone mid-prompt, a history without outputs, a missing file")
    func faults() async throws {
        try await FakeComfyUI.with(.init(nodeDuration: .milliseconds(5))) { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            func graph(_ color: Int) -> String {
                #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": \#(color)}},"#
                    + #" "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "faults"}}}"#
            }
            var options = ComfyUIConnection.RunOptions()
            options.reconnectWindow = .milliseconds(300)
            let impatient = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger, options: options)
            func failure(_ color: Int, on executor: ComfyUIExecutor = executor) async throws -> ExecutionFailure? {
                do {
                    _ = try await executor.execute(try Self.job(graph(color))) { _ in }
                    return nil
                } catch let failure as ExecutionFailure {
                    return failure
                }
            }
            await fake.inject(.promptServerError)
            let serverError = try await failure(1)
            #expect(serverError?.fault == .agent && serverError?.message.contains("500") == true && serverError?.toolUnavailable == false)

            // The socket drops, the prompt goes on: the executor reconnects and finds it in history.
            await fake.inject(.dropSocketsOnStart)
            #expect(try await failure(2) == nil)

            await fake.inject(.historyWithoutOutputs)
            let noOutputs = try await failure(3)
            #expect(noOutputs?.fault == .agent && noOutputs?.message.contains("lists no outputs") == true)

            await fake.inject(.outputFilesMissing)
            let missing = try await failure(4)
            #expect(missing?.fault == .agent && missing?.message.contains("of node 2 from /view (404)") == true)

            await fake.inject(.dieOnStart)
            let dead = try await failure(5, on: impatient)
            #expect(dead?.fault == .agent && dead?.message.contains("mid-prompt") == true)

            // Down before anything was queued: the machine's engine is unavailable, not the task's fault.
            await fake.inject(nil)
            let unreachable = try await failure(6)
            #expect(unreachable?.fault == .platform && unreachable?.toolUnavailable == true)
            await fake.setAvailable(true)
            #expect(try await failure(7) == nil)
        }
    }

    @Test("an input is pushed with /upload/image and the graph gets the name ComfyUI returned")
    func inputs() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47] + Array("input".utf8)
            let input = ExecutionJob.Input(
                offer: OfferInput(parameter: "photo", nodeId: "10", field: "image", fileName: "my photo.png", downloadURL: "unused"), bytes: bytes)
            let job = try Self.job(try recordedGraphText("b_load_blur_save"), inputs: [input])
            let outputs = try await executor.execute(job) { _ in }
            #expect(outputs.map(\.nodeId) == ["12", "13"] && outputs.map(\.preview) == [false, true])
            #expect(await fake.file(type: "input", subfolder: "switchyard/\(job.attemptId)", filename: "my photo.png") == bytes)
        }
    }

    @Test("refusals and failures become readable task errors; binary preview frames are ignored")
    func failures() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            await #expect(
                throws: ExecutionFailure(
                    "ComfyUI refused the workflow: node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in []",
                    fault: .task)
            ) { _ = try await executor.execute(try Self.job(try recordedGraphText("c1_txt2img_missing_checkpoint"))) { _ in } }
            do {
                _ = try await executor.execute(try Self.job(try recordedGraphText("c5_runtime_error"))) { _ in }
                Issue.record("the run should have failed")
            } catch let failure as ExecutionFailure {
                #expect(failure.fault == .task)
                #expect(failure.message.hasPrefix("node 3 (SaveImage) failed: Exception: **** ERROR: Saving image outside the output folder"))
            }
            #expect(try await executor.execute(try Self.job(try recordedGraphText("f_websocket_image_binary"))) { _ in }.isEmpty)
            let unknown = #"{"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}"#
            await #expect(throws: ExecutionFailure.self) { _ = try await executor.execute(try Self.job(unknown)) { _ in } }
        }
    }

    @Test("cancelling a running prompt interrupts it by id; a pending one is deleted from the queue; both return once stopped")
    func cancel() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let sleep =
                #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
                + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 30}},"#
                + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "long"}}}"#
            let running = try Self.job(sleep)
            let (progress, reported) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let first = Task {
                try await executor.execute(running) { report in
                    if case .progress = report { reported.yield() }
                }
            }
            var progressed = progress.makeAsyncIterator()
            _ = await progressed.next()  // running: ComfyUI reported progress

            let pending = try Self.job(sleep)
            let second = Task { try await executor.execute(pending) { _ in } }
            await fake.queued(promptId: pending.attemptId)
            second.cancel()
            await #expect(throws: ExecutionStopped.self) { _ = try await second.value }
            #expect(await fake.requests().contains(#"POST /queue {"delete":["\#(pending.attemptId)"]}"#))

            first.cancel()
            await #expect(throws: ExecutionStopped.self) { _ = try await first.value }
            #expect(await fake.requests().contains(#"POST /interrupt {"prompt_id":"\#(running.attemptId)"}"#))
            // Stopped by the interrupt, not by its 30 s node running out.
            #expect(await fake.ending(promptId: running.attemptId) == "execution_interrupted")
            #expect(await fake.finishedPrompts() == 1)
        }
    }

    @Test("health follows /system_stats: unhealthy while ComfyUI is down, healthy again when it is back")
    func health() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let up = await executor.health()
            #expect(up.healthy && up.toolVersion == "0.3.64")
            #expect(up.systemStats?.gpuDevices.first?.name == "NVIDIA Fake GPU")
            await fake.setAvailable(false)
            let down = await executor.health()
            #expect(!down.healthy && down.detail?.contains("503") == true)
            await fake.setAvailable(true)
            #expect(await executor.health().healthy)
        }
    }
}
