import Foundation
import Hummingbird
import SwitchyardCore

/// `GET /agents` and `GET /r/agents` (api.md §2.5): the team's connected agents with their status, labels,
/// heartbeat, running tasks and system stats. `?include_disconnected=true` also lists agents that were seen and
/// left (beyond the documented API; absent from the default list, as documented).
struct AgentsController {
    let storage: any SwitchyardStorage
    let dispatcher: Dispatcher

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get(use: list)
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<JSONValue> {
        let page = try request.pageRequest
        let teamId = try context.requireCaller().requireTeam()
        var includeDisconnected = false
        if let raw = request.uri.formQueryValue("include_disconnected") {
            guard let flag = Bool(raw) else {
                throw SwitchyardError.invalid("query parameter \"include_disconnected\": \"\(raw)\" is not true or false")
            }
            includeDisconnected = flag
        }
        let result = try await storage.agents(teamId: teamId, includeDisconnected: includeDisconnected, page: page)
        var items: [JSONValue] = []
        for agent in result.items {
            // A task another team submitted (taken from the community pool) counts, but its id is not this team's to see.
            let running = agent.disconnectedAt == nil ? await dispatcher.runningTasks(teamId: teamId, agentId: agent.agentId) : []
            var own: [UUID] = []
            for taskId in running where try await storage.task(id: taskId, teamId: teamId) != nil { own.append(taskId) }
            items.append(Presenters.agent(agent, runningTasks: own, runningCount: running.count))
        }
        return Listing("agent_list", items, page: page, totalCount: result.totalCount)
    }
}
