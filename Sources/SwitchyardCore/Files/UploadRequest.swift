import Foundation

/// `POST /r/files/presign`'s body, validated (api.md §2.3): `file_name` (kept as the key's last segment,
/// sanitised), `file_size` (the exact byte count, 1 … the deployment's cap) and `content_type` (a MIME type,
/// recorded in the key).
public struct UploadRequest: Sendable, Equatable {
    public var fileName: String
    public var fileSize: Int
    public var contentType: String

    public static func validate(body: JSONValue, maximumSize: Int) throws(SwitchyardError) -> UploadRequest {
        let fields = try JSONFields(body: body)
        let rawName = try fields.required("file_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...255) }
        guard let fileName = FileName.sanitize(rawName) else {
            throw .invalid("field \"file_name\": \"\(rawName)\" has no usable characters; send a name like photo.png")
        }
        guard let size = try fields.number("file_size") else { throw .invalid("field \"file_size\" is required") }
        guard let fileSize = size.intValue else { throw .invalid("field \"file_size\" must be a whole number of bytes, not \(size)") }
        guard fileSize >= 1 else { throw .invalid("field \"file_size\": \(fileSize) is below the minimum 1") }
        guard fileSize <= maximumSize else {
            throw .invalid("field \"file_size\": \(fileSize) bytes is above this server's upload limit of \(maximumSize) bytes")
        }
        let contentType = try fields.required("content_type") { key throws(SwitchyardError) in try fields.string(key, length: 3...255, trim: true) }
        guard MIMEType.isValid(contentType) else {
            throw .invalid("field \"content_type\": \"\(contentType)\" is not a MIME type like image/png")
        }
        return UploadRequest(fileName: fileName, fileSize: fileSize, contentType: contentType.lowercased())
    }
}

/// File names as they end up in object keys and on agents' disks.
public enum FileName {
    /// The last path component of `name`, without control characters, `/`, `\`, and without leading dots or
    /// surrounding spaces; nil when nothing is left. Unicode letters stay.
    public static func sanitize(_ name: String) -> String? {
        let lastComponent = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let scalars = lastComponent.unicodeScalars.filter { scalar in
            !(scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format || scalar == "\u{FFFD}")
        }
        var cleaned = String(String.UnicodeScalarView(scalars)).trimmingCharacters(in: .whitespaces)
        while cleaned.hasPrefix(".") { cleaned.removeFirst() }
        cleaned = cleaned.trimmingCharacters(in: .whitespaces)
        guard !cleaned.isEmpty else { return nil }
        while cleaned.utf8.count > 200 { cleaned.removeFirst() }
        return cleaned
    }

    /// `out.png` as its `copy`-th name: `out (2).png`.
    public static func numbered(_ name: String, _ copy: Int) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "\(name) (\(copy))" }
        return "\(name[..<dot]) (\(copy))\(name[dot...])"
    }
}

/// MIME types as `content_type` values and `accept` patterns use them.
public enum MIMEType {
    /// `type/subtype` (parameters after `;` allowed), each part of RFC 6838 restricted-name characters.
    public static func isValid(_ text: String) -> Bool {
        let essence = text.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let parts = essence.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.utf8.count <= 127
                && part.unicodeScalars.allSatisfy {
                    $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "!#$&-^_.+".unicodeScalars.contains($0))
                }
        }
    }
}
