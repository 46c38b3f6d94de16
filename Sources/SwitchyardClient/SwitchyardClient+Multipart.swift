import Foundation
import SwitchyardCore

/// What a multipart upload has sent so far, kept beside the file (`<file>.switchyard-upload`, written after every
/// part), so that running the same upload again after a failure or an interruption sends only the missing parts.
/// It is used only for the same file (size and modification time) and removed once the upload completes.
struct UploadJournal: Codable, Equatable {
    var storageKey: String
    var uploadId: String
    var partSize: Int
    var partCount: Int
    var fileSize: Int64
    var modified: Date
    /// ETags of the parts sent, by part number.
    var etags: [String: String] = [:]

    static func path(for file: String) -> String { file + ".switchyard-upload" }

    static func modified(_ file: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
    }

    /// The journal of an unfinished upload of this very file, if there is one.
    static func load(for file: String, size: Int64) -> UploadJournal? {
        guard let data = FileManager.default.contents(atPath: path(for: file)),
            let journal = try? JSONDecoder().decode(UploadJournal.self, from: data), journal.fileSize == size,
            let modified = modified(file), abs(journal.modified.timeIntervalSince(modified)) < 0.001
        else { return nil }
        return journal
    }

    func save(for file: String) throws {
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: Self.path(for: file)), options: .atomic)
    }

    static func remove(for file: String) {
        try? FileManager.default.removeItem(atPath: path(for: file))
    }

    /// Bytes in the parts already sent.
    var sentBytes: Int64 {
        etags.keys.compactMap(Int.init).reduce(0) { sum, number in
            sum + Int64(number < partCount ? partSize : Int(fileSize) - partSize * (partCount - 1))
        }
    }
}

extension SwitchyardClient {
    /// A multipart upload of a file to `storageKey` (issued by a presign endpoint): parts of the server's size, four
    /// at a time, each retried up to three times, then completed. With `resume`, the parts a journal says were sent
    /// are not sent again; an upload the server no longer has (aborted after a day) starts over. A failure leaves
    /// the journal (and the server's upload) for the next try.
    func uploadMultipart(
        path: String, size: Int64, storageKey: String, resume journal: UploadJournal? = nil,
        progress: @escaping @Sendable (Int64, Int64) -> Void
    ) async throws {
        struct Initiated: Decodable {
            let upload_id: String
            let part_size: Int
            let part_count: Int
        }
        struct Parts: Decodable {
            struct Part: Decodable {
                let part_number: Int
                let content_length: Int
                let url: String
            }
            let parts: [Part]
        }
        var journal = journal
        if journal == nil {
            let initiated: Initiated = try await send(
                .POST, "/uploads/multipart/initiate",
                json: JSONValue.object(["storage_key": .string(storageKey), "file_size": .number(JSONNumber(Int(size)))]))
            journal = UploadJournal(
                storageKey: storageKey, uploadId: initiated.upload_id, partSize: initiated.part_size, partCount: initiated.part_count,
                fileSize: size, modified: UploadJournal.modified(path) ?? Date())
            try journal?.save(for: path)
        }
        guard var journal else { return }
        let reference: [String: JSONValue] = ["storage_key": .string(storageKey), "upload_id": .string(journal.uploadId)]
        let counter = ProgressCounter(total: size, report: progress)
        counter.add(Int(journal.sentBytes))
        let missing = (1...journal.partCount).filter { journal.etags[String($0)] == nil }
        do {
            for batch in stride(from: 0, to: missing.count, by: 100) {
                var body = reference
                body["part_numbers"] = .array(missing[batch..<min(batch + 100, missing.count)].map { .number(JSONNumber($0)) })
                let presigned: Parts
                do {
                    presigned = try await send(.POST, "/uploads/multipart/presign-parts", json: JSONValue.object(body))
                } catch let error as SwitchyardAPIError where error.isNotFound && !journal.etags.isEmpty {
                    // The server no longer has the upload the journal names: start over.
                    UploadJournal.remove(for: path)
                    return try await uploadMultipart(path: path, size: size, storageKey: storageKey, progress: progress)
                }
                let partSize = journal.partSize
                try await withThrowingTaskGroup(of: (Int, String).self) { group in
                    var pending = presigned.parts[...]
                    func start(_ part: Parts.Part) {
                        group.addTask {
                            let offset = Int64(part.part_number - 1) * Int64(partSize)
                            var tries = 0
                            while true {
                                let partSent = ProgressCounter(total: Int64(part.content_length)) { _, _ in }
                                do {
                                    let etag = try await FileUpload.put(
                                        path: path, offset: offset, size: Int64(part.content_length), url: part.url, headers: [:], http: http
                                    ) { bytes in
                                        partSent.add(bytes)
                                        counter.add(bytes)
                                    }
                                    return (part.part_number, etag)
                                } catch {
                                    counter.subtract(partSent.value)
                                    tries += 1
                                    if tries >= 3 { throw error }
                                }
                            }
                        }
                    }
                    for _ in 0..<4 { if let part = pending.popFirst() { start(part) } }
                    while let (number, etag) = try await group.next() {
                        journal.etags[String(number)] = etag
                        try journal.save(for: path)
                        if let part = pending.popFirst() { start(part) }
                    }
                }
            }
        } catch {
            throw SwitchyardAPIError(
                status: (error as? SwitchyardAPIError)?.status ?? 0,
                message: "\(error) — \(journal.etags.count) of \(journal.partCount) parts are uploaded; the same upload again resumes")
        }
        var body = reference
        body["parts"] = .array(
            (1...journal.partCount).map { ["part_number": .number(JSONNumber($0)), "etag": .string(journal.etags[String($0)] ?? "")] })
        try await perform(.POST, "/uploads/multipart/complete", json: JSONValue.object(body), expecting: [200, 201])
        UploadJournal.remove(for: path)
    }
}
