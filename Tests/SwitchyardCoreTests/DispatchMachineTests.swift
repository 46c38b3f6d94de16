import Foundation
import SwitchyardCore
import Synchronization
import Testing

/// Transcripts of the dispatcher's decisions: events in, actions out, written as the protocol reads. Each test is a
/// conversation between agents, the database (the answers to writes) and the clock.
@Suite("Dispatch machine transcripts")
struct DispatchMachineTests {
    static let team = UUID(uuidString: "01a2047b-0000-7000-8000-0000000000aa")!
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// One machine, a clock moved by hand, and attempt ids A1, A2, … in the order the machine makes them.
    struct Transcript {
        final class Counter: Sendable {
            let value = Mutex(0)
        }

        var machine: DispatchMachine
        var now = DispatchMachineTests.start

        init(ackTimeout: TimeInterval = 10) {
            let counter = Counter()
            machine = DispatchMachine(
                settings: .init(ackTimeout: ackTimeout, heartbeatSilence: 30, reconnectGrace: 30, claimWait: 14), now: DispatchMachineTests.start,
                makeAttemptId: { _ in
                    let next = counter.value.withLock { value in
                        value += 1
                        return value
                    }
                    return DispatchMachineTests.attempt(next)
                })
        }

        mutating func send(_ event: DispatchMachine.Event) -> [String] {
            machine.handle(event, at: now).map(DispatchMachineTests.describe)
        }

        mutating func advance(_ seconds: TimeInterval) {
            now = now.addingTimeInterval(seconds)
        }

        /// Connects `name` (no held attempts) and returns what connecting did.
        @discardableResult
        mutating func connect(
            _ name: String, capacity: Int = 1, prefetch: Int? = nil, labels: Set<String> = ["gpu"], holding: [UUID] = []
        ) -> [String] {
            let candidate = AgentCandidate(
                id: name, teamId: DispatchMachineTests.team, labels: labels, status: .idle, capacity: capacity, running: 0, region: nil,
                communityOptIn: false, prefetch: prefetch ?? 0)
            let agent = DispatchMachine.Agent(candidate: candidate, credentialId: UUID(), reportsStart: prefetch != nil, lastSeen: now)
            return send(.connected(DispatchMachineTests.key(name), agent, holding: holding))
        }

        mutating func submit(_ task: Int, labels: Set<String> = ["gpu"], models: Set<String> = [], pending: Bool = false) -> [String] {
            send(
                .submitted(
                    DispatchMachineTests.task(task), createdAt: now.addingTimeInterval(Double(task) / 1000),
                    requirement: DispatchRequirement(teamId: DispatchMachineTests.team, requiredLabels: labels, pool: .team, requiredModels: models),
                    pending: pending))
        }

        /// Task `task` offered to `agent` as `attempt`: submitted, assignment written.
        mutating func offer(_ task: Int, to agent: String, as attempt: Int, timeout: TimeInterval = 60) {
            #expect(submit(task) == ["assign T\(task) to \(agent) as A\(attempt)"])
            #expect(
                send(.assignmentWritten(attemptId: DispatchMachineTests.attempt(attempt), timeout: timeout)) == [
                    "wake T\(task)", "offer A\(attempt) to \(agent)",
                ])
        }

