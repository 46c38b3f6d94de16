import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchyardComfyUI
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// One attempt run as a Comfy API v2 job: acknowledged at once; inputs fetched from our store and uploaded as v2
/// assets (referenced from the graph as `core/ASSET`); the job submitted with the attempt id as its single-use
/// `Idempotency-Key`; followed by polling the job (v2 is "poll first") into the task's progress; its outputs fetched
/// through the asset content's `302` (the signed URL without the key) and stored in our object store through upload
/// URLs the gateway issues, as an agent's are — so results look the same. A cancel stops this job only
/// (`POST /api/v2/jobs/{id}/cancel`, never v1's `/api/interrupt`, which stops every job of the account).
///
/// Faults (docs/comfy-cloud.md): 401 marks the team's key revoked and fails the task; 402 fails it with "Comfy
/// Cloud: out of credits"; 422 (the service refused the graph) fails it with the service's message; 429 and 503
/// are waited out (`Retry-After`, else a doubling backoff up to 30 s); a job the service lost (`expired`, 404), an
/// answer it could not give (5xx) or a service that stays unreachable fails the attempt as a lost agent's would
/// (`agent` fault): the task runs again while `max_retries` allows — counted, so a service that keeps losing jobs
/// cannot make a task spin.
struct CloudJob: Sendable {
    let runner: CloudRunner
    let team: CloudRunner.Team
    let offer: GatewayMessage.Offer
    let attemptId: UUID

    struct Failure: Error, CustomStringConvertible {
        let description: String
        let fault: FaultOrigin

        init(_ description: String, fault: FaultOrigin) {
            self.description = description
            self.fault = fault
        }
    }

    private var settings: CloudSettings { runner.settings }
    private var logger: Logger { runner.logger }
    private var teamId: UUID { team.connection.key.teamId }
    private var attempt: String { offer.attemptId }

    func run() async {
        await runner.send(.ack(AttemptRef(attemptId: attempt)), team: team)
        var jobId: String?
        let outcome: AgentMessage
        do {
            guard let (key, sealed) = try await runner.apiKey(teamId: teamId) else {
                throw Failure("Comfy Cloud: the team has no active Comfy Cloud key (PUT /cloud-providers/comfy-cloud)", fault: .task)
            }
            let client = ComfyCloudClient(baseURL: settings.comfyBaseURL, apiKey: key)
            do {
                var graph = try offerGraph()
                for input in offer.inputs { try await upload(input, into: &graph, client) }
                // Not cancelled with the attempt: a job the submission creates must be known, to be cancelled (a cancel
                // that came before it was sent stops it before it goes out).
                let id = try await Task { try await submit(graph, client) }.value
                jobId = id
                try Task.checkCancellation()
                let outputs = try await follow(id, client)
                outcome = .complete(.init(attemptId: attempt, outputs: try await store(outputs, client)))
            } catch let failure as Failure where failure.description.hasPrefix(Self.refusedKeyPrefix) {
                await runner.keyRefused(teamId: teamId, sealed: sealed, detail: String(failure.description.dropFirst(Self.refusedKeyPrefix.count)))
                throw failure
            } catch is CancellationError {
                outcome = .cancelled(.init(attemptId: attempt, stoppedAt: try await stop(jobId, client)))
            }
        } catch let failure as Failure {
            outcome = .fail(.init(attemptId: attempt, error: failure.description, fault: failure.fault))
        } catch is CancellationError {
            outcome = .cancelled(.init(attemptId: attempt, stoppedAt: runner.clock.now()))
        } catch {
            outcome = .fail(.init(attemptId: attempt, error: "Comfy Cloud: \(error)", fault: .agent))
        }
        if case .fail(let failure) = outcome {
            logger.info(
                "cloud attempt failed", metadata: ["attempt_id": "\(attempt)", "job_id": "\(jobId ?? "-")", "error": "\(failure.error)"])
        }
        await runner.send(outcome, team: team)
        await runner.finished(attemptId, team: team)
    }

    static let refusedKeyPrefix = "Comfy Cloud refused the team's key (401)"

    private func offerGraph() throws -> [String: JSONValue] {
        guard case .object(let graph) = try offer.definition() else {
            throw Failure("the workflow is not a ComfyUI API-format graph", fault: .task)
        }
        return graph
    }

