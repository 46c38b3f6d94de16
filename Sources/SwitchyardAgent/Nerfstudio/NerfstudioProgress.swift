import Foundation

/// Reads `ns-train`'s step table (spec/nerfstudio.md, "Reading progress"): rows like
/// `610 (0.61%)         115.968 ms           3 h, 12 m, 6 s       72.68 K`, printed every `steps_per_log` steps —
/// appended lines with `--logging.local-writer.max-log-size 0` (the agent's setting), or redrawn in place with ANSI
/// codes otherwise, which are stripped first.
enum NerfstudioProgress {
    struct Step: Equatable {
        var step: Int
        var percent: Double
        /// The `ETA (time)` cell, as printed (`3 h, 12 m, 6 s`), when the row has one.
        var eta: String?
    }

    /// The step a line reports, nil for any other line.
    static func step(in line: String) -> Step? {
        let plain = stripANSI(line).trimmingCharacters(in: .whitespaces)
        guard let match = plain.firstMatch(of: /^(\d+) \((\d+(?:\.\d+)?)%\)/), let step = Int(match.1), let percent = Double(match.2) else {
            return nil
        }
        // Cells are 20 characters plus a space; the ETA is the one that reads as a duration with a unit list.
        let cells = plain.split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        let eta = cells.dropFirst().first { $0.contains(", ") && !$0.hasSuffix(" ms") }
        return Step(step: step, percent: percent, eta: eta)
    }

    /// COLMAP's share of posed images from `ns-process-data`'s report (`COLMAP found poses for 85.00% of the images`,
    /// or "for all images").
    static func poseFraction(in line: String) -> Double? {
        let plain = stripANSI(line)
        if plain.contains("COLMAP found poses for all images") { return 1 }
        guard let match = plain.firstMatch(of: /COLMAP found poses for (\d+(?:\.\d+)?)% of the images/), let percent = Double(match.1) else {
            return nil
        }
        return percent / 100
    }

    /// The line without ANSI escape sequences (colour, cursor movement, line erase) and carriage returns.
    static func stripANSI(_ line: String) -> String {
        line.replacing(/\x{1B}\[[0-9;?]*[A-Za-z]/, with: "").replacingOccurrences(of: "\r", with: "")
    }
}
