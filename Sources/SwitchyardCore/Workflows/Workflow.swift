import Foundation

/// A team's workflow: its identity, live status and current definition (api.md §2.1, §3.3).
public struct Workflow: Sendable, Equatable {
    public var id: UUID
    public var teamId: UUID
    /// The current version; every save adds one and records a snapshot with that number.
    public var version: Int
    public var status: WorkflowStatus
    public var definition: WorkflowDefinition
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, teamId: UUID, version: Int, status: WorkflowStatus, definition: WorkflowDefinition, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.teamId = teamId
        self.version = version
        self.status = status
        self.definition = definition
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The definition a workflow had at one version (api.md §3.8). Snapshots are immutable.
public struct WorkflowSnapshot: Sendable, Equatable {
    public var workflowId: UUID
    public var version: Int
    public var definition: WorkflowDefinition
    /// Why this version exists when it was not a plain save, e.g. "restored from version 2".
    public var note: String?
    public var createdAt: Date

    public init(workflowId: UUID, version: Int, definition: WorkflowDefinition, note: String?, createdAt: Date) {
        self.workflowId = workflowId
        self.version = version
        self.definition = definition
        self.note = note
        self.createdAt = createdAt
    }
}

/// A workflow named by slug, optionally pinned to a version: `text-to-image` or `text-to-image@2` (api.md §2.1).
public struct WorkflowReference: Sendable, Equatable {
    public var slug: String
    public var version: Int?

    public init(slug: String, version: Int? = nil) {
        self.slug = slug
        self.version = version
    }

    /// Parses `slug[@version]`, splitting on the last `@`; the version must be a positive integer.
    public init(parsing raw: String) throws(SwitchyardError) {
        var slug = raw
        var version: Int?
        if let at = raw.lastIndex(of: "@") {
            slug = String(raw[..<at])
            let text = raw[raw.index(after: at)...]
            // Digits only, no sign, no leading zero (the OpenAPI pattern `@[1-9][0-9]{0,8}`).
            guard (1...9).contains(text.count), text.first != "0", text.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(text) else {
                throw .invalid("workflow reference \"\(raw)\": the version after @ must be a positive integer, like text-to-image@2")
            }
            version = number
        }
        if let rule = Self.slugRule(slug) { throw .invalid("workflowSlug \"\(slug)\" \(rule)") }
        self.init(slug: slug, version: version)
    }

    /// api.md §2.1: 2–100 characters, `^[a-z0-9]+(?:-[a-z0-9]+)*$`.
    public static func slugRule(_ slug: String) -> String? {
        let bytes = Array(slug.utf8)
        guard (2...100).contains(bytes.count) else { return "must be 2–100 characters long" }
        let isAlphanumeric = { (byte: UInt8) in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        var previousWasHyphen = true  // a leading hyphen is as wrong as a doubled one
        for byte in bytes {
            if byte == UInt8(ascii: "-") {
                if previousWasHyphen { return "must be lowercase letters and digits in groups joined by single hyphens" }
                previousWasHyphen = true
            } else if isAlphanumeric(byte) {
                previousWasHyphen = false
            } else {
                return "must be lowercase letters and digits in groups joined by single hyphens"
            }
        }
        return previousWasHyphen ? "must not end with a hyphen" : nil
    }
}