    // MARK: Inputs

    /// Fetches an input from our store and uploads it as a v2 asset; the graph's field then references the asset.
    private func upload(_ input: OfferInput, into graph: inout [String: JSONValue], _ client: ComfyCloudClient) async throws {
        guard let nodeId = input.nodeId, let field = input.field, case .object(var node)? = graph[nodeId],
            case .object(var inputs)? = node["inputs"]
        else { throw Failure("parameter \"\(input.parameter)\" names no node input of the graph", fault: .task) }
        var request = HTTPClientRequest(url: input.downloadURL)
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        guard response.status == .ok else {
            throw Failure("could not fetch input \"\(input.parameter)\": the store answered \(response.status.code)", fault: .platform)
        }
        let bytes = Array(buffer: try await response.body.collect(upTo: ComfyCloudLimits.maximumFileBytes + 1))
        let contentType = response.headers.first(name: "Content-Type") ?? "application/octet-stream"
        let answer = try await retrying("upload input \"\(input.parameter)\"") {
            try await client.uploadAsset(
                fileName: input.fileName, contentType: contentType, bytes: bytes, idempotencyKey: "\(attempt)-\(input.parameter)")
        }
        guard answer.status == 200 || answer.status == 201, let assetId = answer.json?["id"]?.stringValue else {
            throw refusal(answer, doing: "upload input \"\(input.parameter)\"")
        }
        inputs[field] = ["__type": "core/ASSET", "info": ["id": .string(assetId), "file_path": .string(input.fileName)]]
        node["inputs"] = .object(inputs)
        graph[nodeId] = .object(node)
    }

    // MARK: The job

    private func submit(_ graph: [String: JSONValue], _ client: ComfyCloudClient) async throws -> String {
        let answer = try await retrying("submit the workflow") { try await client.submitJob(graph, idempotencyKey: attempt) }
        guard answer.status == 201 || answer.status == 200, let id = answer.json?["id"]?.stringValue else {
            if answer.errorCode == "idempotency_key_reuse" {
                // An earlier try's answer was lost and may have created a job: this attempt cannot know, so it ends
                // as the platform's fault and the task runs again as a new attempt (a new key).
                throw Failure("Comfy Cloud: the submission's answer was lost (idempotency_key_reuse); the task runs again", fault: .agent)
            }
            throw refusal(answer, doing: "submit the workflow")
        }
        logger.info("cloud job submitted", metadata: ["attempt_id": "\(attempt)", "job_id": "\(id)"])
        return id
    }

    /// Follows the job's event stream for live progress until its terminal `status`, then reads the job (the
    /// authoritative view) for its outcome and outputs; a stream that cannot be opened or drops leaves the rest to
    /// polling the job every `cloud.pollInterval`. Answers the outputs of a job that succeeded.
    private func follow(_ id: String, _ client: ComfyCloudClient) async throws -> [JSONValue] {
        let shown = ShownProgress()
        let streamed = try? await client.events(id) { event, data in
            switch event {
            case "progress":
                await show(data, shown)
            case "status":
                let status = data["status"]?.stringValue ?? ""
                if status == "queued" { await noteQueued(data["queue_position"], shown) }
                return !Self.terminalStatuses.contains(status)
            default:
                break
            }
            return true
        }
        if streamed != 200 {
            logger.debug(
                "no event stream for the job; polling", metadata: ["job_id": "\(id)", "status": "\(streamed.map(String.init) ?? "unreachable")"])
        }
        while true {
            let answer = try await retrying("read job \(id)") { try await client.job(id) }
            guard answer.status == 200, let job = answer.json, let status = job["status"]?.stringValue else {
                if answer.status == 404 { throw Failure("Comfy Cloud lost job \(id) (404)", fault: .agent) }
                throw refusal(answer, doing: "read job \(id)")
            }
            switch status {
            case "succeeded":
                return job["outputs"]?.arrayValue ?? []
            case "failed":
                throw Failure(Self.jobError(job["error"], id: id), fault: .task)
            case "expired":
                throw Failure(
                    "Comfy Cloud: job \(id) expired on the service's side (\(job["error"]?["message"]?.stringValue ?? "lost"))", fault: .agent)
            case "canceled":
                throw Failure("Comfy Cloud: job \(id) was cancelled on the service's side", fault: .task)
            case "queued":
                await noteQueued(job["queue_position"], shown)
            default:
                if let progress = job["progress"] { await show(progress, shown) }
            }
            try await Task.sleep(for: .milliseconds(Int(settings.pollInterval * 1000)))
        }
    }

