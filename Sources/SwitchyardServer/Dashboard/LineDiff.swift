import SwitchyardCore

/// JSON as indented lines with sorted keys, so two versions of a definition line up for a diff.
enum PrettyJSON {
    static func lines(_ value: JSONValue) -> [String] {
        var lines: [String] = []
        write(value, indent: "", prefix: "", suffix: "", into: &lines)
        return lines
    }

    private static func write(_ value: JSONValue, indent: String, prefix: String, suffix: String, into lines: inout [String]) {
        switch value {
        case .object(let members) where !members.isEmpty:
            lines.append(indent + prefix + "{")
            let keys = members.keys.sorted()
            for (index, key) in keys.enumerated() {
                write(
                    members[key]!, indent: indent + "  ", prefix: JSONValue.string(key).jsonString + ": ",
                    suffix: index == keys.count - 1 ? "" : ",", into: &lines)
            }
            lines.append(indent + "}" + suffix)
        case .array(let items) where !items.isEmpty:
            lines.append(indent + prefix + "[")
            for (index, item) in items.enumerated() {
                write(item, indent: indent + "  ", prefix: "", suffix: index == items.count - 1 ? "" : ",", into: &lines)
            }
            lines.append(indent + "]" + suffix)
        default:
            lines.append(indent + prefix + value.jsonString + suffix)
        }
    }
}

/// A side-by-side line diff (longest common subsequence): rows with the old line, the new line, or both when equal.
enum LineDiff {
    struct Row: Equatable {
        var left: String?
        var right: String?
    }

    /// Beyond this many lines on a side, the diff is not worth its quadratic table: both sides are shown whole.
    static let maximumLines = 4000

    static func sideBySide(_ old: [String], _ new: [String]) -> [Row] {
        guard old.count <= maximumLines, new.count <= maximumLines else {
            return (0..<max(old.count, new.count)).map { Row(left: $0 < old.count ? old[$0] : nil, right: $0 < new.count ? new[$0] : nil) }
        }
        // lengths[i][j]: the longest common subsequence of old[i...] and new[j...].
        var lengths = [[Int]](repeating: [Int](repeating: 0, count: new.count + 1), count: old.count + 1)
        for i in stride(from: old.count - 1, through: 0, by: -1) {
            for j in stride(from: new.count - 1, through: 0, by: -1) {
                lengths[i][j] = old[i] == new[j] ? lengths[i + 1][j + 1] + 1 : max(lengths[i + 1][j], lengths[i][j + 1])
            }
        }
        var rows: [Row] = []
        var (i, j) = (0, 0)
        var removed: [String] = []
        var added: [String] = []
        func flush() {
            for index in 0..<max(removed.count, added.count) {
                rows.append(Row(left: index < removed.count ? removed[index] : nil, right: index < added.count ? added[index] : nil))
            }
            removed = []
            added = []
        }
        while i < old.count || j < new.count {
            if i < old.count, j < new.count, old[i] == new[j] {
                flush()
                rows.append(Row(left: old[i], right: new[j]))
                i += 1
                j += 1
            } else if j < new.count, i == old.count || lengths[i][j + 1] >= lengths[i + 1][j] {
                added.append(new[j])
                j += 1
            } else {
                removed.append(old[i])
                i += 1
            }
        }
        flush()
        return rows
    }
}
