import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardServer
import Synchronization

/// The fake's worker: one prompt at a time, the WebSocket sequence of a run, and what each node produces.
extension Engine {

    func work() async {
        for await _ in wakeUps {
            while !pending.isEmpty {
                guard !Task.isCancelled else { return }
                pending.sort { $0.number < $1.number }
                let prompt = pending.removeFirst()
                await execute(prompt)
            }
        }
    }

    private func timestamp() -> JSONValue { .number(JSONNumber(Int(Date().timeIntervalSince1970 * 1000))) }

    private func execute(_ prompt: Prompt) async {
        running = prompt
        interruptRequested = false
        broadcast("status", ["status": queueStatus])
        var messages: [JSONValue] = []
        func record(_ type: String, _ data: JSONValue) {
            messages.append([.string(type), data])
        }
        let start: JSONValue = ["prompt_id": .string(prompt.id), "timestamp": timestamp()]
        toClient(prompt, "execution_start", start)
        record("execution_start", start)
        switch fault {
        case .dropSocketsOnStart?:
            closeSockets()
        case .dieOnStart?:
            setAvailable(false)
        default: break
        }
        let order = Self.executionOrder(prompt.graph, outputs: prompt.outputs)
        let signatures = Self.signatures(prompt.graph)
        let cachedNodes = order.filter { cache[signatures[$0] ?? ""] != nil }
        let cached: JSONValue = ["nodes": .array(cachedNodes.map(JSONValue.string)), "prompt_id": .string(prompt.id), "timestamp": timestamp()]
        toClient(prompt, "execution_cached", cached)
        record("execution_cached", cached)

        var states: [(String, String, Double, Double)] = []  // node, state, value, max
        func progressState() {
            var nodes: [String: JSONValue] = [:]
            for (node, state, value, max) in states {
                nodes[node] = [
                    "value": .number(JSONNumber(value)), "max": .number(JSONNumber(max)), "state": .string(state), "node_id": .string(node),
                    "prompt_id": .string(prompt.id), "display_node_id": .string(node), "parent_node_id": .null, "real_node_id": .string(node),
                ]
            }
            progressMessage(prompt, "progress_state", ["prompt_id": .string(prompt.id), "nodes": .object(nodes)])
        }
        func setState(_ node: String, _ state: String, _ value: Double, _ max: Double) {
            if let index = states.firstIndex(where: { $0.0 == node }) {
                states[index] = (node, state, value, max)
            } else {
                states.append((node, state, value, max))
            }
        }

        var outputs: [String: JSONValue] = [:]
        var executed: [String] = []
        var outcome = "success"
        run: for nodeId in order {
            let node = prompt.graph[nodeId] ?? .null
            let classType = node["class_type"]?.stringValue ?? ""
            if let signature = signatures[nodeId], let cachedOutput = cache[signature] {
                // Cached: no `executing`; an output node's UI output is replayed (the same files, none written).
                if cachedOutput != .null {
                    outputs[nodeId] = cachedOutput
                    toClient(
                        prompt, "executed",
                        ["node": .string(nodeId), "display_node": .string(nodeId), "output": cachedOutput, "prompt_id": .string(prompt.id)])
                    setState(nodeId, "finished", 1, 1)
                    progressState()
                }
                executed.append(nodeId)
                continue
            }
            if interruptRequested {
                interrupted(prompt, nodeId: nodeId, classType: classType, executed: executed, record: record)
                outcome = "interrupted"
                break run
            }
            setState(nodeId, "running", 0, 1)
            progressState()
            toClient(prompt, "executing", ["node": .string(nodeId), "display_node": .string(nodeId), "prompt_id": .string(prompt.id)])
            let inputs = node["inputs"] ?? .object([:])
            switch classType {
            case "TestSleep":
                let seconds = inputs["seconds"]?.numberValue.flatMap { Double($0.description) } ?? 1
                let clock = ContinuousClock()
                let began = clock.now
                while true {
                    let elapsed = began.duration(to: clock.now)
                    let value = min(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, seconds)
                    setState(nodeId, "running", max(value, 2.384185791015625e-07), seconds)
                    progressState()
                    progressMessage(
                        prompt, "progress",
                        [
                            "value": .number(JSONNumber(max(value, 2.384185791015625e-07))), "max": .number(JSONNumber(seconds)),
                            "prompt_id": .string(prompt.id), "node": .string(nodeId),
                        ])
                    if interruptRequested {
                        interrupted(prompt, nodeId: nodeId, classType: classType, executed: executed, record: record)
                        outcome = "interrupted"
                        break run
                    }
                    if value >= seconds { break }
                    try? await Task.sleep(for: options.progressTick)
                }
            case "SaveImageWebsocket":
                let batch = Self.batchSize(prompt.graph, from: inputs["images"])
                for index in 0..<batch {
                    setState(nodeId, "running", Double(index), Double(batch))
                    progressState()
                    progressMessage(
                        prompt, "progress",
                        [
                            "value": .number(JSONNumber(index)), "max": .number(JSONNumber(batch)), "prompt_id": .string(prompt.id),
                            "node": .string(nodeId),
                        ])
                    // PREVIEW_IMAGE (1), PNG (2), then the image bytes.
                    toClient(prompt, .binary([0, 0, 0, 1, 0, 0, 0, 2] + Self.fakePNG("\(prompt.id)/\(nodeId)/\(index)")))
                }
            case "SaveImage" where (inputs["filename_prefix"]?.stringValue ?? "").contains(".."):
                let error: JSONValue = [
                    "prompt_id": .string(prompt.id), "node_id": .string(nodeId), "node_type": .string(classType),
                    "executed": .array(executed.reversed().map(JSONValue.string)),
                    "exception_message": "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: /comfyui/output",
                    "exception_type": "Exception", "traceback": ["  File \"execution.py\", line 496, in execute\n"],
                    "current_inputs": ["filename_prefix": [inputs["filename_prefix"] ?? .null]],
                    "current_outputs": .array(prompt.outputs.map(JSONValue.string)),
                    "timestamp": timestamp(),
                ]
                toClient(prompt, "execution_error", error)
                record("execution_error", error)
                outcome = "error"
                break run
            default:
                try? await Task.sleep(for: options.nodeDuration)
                let output = produce(prompt, nodeId: nodeId, classType: classType, inputs: inputs)
                if let output {
                    outputs[nodeId] = output
                    toClient(
                        prompt, "executed",
                        ["node": .string(nodeId), "display_node": .string(nodeId), "output": output, "prompt_id": .string(prompt.id)])
                }
                if classType != "SaveImageWebsocket", let signature = signatures[nodeId] { cache[signature] = output ?? .null }
            }
            executedNodes += 1
            setState(nodeId, "finished", 1, 1)
            progressState()
            executed.append(nodeId)
        }
        if outcome == "success" {
            let success: JSONValue = ["prompt_id": .string(prompt.id), "timestamp": timestamp()]
            toClient(prompt, "execution_success", success)
            record("execution_success", success)
            // The real server writes the history entry only after this message has gone out.
            unwrittenHistory.insert(prompt.id)
            try? await Task.sleep(for: options.historyDelay)
            if historyHeld { await withCheckedContinuation { historyWaiters.append($0) } }
            unwrittenHistory.remove(prompt.id)
        }
        history[prompt.id] = [
            "prompt": [
                .number(JSONNumber(prompt.number)), .string(prompt.id), .object(prompt.graph), prompt.extraData,
                .array(prompt.outputs.map(JSONValue.string)),
            ],
            "outputs": outcome == "success" ? .object(outputs) : [:],
            "status": [
                "status_str": .string(outcome == "success" ? "success" : "error"), "completed": .bool(outcome == "success"),
                "messages": .array(messages),
            ],
            "meta": .object(
                outputs.keys.reduce(into: [String: JSONValue]()) { meta, node in
                    meta[node] = ["node_id": .string(node), "display_node": .string(node), "parent_node": .null, "real_node_id": .string(node)]
                }),
        ]
        if fault == .historyWithoutOutputs, case .object(var entry)? = history[prompt.id] {
            entry["outputs"] = nil
            history[prompt.id] = .object(entry)
        }
        running = nil
        broadcast("status", ["status": queueStatus])
        toClient(prompt, "executing", ["node": .null, "prompt_id": .string(prompt.id)])
        finished += 1
    }