    static let terminalStatuses: Set<String> = ["succeeded", "failed", "canceled", "expired"]

    /// What was last reported, so the stream and the polls report each change once.
    final class ShownProgress: Sendable {
        let state = Mutex<(progress: JSONValue?, note: String)>((nil, ""))
    }

    /// A `Progress` object (value 0–1, node, step of steps) as the attempt's progress, when it changed.
    private func show(_ progress: JSONValue, _ shown: ShownProgress) async {
        guard let value = progress["value"]?.numberValue?.doubleValue,
            shown.state.withLock({ state in
                defer { state.progress = progress }
                return state.progress != progress
            })
        else { return }
        await runner.send(
            .progress(
                .init(
                    attemptId: attempt, progress: min(max(value, 0), 1), stepCurrent: progress["step"]?.numberValue?.intValue,
                    stepTotal: progress["steps"]?.numberValue?.intValue, currentNode: progress["current_node"]?.stringValue)),
            team: team)
    }

    /// "queued on Comfy Cloud (position N)" in the task's events, when the position changed.
    private func noteQueued(_ position: JSONValue?, _ shown: ShownProgress) async {
        let note = "queued on Comfy Cloud" + (position?.numberValue?.intValue.map { " (position \($0 + 1))" } ?? "")
        guard
            shown.state.withLock({ state in
                defer { state.note = note }
                return state.note != note
            })
        else { return }
        await runner.send(.note(.init(attemptId: attempt, message: note)), team: team)
    }

    /// Cancels the job (when there is one) and waits, briefly, until the service says it ended; answers when the work
    /// stopped as far as this server knows.
    private func stop(_ id: String?, _ client: ComfyCloudClient) async throws -> Date {
        guard let id else { return runner.clock.now() }
        // Detached from the cancelled task: the cancel and its follow-up reads must still go out.
        return await Task.detached { [settings, runner] in
            _ = try? await client.cancelJob(id)
            for _ in 0..<20 {
                if let status = try? await client.job(id).json?["status"]?.stringValue,
                    ["canceled", "succeeded", "failed", "expired"].contains(status)
                {
                    break
                }
                try? await Task.sleep(for: .milliseconds(Int(min(settings.pollInterval, 0.25) * 1000)))
            }
            return runner.clock.now()
        }.value
    }

    // MARK: Outputs

