import Foundation

/// The object key of an uploaded workflow input: `inputs/{team}/{upload id}/…/{file name}` (DESIGN §5). The
/// team segment makes ownership checkable from the key alone; whether the object exists is the object
/// store's business.
public struct InputFileKey: Sendable, Equatable {
    public static let maximumLength = 1024

    public var teamId: UUID
    public var uploadId: UUID
    public var rawValue: String

    /// Parses a key; nil when it does not have the input-key shape.
    public init?(_ raw: String) {
        guard raw.utf8.count <= Self.maximumLength else { return nil }
        let segments = raw.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count >= 4, segments[0] == "inputs",
            let team = UUID(text: segments[1]), let upload = UUID(text: segments[2]),
            segments.dropFirst(3).allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
        else { return nil }
        self.teamId = team
        self.uploadId = upload
        self.rawValue = raw
    }

    /// The MIME type recorded in the key's fourth segment (`inputs/{team}/{upload}/{base64(type)}/{name}`), or
    /// nil for a key without one.
    public var contentType: String? {
        let segments = rawValue.split(separator: "/", omittingEmptySubsequences: false)
        let base64 = segments.count >= 5 ? segments[3].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") : ""
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8),
            MIMEType.isValid(text)
        else { return nil }
        return text
    }

    /// `inputs/{team}/{upload}/{base64(content type)}/{file name}`. The base64 uses the URL-safe alphabet (`-`,
    /// `_`), so no type can put a `/` into the segment; for common types it is plain base64 (`image/png` →
    /// `aW1hZ2UvcG5n`).
    public static func make(teamId: UUID, uploadId: UUID, contentType: String, fileName: String) -> String {
        let encoded = Data(contentType.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        return "inputs/\(teamId.lowercased)/\(uploadId.lowercased)/\(encoded)/\(fileName)"
    }

    /// The rule a `file` parameter's value breaks for a caller of `teamId`, or nil. Another team's key and a
    /// missing one read the same.
    public static func violation(_ raw: String, teamId: UUID) -> String? {
        guard let key = InputFileKey(raw) else {
            return "\"\(raw)\" is not a file_key from POST /r/files/presign (inputs/<team>/<upload>/…)"
        }
        guard key.teamId == teamId else {
            return "file_key \"\(raw)\" was not uploaded by this team"
        }
        return nil
    }
}
