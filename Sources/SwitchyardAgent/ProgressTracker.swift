import Foundation
import SwitchyardCore
import Synchronization

/// Turns ComfyUI's node-level messages into one monotonic 0–1 progress, weighted equally across the graph's
/// nodes (cached nodes count as done), coalesced to at most ten reports a second.
final class ProgressTracker: Sendable {
    private struct State {
        var nodeCount: Int
        var done: Set<String> = []
        var running: [String: Double] = [:]
        var reported = -1.0
        var lastReport: ContinuousClock.Instant?
        var current: ExecutionProgress = ExecutionProgress(progress: 0)
    }

    private let state: Mutex<State>
    private let report: @Sendable (ExecutionProgress) -> Void
    static let interval: Duration = .milliseconds(100)

    init(nodeCount: Int, report: @escaping @Sendable (ExecutionProgress) -> Void) {
        self.state = Mutex(State(nodeCount: max(1, nodeCount)))
        self.report = report
    }

    func cached(_ nodes: [String]) { update { $0.done.formUnion(nodes) } }

    func executing(_ node: String) {
        update {
            $0.current.currentNode = node
            $0.current.stepCurrent = nil
            $0.current.stepTotal = nil
        }
    }

    func state(_ nodes: JSONValue?) {
        guard case .object(let all)? = nodes else { return }
        update { state in
            for (id, node) in all {
                if node["state"]?.stringValue == "finished" {
                    state.done.insert(id)
                    state.running[id] = nil
                } else if node["state"]?.stringValue == "running" {
                    let value = Self.double(node["value"]), max = Self.double(node["max"])
                    state.running[id] = max > 0 ? min(value / max, 1) : 0
                }
            }
        }
    }

    func step(node: String?, value: JSONValue?, max: JSONValue?) {
        let current = Self.double(value), total = Self.double(max)
        update { state in
            if let node { state.running[node] = total > 0 ? min(current / total, 1) : 0 }
            if total >= 1, total == total.rounded() {
                state.current.stepCurrent = Int(current.rounded(.down))
                state.current.stepTotal = Int(total)
            }
            if let node { state.current.currentNode = node }
        }
    }

    private func update(_ change: (inout State) -> Void) {
        let due = state.withLock { state -> ExecutionProgress? in
            change(&state)
            let partial = state.running.filter { !state.done.contains($0.key) }.values.reduce(0, +)
            let value = min(1, (Double(state.done.count) + partial) / Double(state.nodeCount))
            state.current.progress = max(state.current.progress, value)
            let now = ContinuousClock.now
            guard state.current.progress > state.reported || state.lastReport == nil else { return nil }
            if let last = state.lastReport, last.duration(to: now) < Self.interval { return nil }
            state.lastReport = now
            state.reported = state.current.progress
            return state.current
        }
        if let due { report(due) }
    }

    static func double(_ value: JSONValue?) -> Double {
        value?.numberValue.flatMap { Double($0.description) } ?? 0
    }
}
