import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardCore

extension SwitchyardClient {
    // MARK: - Events

    /// The task's events (`GET /r/tasks/{id}/events`) until its terminal one. A dropped connection is resumed with
    /// `Last-Event-ID`, so no event is seen twice or missed; the stream ends after `completed`, `failed` or
    /// `cancelled`. Events after `lastEventId` only when it is given.
    public func events(task id: UUID, after lastEventId: Int? = nil) -> AsyncThrowingStream<TaskEvent, any Error> {
        AsyncThrowingStream { continuation in
            let follower = Task {
                do {
                    try await followEvents(task: id, after: lastEventId) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in follower.cancel() }
        }
    }

    func followEvents(task id: UUID, after start: Int?, yield: (TaskEvent) -> Void) async throws {
        var last = start
        var failures = 0
        while true {
            try Task.checkCancellation()
            var request = HTTPClientRequest(url: server + "/api/v1/r/tasks/\(id.lowercased)/events")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Accept", value: "text/event-stream")
            if let teamId { request.headers.add(name: "X-Team-ID", value: teamId) }
            if let last { request.headers.add(name: "Last-Event-ID", value: "\(last)") }
            var reconnectAfter = Duration.seconds(3)
            do {
                let response = try await http.execute(request, timeout: .hours(24 * 7))
                guard response.status == .ok else {
                    let body = try await response.body.collect(upTo: 1 << 20)
                    let answer = Answer(status: Int(response.status.code), headers: response.headers, body: body)
                    // A busy server is tried again; anything else (401, 404) is the answer.
                    guard answer.status == 429 || answer.status == 503, failures < retry.attempts else { throw SwitchyardAPIError(answer) }
                    failures += 1
                    try await Task.sleep(for: min(retry.initialDelay * (1 << min(failures, 10)), retry.maximumDelay))
                    continue
                }
                var parser = ServerSentEvents()
                for try await buffer in response.body {
                    for event in parser.feed(buffer.readableBytesView) {
                        if let retry = event.retry { reconnectAfter = .milliseconds(retry) }
                        guard let kind = event.kind else { continue }
                        let data = (try? JSONValue.parse(event.data)) ?? .string(event.data)
                        if kind == "error" {
                            throw SwitchyardAPIError(status: 500, message: data["error_message"]?.stringValue ?? "the event stream failed")
                        }
                        let taskEvent = TaskEvent(id: event.id, kind: kind, data: data)
                        if let id = event.id { last = id }
                        failures = 0
                        yield(taskEvent)
                        if taskEvent.isTerminal { return }
                    }
                }
            } catch let error as SwitchyardAPIError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // A dropped connection: resumed below, with a limit on failures in a row.
                failures += 1
                guard failures < retry.attempts else { throw error }
            }
            // The stream ended without its terminal event (a restart, a proxy's timeout): resume where it stopped.
            try await Task.sleep(for: min(reconnectAfter, retry.maximumDelay))
        }
    }

    // MARK: - Large uploads and downloads

    /// Downloads every output of a completed task into `directory` (created when missing), each under its file
    /// name in the store; answers the paths written.
    public func downloadOutputs(
        task id: UUID, into directory: String, progress: @escaping @Sendable (String, Int64, Int64) -> Void = { _, _, _ in }
    ) async throws -> [String] {
        let result = try await result(task: id)
        guard result.status == .completed else {
            throw SwitchyardAPIError(status: 409, message: "task \(id.lowercased) is \(result.status.rawValue), not completed")
        }
        if let expired = result.outputsExpiredAt {
            throw SwitchyardAPIError(status: 410, message: "the outputs expired on \(RFC3339.format(expired))")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = result.fileNames
        var written: [String] = []
        var urls = result.downloadURLs
        if urls.isEmpty, let primary = result.downloadURL { urls["output"] = primary }
        for (outputId, url) in urls.sorted(by: { $0.key < $1.key }) {
            var name = names[outputId] ?? outputId
            if name.hasPrefix(".") || name.contains("/") { name = outputId }
            let path = (directory as NSString).appendingPathComponent(name)
            try await FileUpload.download(url: url, to: path, http: http) { [name] done, total in progress(name, done, total) }
            written.append(path)
        }
        return written
    }
}
