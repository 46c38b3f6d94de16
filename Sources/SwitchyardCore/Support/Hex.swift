import Foundation

/// Lowercase hexadecimal without `String(format:)`, which goes through Foundation's formatter and dominated
/// the cost of hashing an API key (Benchmarks/submit-throughput.sh, perf).
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes of an even-length run of `0-9 a-f` (as `encode` writes); nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0, utf8.allSatisfy(isDigit) else { return nil }
        return stride(from: 0, to: utf8.count, by: 2).map { UInt8(value(utf8[$0]) << 4 | value(utf8[$0 + 1])) }
    }

    /// True for `0-9 a-f` (lowercase, as `encode` writes).
    public static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// The value of a hex digit (either case); 0 for anything else.
    public static func value(_ byte: UInt8) -> Int {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: 0
        }
    }
}

extension UUID {
    /// The canonical lowercase form used on the wire and in SQLite (`019abc12-4567-7890-abcd-ef1234567891`).
    public var lowercased: String {
        withUnsafeBytes(of: uuid) { raw in
            let hex = Array(Hex.encode(raw).utf8)
            var text: [UInt8] = []
            text.reserveCapacity(36)
            for (index, character) in hex.enumerated() {
                if index == 8 || index == 12 || index == 16 || index == 20 { text.append(UInt8(ascii: "-")) }
                text.append(character)
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    /// Parses the 36-character hyphenated form (either case) without Foundation's scanner; nil otherwise.
    public init?(text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        var nibble = 0
        for (index, character) in utf8.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard character == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = character - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = character - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = character - UInt8(ascii: "A") + 10
            default: return nil
            }
            bytes[nibble / 2] |= nibble % 2 == 0 ? value << 4 : value
            nibble += 1
        }
        self.init(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