        /// …and started (acknowledged, start written).
        mutating func run(_ task: Int, on agent: String, as attempt: Int, timeout: TimeInterval = 60) {
            offer(task, to: agent, as: attempt, timeout: timeout)
            #expect(send(.acknowledged(DispatchMachineTests.key(agent), attemptId: DispatchMachineTests.attempt(attempt))) == ["start A\(attempt)"])
            #expect(send(.startWritten(attemptId: DispatchMachineTests.attempt(attempt), applied: true)) == ["wake T\(task)"])
        }
    }

    static func key(_ name: String) -> AgentKey { AgentKey(teamId: team, agentId: name) }
    static func task(_ index: Int) -> UUID { UUID(uuidString: String(format: "10000000-0000-7000-8000-%012d", index))! }
    static func attempt(_ index: Int) -> UUID { UUID(uuidString: String(format: "a0000000-0000-7000-8000-%012d", index))! }

    static func name(_ id: UUID) -> String {
        let text = id.uuidString.lowercased()
        let number = Int(text.suffix(12)) ?? 0
        return text.hasPrefix("10000000") ? "T\(number)" : text.hasPrefix("a0000000") ? "A\(number)" : text
    }

    static func describe(_ action: DispatchMachine.Action) -> String {
        switch action {
        case .assign(let taskId, let attemptId, let agent): "assign \(name(taskId)) to \(agent.agentId) as \(name(attemptId))"
        case .offer(let attemptId, _, let agent): "offer \(name(attemptId)) to \(agent.agentId)"
        case .cancel(let attemptId, let agent): "cancel \(name(attemptId)) at \(agent.agentId)"
        case .writeStart(let lease): "start \(name(lease.attemptId))"
        case .end(let ending):
            "end \(name(ending.lease.attemptId))" + (ending.startFirst ? " (started first)" : "")
                + (ending.event.map { ": \($0)" } ?? " (task already ended)") + (ending.error.map { " — \($0)" } ?? "")
        case .markWaiting(let taskId, let reason): "\(name(taskId)) waits: \(reason)"
        case .refuse(let agent, let attemptId, _): "refuse \(name(attemptId)) from \(agent.agentId)"
        case .endSession(let agent, let why, let notice, let retry):
            "end session \(agent.agentId) (\(why))" + (notice.map { ", saying \"\($0)\"" + (retry ? ", retry" : ", no retry") } ?? "")
        case .takeOver(let lease): "take over \(name(lease.attemptId)) from \(lease.orphanOf ?? "?")"
        case .handOver(let lease, let gateway): "hand \(name(lease.attemptId)) over to \(gateway)"
        case .confirmHandOver(let lease): "was \(name(lease.attemptId)) handed over by \(lease.orphanOf ?? "?")?"
        case .lookUpHeld(let agent, let attemptId): "look up \(name(attemptId)) for \(agent.agentId)"
        case .rescan: "rescan"
        case .wake(let taskId): "wake \(name(taskId))"
        }
    }

    // MARK: Offer, ack, progress, complete

    @Test("offer → ack → complete: the agent's room is offered the next task at once")
    func offerAckComplete() {
        var t = Transcript()
        #expect(t.connect("gpu-1") == ["rescan"])
        t.run(1, on: "gpu-1", as: 1)
        #expect(t.machine.lease(Self.attempt(1), heldBy: Self.key("gpu-1"))?.runDeadline == t.now.addingTimeInterval(60))
        #expect(t.submit(2).isEmpty, "the only agent is busy")
        #expect(
            t.send(.finished(Self.key("gpu-1"), attemptId: Self.attempt(1), event: .succeeded, error: nil, output: nil)) == [
                "end A1: succeeded", "assign T2 to gpu-1 as A2",
            ])
        #expect(t.machine.tasks(heldBy: Self.key("gpu-1")).isEmpty)
    }

    @Test("an ack that does not come in time: the agent is told to drop it and the task waits again, no retry used")
    func ackTimeout() {
        var t = Transcript()
        t.connect("gpu-1")
        t.offer(1, to: "gpu-1", as: 1)
        t.advance(9.9)
        #expect(t.send(.tick).isEmpty)
        t.advance(0.1)
        #expect(
            t.send(.tick) == [
                "cancel A1 at gpu-1", "end A1: released — agent gpu-1 did not acknowledge the task within 10 s",
            ])
        #expect(t.send(.acknowledged(Self.key("gpu-1"), attemptId: Self.attempt(1))) == ["refuse A1 from gpu-1"], "too late")
    }

    @Test("a prefetching agent: ack only says it holds the attempt (no deadline, still queued); started runs it")
    func prefetchingAgent() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 1, prefetch: 1)
        t.offer(1, to: "gpu-1", as: 1)
        t.offer(2, to: "gpu-1", as: 2)
        #expect(t.submit(3).isEmpty, "capacity 1 + prefetch 1")
        #expect(t.send(.acknowledged(Self.key("gpu-1"), attemptId: Self.attempt(2))).isEmpty)
        t.advance(10)
        #expect(
            t.send(.tick) == [
                "cancel A1 at gpu-1", "end A1: released — agent gpu-1 did not acknowledge the task within 10 s", "assign T3 to gpu-1 as A3",
            ])
        #expect(t.send(.started(Self.key("gpu-1"), attemptId: Self.attempt(2))) == ["start A2"])
        #expect(t.send(.started(Self.key("gpu-1"), attemptId: Self.attempt(2))).isEmpty, "one start write at a time")
        #expect(t.send(.startWritten(attemptId: Self.attempt(2), applied: false)) == ["refuse A2 from gpu-1"], "the task moved on")
    }

    @Test("progress and uploads are accepted from the holder only; a run past task_timeout fails, retriable")
    func progressAndTimeout() {
        var t = Transcript()
        t.connect("gpu-1")
        t.connect("gpu-2")
        t.run(1, on: "gpu-1", as: 1, timeout: 5)
        #expect(t.machine.lease(Self.attempt(1), heldBy: Self.key("gpu-1")) != nil)
        #expect(t.machine.lease(Self.attempt(1), heldBy: Self.key("gpu-2")) == nil)
        #expect(t.send(.started(Self.key("gpu-2"), attemptId: Self.attempt(1))) == ["refuse A1 from gpu-2"])
        t.advance(5)
        #expect(
            t.send(.tick) == [
                "cancel A1 at gpu-1",
                "end A1: attemptFailed(retriable: true) — the task timed out after 5 s (task_timeout counts from the agent's ACK)",
            ])
    }

    @Test(
        "a failure is ended with its fault: task → not retried, agent → retried, platform → waits again with no retry used",
        arguments: [
            (TaskStateMachine.Event.attemptFailed(retriable: false), "end A1: attemptFailed(retriable: false) — boom"),
            (.attemptFailed(retriable: true), "end A1: attemptFailed(retriable: true) — boom"),
            (.released, "end A1: released — boom"),
        ])
    func failByFault(event: TaskStateMachine.Event, expected: String) {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        #expect(t.send(.finished(Self.key("gpu-1"), attemptId: Self.attempt(1), event: event, error: "boom", output: nil)) == [expected])
    }

    @Test("an end reported for an attempt whose start never got through is marked started first (not run again)")
    func endBeforeStart() {
        var t = Transcript()
        t.connect("gpu-1")
        t.offer(1, to: "gpu-1", as: 1)
        #expect(
            t.send(.finished(Self.key("gpu-1"), attemptId: Self.attempt(1), event: .succeeded, error: nil, output: nil)) == [
                "end A1 (started first): succeeded"
            ])
    }

    // MARK: Cancel in each state

    @Test("cancel while waiting: the task leaves the queue; an agent that connects later is not offered it")
    func cancelWaiting() {
        var t = Transcript()
        #expect(t.submit(1, pending: true) == ["T1 waits: waiting for eligible agent: none connected"])
        #expect(t.send(.cancelled(taskId: Self.task(1))).isEmpty)
        #expect(t.connect("gpu-1") == ["rescan"])
    }

    @Test("cancel while the assignment is being written: never offered, the capacity comes back")
    func cancelAssigning() {
        var t = Transcript()
        t.connect("gpu-1")
        #expect(t.submit(1) == ["assign T1 to gpu-1 as A1"])
        #expect(t.send(.cancelled(taskId: Self.task(1))).isEmpty)
        #expect(t.send(.assignmentWritten(attemptId: Self.attempt(1), timeout: 60)) == ["wake T1", "end A1 (task already ended)"])
        #expect(t.submit(2) == ["assign T2 to gpu-1 as A2"])
    }

    @Test("cancel while offered or running: the agent is told to stop; its capacity stays held until it says it did")
    func cancelOfferedAndRunning() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 2)
        t.offer(1, to: "gpu-1", as: 1)
        t.run(2, on: "gpu-1", as: 2)
        #expect(t.send(.cancelled(taskId: Self.task(1))) == ["cancel A1 at gpu-1"])
        #expect(t.send(.cancelled(taskId: Self.task(2))) == ["cancel A2 at gpu-1"])
        #expect(t.send(.cancelled(taskId: Self.task(2))).isEmpty, "told once")
        #expect(t.submit(3).isEmpty, "both slots still held")
        #expect(t.send(.acknowledged(Self.key("gpu-1"), attemptId: Self.attempt(1))) == ["refuse A1 from gpu-1"])
        #expect(
            t.send(.stopped(Self.key("gpu-1"), attemptId: Self.attempt(1))) == [
                "end A1 (task already ended) — the agent stopped the attempt", "assign T3 to gpu-1 as A3",
            ])
        // The other never says so: after the grace its capacity is taken back anyway.
        t.advance(30)
        #expect(
            t.send(.tick) == [
                "cancel A2 at gpu-1", "end A2 (task already ended) — the task timed out after 60 s (task_timeout counts from the agent's ACK)",
            ])
    }

    @Test("an agent that stops an attempt nobody cancelled: the task waits again, no retry used")
    func agentStops() {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        #expect(t.send(.stopped(Self.key("gpu-1"), attemptId: Self.attempt(1))) == ["end A1: released — the agent stopped the attempt"])
    }

    // MARK: Sessions

    @Test("disconnect: what it held waits for it to reconnect; when it does not within the grace, it fails (retriable)")
    func disconnect() {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        #expect(t.send(.disconnected(Self.key("gpu-1"), why: "its connection dropped")) == ["end session gpu-1 (its connection dropped)"])
        #expect(t.submit(2).isEmpty, "its capacity is gone")
        #expect(t.machine.hasRoom == false)
        t.advance(29.9)
        #expect(t.send(.tick).isEmpty)
        t.advance(0.1)
        #expect(
            t.send(.tick) == [
                "end A1: attemptFailed(retriable: true) — agent gpu-1 disconnected while it held the task (its connection dropped) and did not reconnect within 30 s"
            ])
    }

    @Test("a restarted agent that no longer holds what it held: it fails at once (retriable), not after the grace")
    func reconnectWithout() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 2)
        t.run(1, on: "gpu-1", as: 1)
        t.run(2, on: "gpu-1", as: 2)
        #expect(t.send(.disconnected(Self.key("gpu-1"), why: "its connection dropped")) == ["end session gpu-1 (its connection dropped)"])
        #expect(t.send(.cancelled(taskId: Self.task(2))) == ["cancel A2 at gpu-1"], "no session: told again when it is back")
        #expect(
            t.connect("gpu-1", capacity: 2, holding: [Self.attempt(2)]) == [
                "cancel A2 at gpu-1",
                "end A1: attemptFailed(retriable: true) — agent gpu-1 disconnected while it held the task (its connection dropped) and reconnected without it",
                "rescan",
            ])
        #expect(t.send(.stopped(Self.key("gpu-1"), attemptId: Self.attempt(2))) == ["end A2 (task already ended) — the agent stopped the attempt"])
        #expect(t.submit(3) == ["assign T3 to gpu-1 as A3"])
    }

    @Test("reconnect holding attempts: what it still holds is kept, what it lists but no longer owns it is told to drop")
    func reconnectHolding() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 2)
        t.run(1, on: "gpu-1", as: 1)
        #expect(
            t.send(.disconnected(Self.key("gpu-1"), why: "it connected again")) == [
                "end session gpu-1 (it connected again)"
            ])
        t.connect("gpu-2")
        t.offer(2, to: "gpu-2", as: 2)
        // A1 is kept; A2 is another agent's; A9 is unknown here: looked up in the database.
        #expect(
            t.connect("gpu-1", capacity: 2, holding: [Self.attempt(1), Self.attempt(2), Self.attempt(9)]) == [
                "cancel A2 at gpu-1", "look up A9 for gpu-1", "rescan",
            ])
        #expect(t.send(.heldLookedUp(Self.key("gpu-1"), attemptId: Self.attempt(9), found: nil)) == ["cancel A9 at gpu-1"])
        #expect(t.machine.lease(Self.attempt(1), heldBy: Self.key("gpu-1"))?.ackedAt != nil)
        #expect(t.submit(3) == ["assign T3 to gpu-1 as A3"], "one slot held by A1, one free")
    }

    @Test("three missed heartbeats' worth of silence ends the session; the agent is told to reconnect, and has the grace to")
    func heartbeatLoss() {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        t.advance(20)
        #expect(t.send(.heartbeat(Self.key("gpu-1"), holding: [Self.attempt(1)])).isEmpty)
        t.advance(30)
        #expect(t.send(.tick).isEmpty)
        t.advance(0.1)
        #expect(t.send(.tick) == ["end session gpu-1 (it missed three heartbeats), saying \"no heartbeat for 30 s\", retry"])
        t.advance(30)
        #expect(
            t.send(.tick) == [
                "end A1: attemptFailed(retriable: true) — agent gpu-1 disconnected while it held the task (it missed three heartbeats) and did not reconnect within 30 s"
            ])
    }

    @Test("an attempt three heartbeats in a row do not list was lost on the way: it waits again, no retry used")
    func unlistedAttempt() {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        #expect(t.send(.heartbeat(Self.key("gpu-1"), holding: [])).isEmpty)
        #expect(t.send(.heartbeat(Self.key("gpu-1"), holding: [Self.attempt(1)])).isEmpty, "listed again: the count starts over")
        #expect(t.send(.heartbeat(Self.key("gpu-1"), holding: [])).isEmpty)
        #expect(t.send(.heartbeat(Self.key("gpu-1"), holding: [])).isEmpty)
        #expect(
            t.send(.heartbeat(Self.key("gpu-1"), holding: [])) == [
                "end A1: released — agent gpu-1 no longer held the attempt (three heartbeats did not list it)"
            ])
    }

    @Test("revocation ends the session at once, with no retry, and fails what it held")
    func revocation() {
        var t = Transcript()
        t.connect("gpu-1")
        t.run(1, on: "gpu-1", as: 1)
        #expect(
            t.send(.revoked(Self.key("gpu-1"), reason: "the agent key was revoked or expired")) == [
                "end session gpu-1 (the agent key was revoked or expired), saying \"the agent key was revoked or expired\", no retry",
                "end A1: attemptFailed(retriable: true) — agent gpu-1 disconnected while it held the task (the agent key was revoked or expired)",
            ])
    }

    @Test("a syncing agent is offered only the tasks whose models it holds; once it holds them, or back to idle, the rest")
    func statusChanges() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 3)
        #expect(t.send(.statusReported(Self.key("gpu-1"), .syncing)).isEmpty)
        let sdxl = "checkpoints/sdxl.safetensors"
        #expect(t.submit(1, models: [sdxl], pending: true) == ["T1 waits: waiting for eligible agent: agent gpu-1 is syncing"])
        #expect(t.submit(2, pending: true) == ["assign T2 to gpu-1 as A1"], "it needs no model")
        #expect(t.send(.modelsHeld(Self.key("gpu-1"), [sdxl])) == ["assign T1 to gpu-1 as A2"])
        #expect(t.send(.modelsHeld(Self.key("gpu-1"), [sdxl])).isEmpty, "no change, nothing to do")
        #expect(t.submit(3, models: ["loras/x.safetensors"], pending: true) == ["T3 waits: waiting for eligible agent: agent gpu-1 is syncing"])
        #expect(t.send(.statusReported(Self.key("gpu-1"), .busy)) == ["assign T3 to gpu-1 as A3"], "busy is ours to judge: it is idle")
    }

    // MARK: Admission and lost writes

    @Test("admission reserves an idle agent's capacity in the submit's own commit; a dropped reservation gives it back")
    func admission() {
        var t = Transcript()
        let requirement = DispatchRequirement(teamId: Self.team, requiredLabels: ["gpu"], pool: .team)
        #expect(t.machine.admit(requirement, at: t.now) == .wait("waiting for eligible agent: none connected"))
        t.connect("gpu-1")
        #expect(t.machine.admit(requirement, at: t.now) == .assign(attemptId: Self.attempt(1), agent: Self.key("gpu-1")))
        #expect(t.machine.admit(requirement, at: t.now) == .wait("waiting for eligible agent: agent gpu-1 holds 1 of 1 attempts"))
        #expect(t.send(.reservationStored(attemptId: Self.attempt(1), taskId: Self.task(1), timeout: 60)) == ["wake T1", "offer A1 to gpu-1"])
        #expect(
            t.send(.finished(Self.key("gpu-1"), attemptId: Self.attempt(1), event: .succeeded, error: nil, output: nil)) == [
                "end A1 (started first): succeeded"
            ])
        #expect(t.machine.admit(requirement, at: t.now) == .assign(attemptId: Self.attempt(2), agent: Self.key("gpu-1")))
        #expect(t.send(.reservationDropped(attemptId: Self.attempt(2))).isEmpty)
        #expect(t.submit(3) == ["assign T3 to gpu-1 as A3"])
    }

    @Test("admission lets earlier waiting tasks go first")
    func admissionKeepsOrder() {
        var t = Transcript()
        t.connect("gpu-1")
        #expect(t.send(.statusReported(Self.key("gpu-1"), .unhealthy)).isEmpty)
        #expect(t.submit(1).isEmpty)
        #expect(t.send(.statusReported(Self.key("gpu-1"), .idle)) == ["assign T1 to gpu-1 as A1"])
        #expect(t.send(.assignmentLost(attemptId: Self.attempt(1))).isEmpty, "another replica took it")
        #expect(t.submit(2) == ["assign T2 to gpu-1 as A2"])
        #expect(t.submit(3).isEmpty)
        #expect(t.send(.assignmentLost(attemptId: Self.attempt(2))) == ["assign T3 to gpu-1 as A3"], "the freed slot goes to the next in line")
        let requirement = DispatchRequirement(teamId: Self.team, requiredLabels: ["gpu"], pool: .team)
        #expect(t.machine.admit(requirement, at: t.now) == .wait("waiting for eligible agent: agent gpu-1 holds 1 of 1 attempts"))
    }

    @Test("an assignment that could not be written (the database did not answer): the task is back in line; a cancelled one is not")
    func assignmentFailed() {
        var t = Transcript()
        t.connect("gpu-1")
        #expect(t.submit(1) == ["assign T1 to gpu-1 as A1"])
        #expect(t.send(.assignmentFailed(attemptId: Self.attempt(1))) == ["assign T1 to gpu-1 as A2"])
        #expect(t.send(.cancelled(taskId: Self.task(1))).isEmpty)
        #expect(t.send(.assignmentFailed(attemptId: Self.attempt(2))).isEmpty)
        #expect(t.machine.knows(Self.task(1)) == false)
        #expect(t.submit(2) == ["assign T2 to gpu-1 as A3"], "its capacity came back")
    }

    @Test("an offer that cannot be built: the task waits again, no retry used")
    func offerFails() {
        var t = Transcript()
        t.connect("gpu-1")
        t.offer(1, to: "gpu-1", as: 1)
        #expect(
            t.send(.offerFailed(attemptId: Self.attempt(1), error: "no definition")) == [
                "end A1: released — the platform could not prepare the task: no definition"
            ])
    }

    @Test("the agent left while its assignment was written: released before any offer")
    func agentLeftBeforeOffer() {
        var t = Transcript()
        t.connect("gpu-1")
        #expect(t.submit(1) == ["assign T1 to gpu-1 as A1"])
        #expect(t.send(.disconnected(Self.key("gpu-1"), why: "its connection dropped")) == ["end session gpu-1 (its connection dropped)"])
        #expect(
            t.send(.assignmentWritten(attemptId: Self.attempt(1), timeout: 60)) == [
                "wake T1", "end A1: released — agent gpu-1 disconnected before it was offered the task",
            ])
    }

    // MARK: Replicas

    @Test("replica death: its agent reconnects here and keeps the attempt; one that never returns waits again after the grace")
    func replicaDeath() {
        var t = Transcript()
        let orphans = [1, 2].map { index in
            DispatchMachine.Orphan(
                attemptId: Self.attempt(index), taskId: Self.task(index), agent: Self.key("gpu-\(index)"), timeout: 60,
                startedAt: Self.start, owner: "gw-dead")
        }
        #expect(t.send(.orphansFound(orphans)).isEmpty)
        #expect(t.send(.replicasChecked(live: ["gw-here"])).isEmpty, "within the grace")
        #expect(t.connect("gpu-1", holding: [Self.attempt(1)]) == ["take over A1 from gw-dead", "rescan"])
        #expect(t.send(.takenOver(attemptId: Self.attempt(1), taken: true)).isEmpty)
        #expect(t.machine.lease(Self.attempt(1), heldBy: Self.key("gpu-1"))?.runDeadline == Self.start.addingTimeInterval(60))
        t.advance(30)
        #expect(t.send(.replicasChecked(live: ["gw-here"])) == ["take over A2 from gw-dead"])
        #expect(t.send(.replicasChecked(live: ["gw-here"])).isEmpty, "one take-over at a time")
        #expect(
            t.send(.takenOver(attemptId: Self.attempt(2), taken: true)) == [
                "end A2: released — the replica holding the task stopped and agent gpu-2 did not reclaim it within 30 s"
            ])
        #expect(t.send(.finished(Self.key("gpu-1"), attemptId: Self.attempt(1), event: .succeeded, error: nil, output: nil)) == ["end A1: succeeded"])
    }

    @Test("an agent that reconnected to another replica: what it held here and lists there is handed over, the rest waits out the grace")
    func movedElsewhere() {
        var t = Transcript()
        t.connect("gpu-1", capacity: 2)
        t.run(1, on: "gpu-1", as: 1)
        t.run(2, on: "gpu-1", as: 2)
        // This replica has not noticed the dropped socket yet: the session ends here too.
        #expect(
            t.send(.movedElsewhere(Self.key("gpu-1"), gateway: "gw-b", attempts: [Self.attempt(1)])) == [
                "end session gpu-1 (it connected to replica gw-b), saying \"the agent connected to another replica\", no retry",
                "hand A1 over to gw-b",
            ])
        #expect(t.machine.leases[Self.attempt(1)] == nil)
        t.advance(30)
        #expect(
            t.send(.tick) == [
                "end A2: attemptFailed(retriable: true) — agent gpu-1 disconnected while it held the task (it connected to replica gw-b) and did not reconnect within 30 s"
            ])
        #expect(t.send(.movedElsewhere(Self.key("gpu-9"), gateway: "gw-b", attempts: [Self.attempt(1)])).isEmpty, "not its")
    }

    @Test("a claim on a live replica's attempt that it handed over is kept")
    func claimHandedOver() {
        var t = Transcript()
        #expect(t.connect("gpu-1", holding: [Self.attempt(101)]) == ["look up A101 for gpu-1", "rescan"])
        let found = DispatchMachine.HeldTask(
            taskId: Self.task(1), teamId: Self.team, agentId: "gpu-1", timeout: 60, startedAt: Self.start, owner: "gw-a", ownerAlive: true)
        #expect(t.send(.heldLookedUp(Self.key("gpu-1"), attemptId: Self.attempt(101), found: found)).isEmpty)
        // Its messages count meanwhile: the claim is this agent's.
        #expect(t.machine.lease(Self.attempt(101), heldBy: Self.key("gpu-1")) != nil)
        t.advance(14)
        #expect(t.send(.replicasChecked(live: ["gw-a"])) == ["was A101 handed over by gw-a?"])
        #expect(t.send(.takenOver(attemptId: Self.attempt(101), taken: true)).isEmpty)
        #expect(t.machine.lease(Self.attempt(101), heldBy: Self.key("gpu-1"))?.claimDeadline == nil)
        #expect(t.submit(2).isEmpty, "its slot is the claim's")
    }

    @Test("an orphan another replica took first is forgotten, and its agent told to drop it")
    func orphanTakenElsewhere() {
        var t = Transcript()
        let orphan = DispatchMachine.Orphan(
            attemptId: Self.attempt(101), taskId: Self.task(1), agent: Self.key("gpu-1"), timeout: 60, startedAt: nil, owner: "gw-dead")
        #expect(t.send(.orphansFound([orphan])).isEmpty)
        #expect(t.connect("gpu-1", holding: [Self.attempt(101)]) == ["take over A101 from gw-dead", "rescan"])
        #expect(t.send(.takenOver(attemptId: Self.attempt(101), taken: false)) == ["cancel A101 at gpu-1"])
        #expect(t.submit(2) == ["assign T2 to gpu-1 as A1"], "its capacity is free again")
    }

    @Test("an attempt claimed from a replica that looks alive: taken over if it dies, handed back if it lives")
    func claims() {
        var t = Transcript()
        #expect(
            t.connect("gpu-1", capacity: 2, holding: [Self.attempt(101), Self.attempt(102)]) == [
                "look up A101 for gpu-1", "look up A102 for gpu-1", "rescan",
            ])
        for index in [1, 2] {
            let found = DispatchMachine.HeldTask(
                taskId: Self.task(index), teamId: Self.team, agentId: "gpu-1", timeout: 60, startedAt: Self.start, owner: "gw-\(index)",
                ownerAlive: true)
            #expect(t.send(.heldLookedUp(Self.key("gpu-1"), attemptId: Self.attempt(100 + index), found: found)).isEmpty)
        }
        #expect(t.submit(3).isEmpty, "both slots held by the claims")
        t.advance(14)
        #expect(t.send(.replicasChecked(live: ["gw-2"])) == ["take over A101 from gw-1", "was A102 handed over by gw-2?"])
        #expect(t.send(.takenOver(attemptId: Self.attempt(101), taken: true)).isEmpty)
        #expect(t.machine.lease(Self.attempt(101), heldBy: Self.key("gpu-1"))?.orphanOf == nil)
        #expect(t.send(.takenOver(attemptId: Self.attempt(102), taken: false)) == ["cancel A102 at gpu-1", "assign T3 to gpu-1 as A1"])
    }
}
