import Foundation

/// A person who signs in with an email address and a password.
public struct User: Sendable, Equatable {
    public var id: UUID
    /// Stored lowercased; unique.
    public var emailAddress: String
    public var firstName: String
    public var lastName: String
    public var displayName: String
    /// A bcrypt hash; the password itself is never stored.
    public var passwordHash: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Grows when the user signs out everywhere or changes the password: session tokens carry the version they
    /// were issued under, and only the current one is accepted.
    public var tokenVersion: Int

    public init(
        id: UUID, emailAddress: String, firstName: String = "", lastName: String = "", displayName: String,
        passwordHash: String, createdAt: Date, updatedAt: Date, tokenVersion: Int = 0
    ) {
        self.tokenVersion = tokenVersion
        self.id = id
        self.emailAddress = emailAddress
        self.firstName = firstName
        self.lastName = lastName
        self.displayName = displayName
        self.passwordHash = passwordHash
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
