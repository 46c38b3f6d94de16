import Foundation
import Logging
import SwitchyardAgent
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

    @Test("a run: progress rises monotonically to 1 at most ten times a second; the output bytes are ComfyUI's")
    func run() async throws {
        try await FakeComfyUI.with(.init(progressTick: .milliseconds(5))) { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let reports = Mutex<[ExecutionProgress]>([])
            let graph =
                #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
                + #" "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 0.4}},"#
                + #" "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "jobs/run"}}}"#
            let outputs = try await executor.execute(try Self.job(graph)) { progress in reports.withLock { $0.append(progress) } }
            #expect(outputs.count == 1)
            let output = try #require(outputs.first)
            #expect(output.nodeId == "3" && output.kind == "images" && output.index == 0 && output.contentType == "image/png")
            #expect(output.bytes == (await fake.file(type: "output", subfolder: "jobs", filename: output.fileName)))
            let values = reports.withLock { $0 }.map(\.progress)
            #expect(values.last == 1)
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
            #expect(values.count >= 3 && values.count <= 8, "0.4 s of progress at ≤10/s: \(values)")
            #expect(reports.withLock { $0 }.contains { $0.currentNode == "2" })
        }
    }

    @Test("every output kind in history is collected (images, audio, gifs, text); temp previews are not")
    func outputKinds() async throws {
        try await FakeComfyUI.with { fake in
            let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Self.logger)
            let graph = """
                {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
                 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "kinds"}},
                 "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
                 "4": {"class_type": "SaveAudio", "inputs": {"filename_prefix": "audio/clip"}},
                 "5": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "filename_prefix": "video"}},
                 "6": {"class_type": "PreviewAny", "inputs": {"source": "a caption"}}}
                """
            let outputs = try await executor.execute(try Self.job(graph)) { _ in }
            #expect(outputs.map { "\($0.nodeId).\($0.kind).\($0.index)" } == ["2.images.0", "2.images.1", "4.audio.0", "5.gifs.0", "6.text.0"])
            #expect(outputs.first { $0.kind == "gifs" }?.contentType == "video/h264-mp4")
            #expect(outputs.first { $0.kind == "text" }?.bytes == Array("a caption".utf8))
            #expect(
                outputs.first { $0.kind == "audio" }?.bytes == (await fake.file(type: "output", subfolder: "audio", filename: "clip_00001_.flac")))
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
            #expect(outputs.map(\.nodeId) == ["12"])
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
            let first = Task { try await executor.execute(running) { _ in reported.yield() } }
            var progressed = progress.makeAsyncIterator()
            _ = await progressed.next()  // running: ComfyUI reported progress

            let pending = try Self.job(sleep)
            let second = Task { try await executor.execute(pending) { _ in } }
            await fake.queued(promptId: pending.attemptId)
            second.cancel()
            await #expect(throws: CancellationError.self) { _ = try await second.value }
            #expect(await fake.requests().contains(#"POST /queue {"delete":["\#(pending.attemptId)"]}"#))

            let clock = ContinuousClock()
            let began = clock.now
            first.cancel()
            await #expect(throws: CancellationError.self) { _ = try await first.value }
            #expect(began.duration(to: clock.now) < .seconds(5))
            #expect(await fake.requests().contains(#"POST /interrupt {"prompt_id":"\#(running.attemptId)"}"#))
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
