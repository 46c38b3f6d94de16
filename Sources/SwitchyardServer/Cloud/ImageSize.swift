/// The width and height an image file declares in its header (PNG, JPEG, GIF, WebP), read from its first bytes
/// without decoding it: what Comfy Cloud's pixel limits are checked against before a run is accepted.
enum ImageSize {
    /// Nil when `header` is not one of those formats or is cut before the size.
    static func of(_ header: [UInt8]) -> (width: Int, height: Int)? {
        func be16(_ at: Int) -> Int? { at + 1 < header.count ? Int(header[at]) << 8 | Int(header[at + 1]) : nil }
        func be32(_ at: Int) -> Int? { guard let high = be16(at), let low = be16(at + 2) else { return nil }; return high << 16 | low }
        func le16(_ at: Int) -> Int? { at + 1 < header.count ? Int(header[at]) | Int(header[at + 1]) << 8 : nil }
        func le24(_ at: Int) -> Int? { at + 2 < header.count ? Int(header[at]) | Int(header[at + 1]) << 8 | Int(header[at + 2]) << 16 : nil }
        func starts(_ bytes: [UInt8], at offset: Int = 0) -> Bool {
            header.count >= offset + bytes.count && Array(header[offset..<(offset + bytes.count)]) == bytes
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), starts(Array("IHDR".utf8), at: 12) {
            guard let width = be32(16), let height = be32(20) else { return nil }
            return (width, height)
        }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) {
            guard let width = le16(6), let height = le16(8) else { return nil }
            return (width, height)
        }
        if starts(Array("RIFF".utf8)), starts(Array("WEBP".utf8), at: 8) {
            if starts(Array("VP8X".utf8), at: 12), let width = le24(24), let height = le24(27) { return (width + 1, height + 1) }
            if starts(Array("VP8L".utf8), at: 12), header.count > 24 {
                let bits = Int(header[21]) | Int(header[22]) << 8 | Int(header[23]) << 16 | Int(header[24]) << 24
                return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            }
            if starts(Array("VP8 ".utf8), at: 12), let width = le16(26), let height = le16(28) { return (width & 0x3FFF, height & 0x3FFF) }
            return nil
        }
        if starts([0xFF, 0xD8]) {
            // Segments until a start-of-frame marker (SOF0–SOF15 but DHT, JPG and DAC), which holds height, then width.
            var at = 2
            while at + 3 < header.count {
                guard header[at] == 0xFF else { return nil }
                let marker = header[at + 1]
                if marker == 0xFF {
                    at += 1
                    continue
                }
                if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                    guard let height = be16(at + 5), let width = be16(at + 7) else { return nil }
                    return (width, height)
                }
                guard let length = be16(at + 2), length >= 2 else { return nil }
                at += 2 + length
            }
        }
        return nil
    }
}
