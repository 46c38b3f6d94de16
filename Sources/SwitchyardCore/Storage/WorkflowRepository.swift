import Foundation

/// The identity and live state of a workflow without its definition: what a run needs to find the
/// snapshot to use (snapshots are immutable, so their parsed definitions can be cached by id and version).
public struct WorkflowHead: Sendable, Equatable {
    public var id: UUID
    public var slug: String
    public var version: Int
    public var status: WorkflowStatus

    public init(id: UUID, slug: String, version: Int, status: WorkflowStatus) {
        self.id = id
        self.slug = slug
        self.version = version
        self.status = status
    }
}

/// Workflows and their snapshots. Every save (import, update, restore) bumps `version` and writes the
/// snapshot of that version in the same transaction (api.md §3.8).
public protocol WorkflowRepository: Sendable {
    /// Creates the team's workflow with `definition.slug` at version 1, or — when the team already has one with
    /// that slug — overwrites it as version + 1 keeping its id (api.md §2.1 import). Returns the saved workflow
    /// and whether it was created.
    func importWorkflow(
        id: UUID, teamId: UUID, definition: WorkflowDefinition, status: WorkflowStatus?, at date: Date
    ) async throws -> (workflow: Workflow, created: Bool)

    /// Saves a new version of a workflow of the team: `change` receives the current workflow and returns the new
    /// definition and status; it runs inside the transaction, so concurrent updates apply one after the other.
    /// Nil when no such workflow exists in the team; `.conflict` when the new slug is taken in the team.
    func updateWorkflow(
        id: UUID, teamId: UUID, at date: Date, note: String?,
        _ change: @escaping @Sendable (Workflow) throws -> (definition: WorkflowDefinition, status: WorkflowStatus)
    ) async throws -> Workflow?

    func workflow(id: UUID, teamId: UUID) async throws -> Workflow?
    func workflow(slug: String, teamId: UUID) async throws -> Workflow?
    func workflowHead(id: UUID, teamId: UUID) async throws -> WorkflowHead?
    func workflowHead(slug: String, teamId: UUID) async throws -> WorkflowHead?
    /// The team's workflows, newest first.
    func workflows(teamId: UUID, page: PageRequest) async throws -> Page<Workflow>
    /// Deletes a workflow and its snapshots (tasks keep their own copy of what they ran). False when missing.
    func deleteWorkflow(id: UUID, teamId: UUID) async throws -> Bool

    /// A workflow's snapshots, newest first; nil when the workflow is not the team's.
    func workflowSnapshots(workflowId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WorkflowSnapshot>?
    func workflowSnapshot(workflowId: UUID, teamId: UUID, version: Int) async throws -> WorkflowSnapshot?
}
