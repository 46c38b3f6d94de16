import Foundation
import SwitchyardCore
import SwitchyardWire

/// Outputs: upload URLs for an attempt's files (capped per attempt), and the completion that lists them.
extension Dispatcher {
    func requestUpload(_ request: AgentMessage.UploadRequest, lease: Lease, connection: AgentConnection, now: Date) {
        guard let name = FileName.sanitize(request.fileName), request.size >= 0, request.size <= 5 * 1024 * 1024 * 1024 else {
            refuse(request.attemptId, connection, "upload_request: file_name must be a usable name and size 0–5 GiB")
            return
        }
        guard (uploadKeys[lease.attemptId]?.count ?? 0) < settings.maxUploadsPerAttempt,
            (uploadBytes[lease.attemptId] ?? 0) + request.size <= settings.maxUploadBytesPerAttempt
        else {
            refuse(
                request.attemptId, connection,
                "upload_request: an attempt may upload at most \(settings.maxUploadsPerAttempt) files and \(settings.maxUploadBytesPerAttempt) bytes"
            )
            return
        }
        uploadBytes[lease.attemptId, default: 0] += request.size
        // Two outputs may share a file name (SaveImage into two subfolders): each gets its own key.
        let folder = Self.outputFolder(lease)
        var storageKey = folder + name
        var copy = 1
        while uploadKeys[lease.attemptId]?[storageKey] != nil {
            copy += 1
            storageKey = folder + FileName.numbered(name, copy)
        }
        let signed = objects.presigner.presignedPut(
            key: storageKey, contentLength: request.size, contentType: request.contentType, allowOverwrite: true,
            expires: settings.urlLifetime, now: now)
        uploadKeys[lease.attemptId, default: [:]][storageKey] = request.contentType
        connection.send(
            .uploadURL(
                .init(
                    attemptId: request.attemptId, requestId: request.requestId, storageKey: storageKey, url: signed.url,
                    headers: Dictionary(signed.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last }))))
    }

    func complete(_ completion: AgentMessage.Completion, lease: Lease) async {
        let issued = uploadKeys[lease.attemptId] ?? [:]
        let folder = Self.outputFolder(lease)
        let foreign = completion.outputs.first { output in
            guard issued[output.storageKey] == nil else { return false }
            // An attempt adopted from a replica that died: that replica issued its keys, all in the attempt's folder.
            guard issued.isEmpty, output.storageKey.hasPrefix(folder) else { return true }
            let name = String(output.storageKey.dropFirst(folder.count))
            return FileName.sanitize(name) != name
        }
        if let foreign {
            await feed(
                .finished(
                    lease.agent, attemptId: lease.attemptId, event: .attemptFailed(retriable: true),
                    error: "agent \(lease.agent.agentId) reported output \(foreign.outputId) at a key the gateway did not issue", output: nil))
            return
        }
        sessions[lease.agent]?.record.tasksCompleted += 1
        await feed(.finished(lease.agent, attemptId: lease.attemptId, event: .succeeded, error: nil, output: Self.output(completion.outputs)))
    }
}

extension Dispatcher {
    /// `task_output` of a completed agent task: the primary output's `storage_key` (api.md §2.2: the first saved
    /// image, else the first saved output, previews last), the saved image count, and every output keyed
    /// `<node_id>.<kind>.<index>` with what it is; previews and animations are marked, text values are inline.
    static func output(_ files: [OutputFile]) -> JSONValue {
        let ordered = files.sorted { ($0.nodeId, $0.kind, $0.index) < ($1.nodeId, $1.kind, $1.index) }
        let saved = ordered.filter { $0.preview != true }
        let primary = saved.first { $0.kind == "images" } ?? saved.first ?? ordered.first
        var outputs: [String: JSONValue] = [:]
        for file in ordered {
            var entry: [String: JSONValue] = [
                "node_id": .string(file.nodeId), "kind": .string(file.kind), "index": .number(JSONNumber(file.index)),
                "file_name": .string(file.fileName), "storage_key": .string(file.storageKey), "content_type": .string(file.contentType),
                "size": .number(JSONNumber(file.size)), "preview": .bool(file.preview == true),
            ]
            if file.animated == true { entry["animated"] = .bool(true) }
            if let text = file.text { entry["text"] = .string(text) }
            outputs[file.outputId] = .object(entry)
        }
        return [
            "storage_key": primary.map { .string($0.storageKey) } ?? .null,
            "image_count": .number(JSONNumber(saved.filter { $0.kind == "images" }.count)),
            "outputs": .object(outputs),
        ]
    }

    /// Where an attempt's outputs go: every upload URL the gateway issues for it is for a key in this folder.
    static func outputFolder(_ lease: Lease) -> String {
        "outputs/\(lease.teamId.lowercased)/\(lease.taskId.lowercased)/\(lease.attemptId.lowercased)/"
    }
}
