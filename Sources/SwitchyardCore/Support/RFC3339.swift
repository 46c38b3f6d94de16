import Foundation

/// The API's timestamps: `2025-02-10T14:00:00Z`, UTC, whole seconds (Foundation's `ISO8601FormatStyle`, which
/// measured faster than the hand-written formatter it replaced: docs/performance.md).
public enum RFC3339 {
    private static let style = Date.ISO8601FormatStyle()

    /// Formats `date` in UTC; fractions of a second are dropped.
    public static func format(_ date: Date) -> String {
        date.formatted(style)
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (S3's `LastModified`, for one); the fraction is dropped.
    public static func parse(_ text: String) -> Date? {
        guard let date = try? style.parse(text) else { return nil }
        let whole = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        // Foundation's parser is lenient (an offset, trailing text, February 29th of a common year as March 1st):
        // only what formats back to the same text, less its fraction, is a timestamp.
        let withoutFraction = text.firstIndex(of: ".").map { String(text[..<$0]) + "Z" } ?? text
        guard text.hasSuffix("Z"), format(whole) == withoutFraction else { return nil }
        return whole
    }
}