    private func interrupted(_ prompt: Prompt, nodeId: String, classType: String, executed: [String], record: (String, JSONValue) -> Void) {
        let data: JSONValue = [
            "prompt_id": .string(prompt.id), "node_id": .string(nodeId), "node_type": .string(classType),
            "executed": .array(executed.map(JSONValue.string)), "timestamp": timestamp(),
        ]
        broadcast("execution_interrupted", data)
        record("execution_interrupted", data)
    }

    /// What an output node leaves in history, its files stored for `/view`.
    private func produce(_ prompt: Prompt, nodeId: String, classType: String, inputs: JSONValue) -> JSONValue? {
        func save(_ type: String, prefix: String, ext: String, bytes: (Int) -> [UInt8], count: Int) -> [JSONValue] {
            let parts = prefix.split(separator: "/").map(String.init)
            let base = parts.last ?? "ComfyUI"
            let subfolder = parts.dropLast().joined(separator: "/")
            return (0..<count).map { index in
                let counter = fileCounters[prefix, default: 0] + 1
                fileCounters[prefix] = counter
                let filename = String(format: "%@_%05d_.%@", base, counter, ext)
                files[Self.fileKey(type, subfolder, filename)] = bytes(index)
                return ["filename": .string(filename), "subfolder": .string(subfolder), "type": .string(type)]
            }
        }
        let prefix = inputs["filename_prefix"]?.stringValue ?? "ComfyUI"
        switch classType {
        case "SaveImage":
            let count = Self.batchSize(prompt.graph, from: inputs["images"])
            return [
                "images": .array(save("output", prefix: prefix, ext: "png", bytes: { Self.fakePNG("\(prompt.id)/\(nodeId)/\($0)") }, count: count))
            ]
        case "PreviewImage":
            let count = Self.batchSize(prompt.graph, from: inputs["images"])
            return [
                "images": .array(
                    save("temp", prefix: "ComfyUI_temp_fake", ext: "png", bytes: { Self.fakePNG("\(prompt.id)/\(nodeId)/\($0)") }, count: count))
            ]
        case "SaveAudio":
            return ["audio": .array(save("output", prefix: prefix, ext: "flac", bytes: { Array("fLaC audio \(prompt.id) \($0)".utf8) }, count: 1))]
        case "VHS_VideoCombine":
            var files = save("output", prefix: prefix, ext: "mp4", bytes: { Array("mp4 video \(prompt.id) \($0)".utf8) }, count: 1)
            if case .object(var first) = files[0] {
                first["format"] = "video/h264-mp4"
                files[0] = .object(first)
            }
            return ["gifs": .array(files)]
        case "PreviewAny":
            return ["text": [.string(inputs["source"]?.stringValue ?? (inputs["source"]?.jsonString ?? ""))]]
        case "SaveAnimatedWEBP", "SaveAnimatedPNG":
            let ext = classType == "SaveAnimatedWEBP" ? "webp" : "png"
            let images = save("output", prefix: prefix, ext: ext, bytes: { Array("animated \(ext) \(prompt.id) \($0)".utf8) }, count: 1)
            return ["images": .array(images), "animated": [true]]
        case "SaveGLB":
            return ["3d": .array(save("output", prefix: prefix, ext: "glb", bytes: { Array("glTF \(prompt.id) \($0)".utf8) }, count: 1))]
        default:
            return nil
        }
    }

