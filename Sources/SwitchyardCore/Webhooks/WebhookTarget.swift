import Foundation

/// The rules a webhook URL must meet (docs/webhooks.md): `https://` only; plain `http://` only to a loopback host
/// and only when the server runs with `--allow-insecure-webhooks`; no credentials in the URL, no fragment; at
/// most 2048 characters. Targets in private, link-local or loopback networks are refused unless the operator
/// allows them — checked here for IP literals and again, after DNS resolution, before every delivery.
public struct WebhookTargetPolicy: Sendable, Equatable {
    /// `http://` to loopback hosts (and loopback targets at all) are allowed (`webhooks.allowInsecure`).
    public var allowInsecureLoopback: Bool
    /// Private, link-local and unique-local targets are allowed (`webhooks.allowPrivateNetworks`).
    public var allowPrivateNetworks: Bool

    public init(allowInsecureLoopback: Bool = false, allowPrivateNetworks: Bool = false) {
        self.allowInsecureLoopback = allowInsecureLoopback
        self.allowPrivateNetworks = allowPrivateNetworks
    }

    public static let maximumLength = 2048

    /// A URL that passed `validate`: its scheme, host (without brackets) and port.
    public struct Target: Sendable, Equatable {
        public var isHTTPS: Bool
        public var host: String
        public var port: Int
    }

    /// Checks `raw` for the field `field`; the error names the field and the rule.
    public func validate(_ raw: String, field: String = "webhook_url") throws(SwitchyardError) -> Target {
        guard raw.count <= Self.maximumLength else {
            throw .invalid("field \"\(field)\" is \(raw.count) characters long; the maximum is \(Self.maximumLength)")
        }
        guard let components = URLComponents(string: raw), let scheme = components.scheme?.lowercased(),
            let host = components.host?.lowercased(), !host.isEmpty
        else { throw .invalid("field \"\(field)\": \"\(raw)\" is not an absolute URL") }
        guard components.user == nil, components.password == nil else {
            throw .invalid("field \"\(field)\" must not carry a user name or password")
        }
        guard components.fragment == nil else { throw .invalid("field \"\(field)\" must not have a #fragment") }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let loopback = Self.isLoopbackName(bare) || IPAddressClass(bare) == .loopback
        switch scheme {
        case "https": break
        case "http":
            guard allowInsecureLoopback, loopback else {
                throw .invalid(
                    "field \"\(field)\" must start with https:// (plain http:// is allowed only to a loopback host on a server started with --allow-insecure-webhooks)"
                )
            }
        default: throw .invalid("field \"\(field)\" must start with https://")
        }
        let target = Target(isHTTPS: scheme == "https", host: bare, port: components.port ?? (scheme == "https" ? 443 : 80))
        if loopback {
            guard allowInsecureLoopback else {
                throw .invalid("field \"\(field)\": \(bare) is a loopback address; webhooks go to public hosts (see webhooks.allowInsecure)")
            }
        } else if let addressClass = IPAddressClass(bare) {
            try check(addressClass, address: bare, field: field)
        }
        return target
    }

    /// Checks one resolved address of a target; the message says why it is refused.
    public func check(_ addressClass: IPAddressClass, address: String, field: String = "webhook_url") throws(SwitchyardError) {
        switch addressClass {
        case .public: return
        case .loopback:
            if allowInsecureLoopback { return }
            throw .invalid("field \"\(field)\": \(address) is a loopback address; webhooks go to public hosts (see webhooks.allowInsecure)")
        case .private:
            if allowPrivateNetworks { return }
            throw .invalid(
                "field \"\(field)\": \(address) is in a private network; webhooks go to public hosts unless the server sets webhooks.allowPrivateNetworks"
            )
        case .reserved:
            throw .invalid("field \"\(field)\": \(address) is not a routable unicast address")
        }
    }

    public static func isLoopbackName(_ host: String) -> Bool {
        host == "localhost" || host.hasSuffix(".localhost")
    }
}

