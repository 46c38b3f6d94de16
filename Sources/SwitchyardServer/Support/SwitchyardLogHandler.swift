import Foundation
import Logging
import SwitchyardCore
import Synchronization

/// The log lines of `serve`, `migrate` and `agent` (docs/operations.md), to standard error, one line per event
/// whatever the values hold:
/// - `text`: `2026-12-01T00:54:33.120Z info switchyard: task transition status=running task_id=0193…`; a value with
///   a space, quote, `=` or control character is quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes, so
///   an agent id or a device name cannot start a line of its own or forge a key;
/// - `json`: one object per line (keys sorted) — `timestamp`, `level`, `label`, `message` and the metadata keys.
public struct SwitchyardLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: Format
    let sink: @Sendable (String) -> Void

    public init(label: String, level: Logger.Level, format: Format, sink: @escaping @Sendable (String) -> Void = SwitchyardLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    private static let lock = Mutex(())

    /// Writes a whole line at once, so lines of concurrent tasks never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        lock.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        sink(Self.line(date: Date(), level: event.level, label: label, message: "\(event.message)", metadata: merged, format: format))
    }

    static func line(date: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: Format) -> String {
        let timestamp = date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(timestamp) \(level.rawValue) \(label): \(escaped(message, quoteWhenNeeded: false))"
            for key in keys { line += " \(escaped(key, quoteWhenNeeded: true))=\(escaped(flatten(metadata[key]!), quoteWhenNeeded: true))" }
            return line + "\n"
        case .json:
            // The project's own serializer (keys sorted); the four fixed fields win over metadata of the same name.
            var object = metadata.mapValues { JSONValue.string(flatten($0)) }
            object["timestamp"] = .string(timestamp)
            object["level"] = .string(level.rawValue)
            object["label"] = .string(label)
            object["message"] = .string(message)
            return JSONValue.object(object).jsonString + "\n"
        }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let values): "{" + values.keys.sorted().map { "\($0):\(flatten(values[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// `text`'s escaping: control characters always escaped; quoted when asked and the value is empty or holds a
    /// space, `"` or `=`.
    static func escaped(_ text: String, quoteWhenNeeded: Bool) -> String {
        var out = ""
        var needsQuotes = text.isEmpty
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            case "\"":
                out += "\\\""
                needsQuotes = true
            case " ", "=":
                out.unicodeScalars.append(scalar)
                needsQuotes = true
            default:
                if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                    || scalar == "\u{2028}" || scalar == "\u{2029}"
                {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return quoteWhenNeeded && needsQuotes ? "\"\(out)\"" : out
    }
}