    // MARK: Graph helpers

    static let outputClasses: Set<String> = [
        "SaveImage", "PreviewImage", "SaveImageWebsocket", "SaveAudio", "VHS_VideoCombine", "PreviewAny", "SaveAnimatedWEBP", "SaveAnimatedPNG",
        "SaveGLB",
    ]
    static let knownClasses: Set<String> = outputClasses.union([
        "EmptyImage", "LoadImage", "ImageInvert", "ImageBlur", "ImageSharpen", "ImageScale", "ImageScaleBy", "ImageBatch", "ImageFlip",
        "TestSleep", "CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEDecode", "EmptyLatentImage", "LoraLoader",
    ])

    /// Each node's cache key: its class and inputs, links replaced by the upstream node's key (so a changed input
    /// changes every node after it, as in ComfyUI's cache).
    static func signatures(_ graph: [String: JSONValue]) -> [String: String] {
        var keys: [String: String] = [:]
        func key(_ id: String, _ depth: Int) -> String {
            if let known = keys[id] { return known }
            guard depth < 256, let node = graph[id] else { return "?" }
            var inputs: [String: JSONValue] = [:]
            for (name, value) in node["inputs"]?.objectValue ?? [:] {
                if case .array(let link) = value, link.count == 2, case .string(let source) = link[0] {
                    inputs[name] = .array([.string(key(source, depth + 1)), link[1]])
                } else {
                    inputs[name] = value
                }
            }
            let made = JSONValue.object(["class_type": node["class_type"] ?? .null, "inputs": .object(inputs)]).jsonString
            keys[id] = made
            return made
        }
        for id in graph.keys { _ = key(id, 0) }
        return keys
    }