    /// Fetches each output and stores it where the gateway says, as an agent uploads its outputs.
    private func store(_ outputs: [JSONValue], _ client: ComfyCloudClient) async throws -> [OutputFile] {
        var files: [OutputFile] = []
        var counts: [String: Int] = [:]
        for output in outputs {
            guard let assetId = output["id"]?.stringValue, let nodeId = output["node_id"]?.stringValue else { continue }
            let name = output["name"]?.stringValue ?? assetId
            let kind = Self.kind(output["type"]?.stringValue)
            let index = counts["\(nodeId).\(kind)", default: 0]
            counts["\(nodeId).\(kind)"] = index + 1
            let answer = try await retrying("fetch output \(name)") { try await client.assetContent(assetId, maximumSize: 2 << 30) }
            guard answer.status == 200 else { throw refusal(answer, doing: "fetch output \(name)") }
            let contentType = output["content_type"]?.stringValue ?? answer.contentType ?? "application/octet-stream"
            let url = try await uploadURL(fileName: name, contentType: contentType, size: answer.body.count)
            var request = HTTPClientRequest(url: url.url)
            request.method = .PUT
            for (header, value) in url.headers where header.lowercased() != "content-length" { request.headers.add(name: header, value: value) }
            request.body = .bytes(ByteBuffer(bytes: answer.body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
            _ = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw Failure("the store refused output \(name) (\(response.status.code))", fault: .platform) }
            files.append(
                OutputFile(
                    nodeId: nodeId, kind: kind, index: index, fileName: name, storageKey: url.storageKey, contentType: contentType,
                    size: answer.body.count))
        }
        return files
    }

    private func uploadURL(fileName: String, contentType: String, size: Int) async throws -> GatewayMessage.UploadURL {
        let requestId = "\(attempt)/\(UUID().uuidString.lowercased())"
        let team = self.team
        // A cancelled attempt stops waiting for its answer.
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                team.uploads.withLock { $0[requestId] = continuation }
                if Task.isCancelled, let waiter = team.uploads.withLock({ $0.removeValue(forKey: requestId) }) {
                    waiter.resume(throwing: CancellationError())
                    return
                }
                Task {
                    await runner.send(
                        .uploadRequest(.init(attemptId: attempt, requestId: requestId, fileName: fileName, contentType: contentType, size: size)),
                        team: team)
                }
            }
        } onCancel: {
            team.uploads.withLock { $0.removeValue(forKey: requestId) }?.resume(throwing: CancellationError())
        }
    }

    /// v2's output type as ComfyUI's history kind (the middle part of a `download_urls` key).
    static func kind(_ type: String?) -> String {
        switch type {
        case "image": "images"
        case "video": "video"
        case "audio": "audio"
        case "text": "text"
        case "latent": "latents"
        default: "files"
        }
    }

    static func jobError(_ error: JSONValue?, id: String) -> String {
        var text = "Comfy Cloud: job \(id) failed"
        if let node = error?["node_id"]?.stringValue {
            text += " at node \(node)" + (error?["class_type"]?.stringValue.map { " (\($0))" } ?? "")
        }
        if let message = error?["message"]?.stringValue, !message.isEmpty { text += ": \(message)" }
        return text
    }

    // MARK: Answers

    /// Calls `body` until the service answers something other than 429/503 (or a connection error), waiting
    /// `Retry-After` or a doubling backoff (0.5 s … 30 s) between tries; six connection errors in a row fail the
    /// attempt as the platform's fault.
    private func retrying(_ what: String, _ body: () async throws -> ComfyCloudClient.Answer) async throws -> ComfyCloudClient.Answer {
        var backoff = 0.5
        var unreachable = 0
        while true {
            try Task.checkCancellation()
            if team.cancelled.withLock({ $0.contains(attemptId) }) { throw CancellationError() }
            do {
                let answer = try await body()
                guard answer.status == 429 || answer.status == 503 else { return answer }
                let wait = min(answer.retryAfter ?? backoff, 30)
                logger.info(
                    "Comfy Cloud asks to wait", metadata: ["attempt_id": "\(attempt)", "status": "\(answer.status)", "seconds": "\(wait)"])
                try await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            } catch let error as HTTPClientError {
                unreachable += 1
                guard unreachable < 6 else { throw Failure("Comfy Cloud could not be reached to \(what): \(error)", fault: .agent) }
                try await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
            }
            backoff = min(backoff * 2, 30)
        }
    }

    /// The failure for an answer that refuses what was asked.
    private func refusal(_ answer: ComfyCloudClient.Answer, doing what: String) -> Failure {
        let detail = answer.errorMessage ?? String(decoding: answer.body.prefix(300), as: UTF8.self)
        switch answer.status {
        case 401:
            return Failure(Self.refusedKeyPrefix + (detail.isEmpty ? "" : ": \(detail)"), fault: .task)
        case 402:
            return Failure("Comfy Cloud: out of credits (402\(answer.errorCode.map { " \($0)" } ?? ""))", fault: .task)
        case 400, 403, 404, 409, 413, 415, 422:
            var text = "Comfy Cloud refused to \(what) (\(answer.status)\(answer.errorCode.map { " \($0)" } ?? "")): \(detail)"
            if let errors = answer.json?["error"]?["details"]?["node_errors"], errors != .null, errors != [:] { text += " \(errors.jsonString)" }
            return Failure(text, fault: .task)
        default:
            return Failure("Comfy Cloud answered \(answer.status) to \(what): \(detail)", fault: .agent)
        }
    }
}

/// What Comfy Cloud documents it accepts as an input (spec/comfy-cloud.md: 50 MB per file, 16,384 px per edge,
/// 64 MP in all); larger inputs are refused at submission.
enum ComfyCloudLimits {
    static let maximumFileBytes = 50 * 1024 * 1024
    static let maximumEdge = 16_384
    static let maximumPixels = 67_108_864
}
