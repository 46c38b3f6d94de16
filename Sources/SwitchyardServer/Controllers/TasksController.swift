import Foundation
import Hummingbird
import SwitchyardCore

/// `/r/tasks` (api.md §2.2, runtime surface): poll, list, cancel and fetch results. A task of another team
/// answers 404 exactly like a missing one.
struct TasksController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    /// Seconds outputs live after completion (0: forever), so a result can say they expired even before the
    /// reaper has deleted them.
    let outputRetention: TimeInterval

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get(use: list)
        group.get("{taskId}", use: detail)
        group.get("{taskId}/result", use: result)
        group.post("{taskId}/cancel", use: cancel)
    }

    private func load(_ context: SwitchyardRequestContext) async throws -> TaskRecord {
        let id = try context.parameters.requireUUID("taskId")
        guard let task = try await storage.task(id: id, teamId: try context.requireCaller().requireTeam()) else {
            throw SwitchyardError.notFound("task not found")
        }
        return task
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        JSONBody.response(Presenters.task(try await load(context)))
    }

    /// A completed task's outputs past retention are reported as expired (`outputs_expired_at`, no URLs)
    /// rather than as URLs that would answer 404.
    @Sendable func result(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let task = try await load(context)
        var expiredAt: Date?
        if task.status == .completed, let completedAt = task.completedAt {
            expiredAt = try await storage.outputsExpiredAt(taskId: task.id, teamId: task.teamId)
            if expiredAt == nil, outputRetention > 0, completedAt.addingTimeInterval(outputRetention) <= clock.now() {
                expiredAt = completedAt.addingTimeInterval(outputRetention)
            }
        }
        return JSONBody.response(Presenters.result(task, outputsExpiredAt: expiredAt))
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let page = try request.pageRequest
        var status: TaskStatus?
        if let raw = request.uri.queryParameters["status"].map(String.init) {
            guard let parsed = TaskStatus(rawValue: raw) else {
                let allowed = TaskStatus.allCases.map(\.rawValue).joined(separator: ", ")
                throw SwitchyardError.invalid("query parameter \"status\": \"\(raw)\" is not one of \(allowed)")
            }
            status = parsed
        }
        let result = try await storage.tasks(teamId: try context.requireCaller().requireTeam(), status: status, page: page)
        return JSONBody.response([
            "task_list": .array(result.items.map { Presenters.task($0, summary: true) }),
            "page_meta": JSONBody.pageMeta(page, totalCount: result.totalCount),
        ])
    }

    /// api.md §2.2: pending/waiting/queued/running → cancelled; a finished task is a successful no-op.
    @Sendable func cancel(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let id = try context.parameters.requireUUID("taskId")
        guard let outcome = try await storage.applyTaskEvent(id: id, teamId: try caller.requireTeam(), event: .cancel, at: clock.now()) else {
            throw SwitchyardError.notFound("task not found")
        }
        if case .transition = outcome.action {
            context.logger.info("task cancelled", metadata: ["task_id": "\(id.lowercased)"])
        }
        return JSONBody.response(["is_success": true])
    }
}
