import Foundation
import SwitchyardCore
import Testing

@Suite("JSON values")
struct JSONTests {
    @Test(
        "documents parse and serialize canonically (sorted keys, compact, numbers verbatim)",
        arguments: [
            (#"{"b": [1, 2.50, -0.5e3], "a": {"z": null, "y": true}}"#, #"{"a":{"y":true,"z":null},"b":[1,2.50,-0.5e3]}"#),
            (#" "tab\there \"quoted\" \\ \/ \u00e9 \ud83d\ude00" "#, #""tab\there \"quoted\" \\ / é 😀""#),
            ("18446744073709551615", "18446744073709551615"),
            ("[]", "[]"),
            ("{}", "{}"),
            (#""\u0001""#, #""\u0001""#),
            ("false", "false"),
        ])
    func roundTrip(input: String, canonical: String) throws {
        let value = try JSONValue.parse(input)
        #expect(value.jsonString == canonical)
        #expect(try JSONValue.parse(canonical) == value)
    }

    @Test(
        "malformed documents are refused with the reason",
        arguments: [
            ("", "unexpected end of input"),
            ("{", "expected a string key"),
            (#"{"a":1,}"#, "expected a string key"),
            ("[1,]", "unexpected character"),
            ("01", "numbers must not have leading zeros"),
            ("1.", "invalid number: digits must follow '.'"),
            ("1e", "invalid number: digits must follow the exponent"),
            ("-", "invalid number"),
            ("1e999", "number out of range"),
            ("tru", "unexpected end of input"),
            ("nul1", "unexpected character"),
            (#""abc"#, "unterminated string"),
            ("\"a\u{01}\"", "control character in a string"),
            (#""\x""#, "invalid escape sequence"),
            (#""\ud83d""#, "unpaired surrogate in \\u escape"),
            (#"{"a":1,"a":2}"#, "duplicate key \"a\""),
            ("1 2", "unexpected content after the JSON value"),
        ])
    func malformed(input: String, reason: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(input) }
        do {
            _ = try JSONValue.parse(input)
        } catch {
            #expect(error.reason == reason)
        }
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([UInt8(ascii: "\""), 0xFF, UInt8(ascii: "\"")]) }
    }

    @Test("nesting is bounded")
    func depth() throws {
        let ok = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test("numbers compare by value, keep their text, and convert to Int only when whole")
    func numbers() throws {
        #expect(try JSONValue.parse("1") == JSONValue.parse("1.0"))
        #expect(try JSONValue.parse("1") != JSONValue.parse("1.5"))
        #expect(try JSONValue.parse("156680208700286").numberValue?.intValue == 156_680_208_700_286)
        #expect(try JSONValue.parse("2.5").numberValue?.intValue == nil)
        #expect(JSONNumber(2.0).text == "2")
        #expect(JSONNumber(0.25).text == "0.25")
        #expect(Set([JSONValue(integerLiteral: 3), try JSONValue.parse("3.0")]).count == 1)
    }

    @Test("the serializer's output is what Foundation reads back")
    func foundationReadsOutput() throws {
        let value: JSONValue = ["text": "line\nbreak \"q\" \u{7}", "n": 1.5, "list": [true, nil, "x"]]
        struct Read: Decodable {
            let text: String
            let n: Double
        }
        let decoded = try JSONDecoder().decode(Read.self, from: Data(value.serialized()))
        #expect(decoded.text == "line\nbreak \"q\" \u{7}")
        #expect(decoded.n == 1.5)
    }

    @Test(
        "RFC 3339 timestamps in UTC with whole seconds",
        arguments: [
            (0.0, "1970-01-01T00:00:00Z"), (1_739_196_000.9, "2025-02-10T14:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"), (-1, "1969-12-31T23:59:59Z"),
        ])
    func rfc3339(seconds: Double, text: String) {
        #expect(RFC3339.format(Date(timeIntervalSince1970: seconds)) == text)
        #expect(RFC3339.parse(text) == Date(timeIntervalSince1970: seconds.rounded(.down)))
    }

    @Test("RFC 3339 reading: a fraction is dropped; offsets, trailing text and impossible dates are refused")
    func rfc3339Parsing() {
        #expect(RFC3339.parse("2025-02-10T14:00:00.750Z") == Date(timeIntervalSince1970: 1_739_196_000))
        for text in [
            "2023-02-29T00:00:00Z", "2025-02-10T14:00:00+02:00", "2025-02-10T14:00:00Zjunk", "2025-02-10 14:00:00Z", "", "2025-13-01T00:00:00Z",
        ] {
            #expect(RFC3339.parse(text) == nil, "\(text)")
        }
    }
}
