import Foundation
import Synchronization

/// How the CLI writes: results on stdout, messages and progress bars on stderr, colour only to a terminal (and not
/// with `NO_COLOR`).
enum Terminal {
    static let stdoutIsTerminal = isatty(STDOUT_FILENO) == 1
    static let stderrIsTerminal = isatty(STDERR_FILENO) == 1
    static let colour = stderrIsTerminal && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty

    /// A line on stdout, written at once (stdout is fully buffered when it is not a terminal).
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// A line on stderr.
    static func error(_ text: String) {
        FileHandle.standardError.write(Data(((colour ? "\u{1B}[31m" + text + "\u{1B}[0m" : text) + "\n").utf8))
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func green(_ text: String) -> String { colour && stdoutIsTerminal ? "\u{1B}[32m\(text)\u{1B}[0m" : text }
    static func red(_ text: String) -> String { colour && stdoutIsTerminal ? "\u{1B}[31m\(text)\u{1B}[0m" : text }

    /// Rows as aligned columns under a header.
    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        out(([line(header)] + rows.map(line)).joined(separator: "\n"))
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second; silent when stderr is not a terminal or
/// the command prints JSON.
final class ProgressBar: Sendable {
    private let enabled: Bool
    private let state: Mutex<(drawn: ContinuousClock.Instant?, width: Int, label: String)>

    init(_ label: String, enabled: Bool) {
        state = Mutex((nil, 0, label))
        self.enabled = enabled && Terminal.stderrIsTerminal
    }

    /// `fraction` 0…1 (nil: unknown), and what to show after the bar; `label` (what is going on: a task's status)
    /// replaces the one before the bar from now on.
    func update(_ fraction: Double?, _ detail: String = "", label newLabel: String? = nil, force: Bool = false) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let label = state.withLock { state -> String? in
            if let newLabel { state.label = newLabel }
            if !force, let drawn = state.drawn, now - drawn < .milliseconds(100) { return nil }
            state.drawn = now
            return state.label
        }
        guard let label else { return }
        let cells = 24
        let filled = Int(((fraction ?? 0) * Double(cells)).rounded(.down))
        let bar = String(repeating: "█", count: min(cells, filled)) + String(repeating: "░", count: max(0, cells - filled))
        let percent = fraction.map { String(format: "%3d%%", Int(($0 * 100).rounded(.down))) } ?? "   …"
        let text = "\(label) \(bar) \(percent) \(detail)"
        let padded = state.withLock { state -> String in
            let pad = max(0, state.width - text.count)
            state.width = text.count
            return text + String(repeating: " ", count: pad)
        }
        FileHandle.standardError.write(Data(("\r" + padded).utf8))
    }

    /// Ends the bar's line (with a last drawing at `fraction`).
    func finish(_ fraction: Double? = 1, _ detail: String = "", label: String? = nil) {
        guard enabled else { return }
        update(fraction, detail, label: label, force: true)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    /// A byte counter's progress: (sent, total).
    func bytes(_ done: Int64, _ total: Int64) {
        update(total > 0 ? Double(done) / Double(total) : nil, "\(Terminal.bytes(done)) / \(Terminal.bytes(total))")
    }
}