    /// The nodes `id` depends on (links are `[node_id, output_index]`).
    static func dependencies(_ graph: [String: JSONValue], _ id: String) -> [String] {
        guard case .object(let inputs)? = graph[id]?["inputs"] else { return [] }
        return inputs.keys.sorted().compactMap { key in
            guard case .array(let link) = inputs[key]!, link.count == 2, case .string(let source) = link[0] else { return nil }
            return source
        }
    }

    /// Dependencies first, from each output in id order (ComfyUI does not run nodes in id order either).
    static func executionOrder(_ graph: [String: JSONValue], outputs: [String]) -> [String] {
        var order: [String] = []
        var seen: Set<String> = []
        func visit(_ id: String) {
            guard !seen.contains(id), graph[id] != nil else { return }
            seen.insert(id)
            for dependency in dependencies(graph, id) { visit(dependency) }
            order.append(id)
        }
        for output in outputs { visit(output) }
        return order
    }

    static func batchSize(_ graph: [String: JSONValue], from link: JSONValue?) -> Int {
        guard case .array(let parts)? = link, case .string(let source)? = parts.first else { return 1 }
        if let batch = graph[source]?["inputs"]?["batch_size"]?.numberValue.flatMap({ Int($0.description) }) { return max(1, batch) }
        return batchSize(graph, from: graph[source]?["inputs"]?["image"] ?? graph[source]?["inputs"]?["images"])
    }

    /// Deterministic bytes with a PNG signature, different per seed.
    /// A real PNG, as ComfyUI's are (browsers and image tools decode it): 32×32 pixels of one colour drawn from
    /// `seed`, which a `tEXt` chunk also carries, so every output's bytes differ.
    static func fakePNG(_ seed: String) -> [UInt8] {
        let (width, height) = (32, 32)
        let hash = seed.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        let pixel: [UInt8] = [UInt8(truncatingIfNeeded: hash), UInt8(truncatingIfNeeded: hash >> 8), UInt8(truncatingIfNeeded: hash >> 16)]
        var raw: [UInt8] = []
        for _ in 0..<height { raw += [0] + Array([[UInt8]](repeating: pixel, count: width).joined()) }
        // zlib with one stored (uncompressed) deflate block.
        var adlerA: UInt32 = 1
        var adlerB: UInt32 = 0
        for byte in raw {
            adlerA = (adlerA + UInt32(byte)) % 65_521
            adlerB = (adlerB + adlerA) % 65_521
        }
        let length = UInt16(raw.count)
        let zlib: [UInt8] =
            [0x78, 0x01, 0x01, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)] + raw
            + bigEndian((adlerB << 16) | adlerA)
        let header = bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("tEXt", Array("Comment\u{0}fake image \(seed)".utf8))
            + chunk("IDAT", zlib) + chunk("IEND", [])
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    private static func chunk(_ kind: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(kind.utf8) + data
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in body {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return bigEndian(UInt32(data.count)) + body + bigEndian(~crc)
    }
}
