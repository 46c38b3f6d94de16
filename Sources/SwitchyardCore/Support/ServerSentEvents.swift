/// Reads a `text/event-stream` body (the WHATWG rules the server writes by: `id:`, `event:`, `data:`, `retry:`,
/// comments, a blank line ends an event): the SDK reads task events with it, the cloud runner Comfy Cloud's job events.
public struct ServerSentEvents: Sendable {
    public struct Event: Equatable, Sendable {
        public var id: Int?
        public var kind: String?
        public var data = ""
        public var retry: Int?

        public init(id: Int? = nil, kind: String? = nil, data: String = "", retry: Int? = nil) {
            self.id = id
            self.kind = kind
            self.data = data
            self.retry = retry
        }
    }

    private var line: [UInt8] = []
    private var current = Event()
    private var hasData = false

    public init() {}

    /// The events the bytes complete (a partial line or event waits for the next call).
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if line.isEmpty {
                if current.kind != nil || hasData || current.retry != nil { events.append(current) }
                current = Event()
                hasData = false
            } else if line.first != UInt8(ascii: ":") {
                let text = String(decoding: line, as: UTF8.self)
                let (field, value) =
                    text.firstIndex(of: ":").map { colon in
                        let rest = text[text.index(after: colon)...]
                        return (String(text[..<colon]), String(rest.hasPrefix(" ") ? rest.dropFirst() : rest))
                    } ?? (text, "")
                switch field {
                case "id": current.id = Int(value)
                case "event": current.kind = value
                case "data":
                    current.data += hasData ? "\n" + value : value
                    hasData = true
                case "retry": current.retry = Int(value)
                default: break
                }
            }
            line.removeAll(keepingCapacity: true)
        }
        return events
    }
}