/// What kind of network an IP address literal belongs to.
public enum IPAddressClass: Sendable, Equatable {
    case `public`
    case loopback
    /// RFC 1918, carrier-grade NAT, link-local, IPv6 unique-local and link-local.
    case `private`
    /// Unspecified, multicast, broadcast and documentation ranges: never a webhook target.
    case reserved

    /// The class of an IPv4 or IPv6 literal; nil when `text` is not one.
    public init?(_ text: String) {
        if let octets = Self.ipv4(text) {
            self = Self.classify(v4: octets)
            return
        }
        guard let words = Self.ipv6(text) else { return nil }
        if words.allSatisfy({ $0 == 0 }) {
            self = .reserved
            return
        } else if words[0..<7].allSatisfy({ $0 == 0 }), words[7] == 1 {
            self = .loopback
            return
        }
        // Forms that carry an IPv4 address are judged as that address: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
        // (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::/48).
        let low = Self.v4(words[6], words[7])
        if words[0..<5].allSatisfy({ $0 == 0 }) && words[5] == 0xFFFF
            || words[0..<4].allSatisfy({ $0 == 0 }) && words[4] == 0xFFFF && words[5] == 0
            || words[0..<6].allSatisfy({ $0 == 0 })
            || words[0] == 0x64 && words[1] == 0xFF9B && words[2..<6].allSatisfy({ $0 == 0 })
        {
            self = Self.classify(v4: low)
        } else if words[0] == 0x2002 {
            self = Self.classify(v4: Self.v4(words[1], words[2]))
        } else if words[0] == 0x64 && words[1] == 0xFF9B && words[2] == 1 {
            self = .private  // local-use NAT64 (RFC 8215): translates into the operator's own networks
        } else if words[0] == 0x2001 && words[1] == 0 {
            self = .reserved  // Teredo: the IPv4 address it reaches is hidden in the bits; never a webhook target
        } else if words[0] & 0xFE00 == 0xFC00 || words[0] & 0xFFC0 == 0xFE80 {
            self = .private
        } else if words[0] & 0xFF00 == 0xFF00 || words[0] == 0x2001 && words[1] == 0x0DB8 {
            self = .reserved
        } else {
            self = .public
        }
    }

    private static func v4(_ high: UInt16, _ low: UInt16) -> [UInt8] {
        [UInt8(high >> 8), UInt8(high & 0xFF), UInt8(low >> 8), UInt8(low & 0xFF)]
    }

    private static func classify(v4 o: [UInt8]) -> IPAddressClass {
        switch (o[0], o[1]) {
        case (127, _): return .loopback
        case (10, _), (172, 16...31), (192, 168), (169, 254), (100, 64...127): return .private
        case (0, _), (224...255, _): return .reserved
        case (192, 0) where o[2] == 2, (198, 51) where o[2] == 100, (203, 0) where o[2] == 113, (198, 18...19): return .reserved
        default: return .public
        }
    }

    private static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let value = UInt8(part) else { return nil }
            octets.append(value)
        }
        return octets
    }

    private static func ipv6(_ text: String) -> [UInt16]? {
        var text = Substring(text)
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        guard text.contains(":") else { return nil }
        var tail: [UInt16] = []
        // A trailing dotted quad stands for the last two words.
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let octets = ipv4(String(text[text.index(after: lastColon)...])) else { return nil }
            tail = [UInt16(octets[0]) << 8 | UInt16(octets[1]), UInt16(octets[2]) << 8 | UInt16(octets[3])]
            text = text[...lastColon]
            if text.hasSuffix("::") == false { text = text.dropLast() }
        }
        func words(_ part: Substring) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        let halves = text.components(separatedBy: "::")
        switch halves.count {
        case 1:
            guard let all = words(Substring(halves[0])), all.count + tail.count == 8 else { return nil }
            return all + tail
        case 2:
            guard let head = words(Substring(halves[0])), let rest = words(Substring(halves[1])), head.count + rest.count + tail.count < 8 else {
                return nil
            }
            return head + Array(repeating: 0, count: 8 - head.count - rest.count - tail.count) + rest + tail
        default:
            return nil
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
