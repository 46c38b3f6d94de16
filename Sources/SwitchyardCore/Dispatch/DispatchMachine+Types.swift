import Foundation

/// What the dispatch machine keeps, hears and answers.
extension DispatchMachine {
    /// A connected agent: what dispatch scores, and how it speaks.
    public struct Agent: Sendable, Equatable {
        public var candidate: AgentCandidate
        public let credentialId: UUID
        /// The agent prefetches: its `ack` only says it holds the attempt, `started` that it runs.
        public let reportsStart: Bool
        public var lastSeen: Date

        public init(candidate: AgentCandidate, credentialId: UUID, reportsStart: Bool, lastSeen: Date) {
            self.candidate = candidate
            self.credentialId = credentialId
            self.reportsStart = reportsStart
            self.lastSeen = lastSeen
        }

        /// `busy` while it holds an attempt, `syncing`/`unhealthy` as it says.
        public var status: AgentStatus {
            switch candidate.status {
            case .syncing, .unhealthy: candidate.status
            case .idle, .busy: candidate.running > 0 ? .busy : .idle
            }
        }
    }

    /// An attempt an agent holds, and its deadlines.
    public struct Lease: Sendable, Equatable {
        public let attemptId: UUID
        public let taskId: UUID
        public let teamId: UUID
        public let agent: AgentKey
        public var timeout: TimeInterval
        public var ackDeadline: Date?
        public var runDeadline: Date?
        public var ackedAt: Date?
        /// Its start is being written.
        public var starting = false
        /// Cancelled by a caller: the agent was told to stop; capacity stays reserved until it says it did.
        public var cancelling = false
        /// Held by a replica that died (or by this one before a restart): its agent must reconnect and claim it by
        /// `orphanDeadline`. `orphanOf` is the replica the task's row still names.
        public var orphanOf: String?
        public var orphanDeadline: Date?
        /// Listed by an agent that connected here while the replica its row names still looked alive: taken over
        /// when that replica's lease expires, handed back if it is still alive then.
        public var claimDeadline: Date?
        /// Why a take-over from `orphanOf` is in flight.
        public var takingOver: TakeOver?
        /// Consecutive heartbeats of its agent that did not list it.
        public var unlisted = 0
        /// Its agent's session ended (why): the attempt waits until then for the agent to reconnect and list it.
        public var detachedUntil: Date?
        public var detachedWhy: String?

        public init(attemptId: UUID, taskId: UUID, teamId: UUID, agent: AgentKey, timeout: TimeInterval) {
            self.attemptId = attemptId
            self.taskId = taskId
            self.teamId = teamId
            self.agent = agent
            self.timeout = timeout
        }
    }

    /// Why the machine asked for an attempt to be taken over from the replica its row names.
    public enum TakeOver: Sendable, Equatable {
        /// Its agent reconnected here listing it.
        case reconnected
        /// Listed by an agent here while its replica looked alive; that replica has died since.
        case claimed
        /// Its agent did not come back within the grace: the task waits again.
        case expired
        /// Claimed from a replica that is alive: kept only if that replica handed it over (the row names this one).
        case handedOver
    }

    /// A task an agent lists that this replica had no lease for, as the database has it.
    public struct HeldTask: Sendable, Equatable {
        public let taskId: UUID
        public let teamId: UUID
        public let agentId: String
        public let timeout: TimeInterval
        public let startedAt: Date?
        public let owner: String
        public let ownerAlive: Bool

        public init(taskId: UUID, teamId: UUID, agentId: String, timeout: TimeInterval, startedAt: Date?, owner: String, ownerAlive: Bool) {
            self.taskId = taskId
            self.teamId = teamId
            self.agentId = agentId
            self.timeout = timeout
            self.startedAt = startedAt
            self.owner = owner
            self.ownerAlive = ownerAlive
        }
    }

    /// An active attempt whose replica is gone.
    public struct Orphan: Sendable, Equatable {
        public let attemptId: UUID
        public let taskId: UUID
        public let agent: AgentKey
        public let timeout: TimeInterval
        public let startedAt: Date?
        public let owner: String

        public init(attemptId: UUID, taskId: UUID, agent: AgentKey, timeout: TimeInterval, startedAt: Date?, owner: String) {
            self.attemptId = attemptId
            self.taskId = taskId
            self.agent = agent
            self.timeout = timeout
            self.startedAt = startedAt
            self.owner = owner
        }
    }

    public enum Event: Sendable, Equatable {
        // Tasks
        /// A task waits for an agent (submitted, read back, or waiting again after an attempt).
        case submitted(UUID, createdAt: Date, requirement: DispatchRequirement, pending: Bool)
        /// The reservation `admit` made is stored with its task (`queued` under `attemptId`).
        case reservationStored(attemptId: UUID, taskId: UUID, timeout: TimeInterval)
        /// The reservation's task was not stored (refused, or an idempotent replay).
        case reservationDropped(attemptId: UUID)
        case assignmentWritten(attemptId: UUID, timeout: TimeInterval)
        /// The assignment lost: another replica took the task, or it was cancelled.
        case assignmentLost(attemptId: UUID)
        /// The assignment was not written (its agent left first, the database did not answer): the task waits again.
        case assignmentFailed(attemptId: UUID)
        /// The offer could not be built.
        case offerFailed(attemptId: UUID, error: String)
        /// A caller cancelled the task, or it expired (already written).
        case cancelled(taskId: UUID)

        // Agents
        case connected(AgentKey, Agent, holding: [UUID])
        /// The socket closed, or the agent connected again: what it held waits `reconnectGrace` for it.
        case disconnected(AgentKey, why: String)
        /// Its key was revoked or expired, or its member lost the role: the session ends and is not retried.
        case revoked(AgentKey, reason: String)
        /// A message that changes nothing else (progress, an upload request).
        case seen(AgentKey)
        case heartbeat(AgentKey, holding: Set<UUID>)
        case statusReported(AgentKey, AgentStatus)
        /// The models the agent holds (`<model_type>/<model_path>`), as its hello or a `models` message says.
        case modelsHeld(AgentKey, Set<String>)
        case acknowledged(AgentKey, attemptId: UUID)
        case started(AgentKey, attemptId: UUID)
        case startWritten(attemptId: UUID, applied: Bool)
        /// The agent reported the attempt's end (`succeeded`, or a failure with its fault), or the gateway judged it.
        case finished(AgentKey, attemptId: UUID, event: TaskStateMachine.Event, error: String?, output: JSONValue?)
        /// The agent stopped the attempt (after a cancel, or on its own).
        case stopped(AgentKey, attemptId: UUID)

        // Replicas
        case orphansFound([Orphan])
        /// This replica's check of the replica leases: `live` are the replicas still renewing theirs.
        case replicasChecked(live: Set<String>)
        case takenOver(attemptId: UUID, taken: Bool)
        /// The agent reconnected to replica `gateway`, which claims `attempts` from this one: those it held here are
        /// handed over (its session here, if this replica still has one, is over).
        case movedElsewhere(AgentKey, gateway: String, attempts: Set<UUID>)
        case heldLookedUp(AgentKey, attemptId: UUID, found: HeldTask?)

        /// Time passed: deadlines.
        case tick
    }

    /// How an attempt ends: the event applied to its task (nil when the task already ended, as for a cancel).
    public struct Ending: Sendable, Equatable {
        public let lease: Lease
        public let event: TaskStateMachine.Event?
        public let error: String?
        public let output: JSONValue?
        /// Its `ack`/`started` never got through (lost with a replica): it ran, so mark it running first.
        public let startFirst: Bool
    }

    public enum Action: Sendable, Equatable {
        /// Write the assignment (`waiting → queued` under `attemptId`); answer `assignmentWritten` or `assignmentLost`.
        case assign(taskId: UUID, attemptId: UUID, agent: AgentKey)
        /// Build and send the offer; answer `offerFailed` when it cannot be built.
        case offer(attemptId: UUID, taskId: UUID, agent: AgentKey)
        /// Tell the agent to stop an attempt.
        case cancel(attemptId: UUID, agent: AgentKey)
        /// Write the attempt's start (`queued → running`); answer `startWritten`.
        case writeStart(Lease)
        /// Write the attempt's end, then put its task back in line when it waits again.
        case end(Ending)
        /// Write that the task is `waiting`, with the reason.
        case markWaiting(taskId: UUID, reason: String)
        /// Refuse an agent's message about an attempt.
        case refuse(AgentKey, attemptId: UUID, reason: String)
        /// The session is over: close it (saying `notice` when given; `retry` whether the agent should reconnect)
        /// and write its row as disconnected.
        case endSession(AgentKey, why: String, notice: String?, retry: Bool)
        /// Take the attempt over from the replica its row names; answer `takenOver`.
        case takeOver(Lease)
        /// Give the attempt's row to replica `to`, where its agent is now (this replica forgot it).
        case handOver(Lease, to: String)
        /// Whether the attempt's row names this replica now (handed over); answer `takenOver`.
        case confirmHandOver(Lease)
        /// Read the task of an attempt an agent lists; answer `heldLookedUp`.
        case lookUpHeld(AgentKey, attemptId: UUID)
        /// Read back waiting tasks this replica may not know (an agent connected).
        case rescan
        /// Wake the task's event streams.
        case wake(taskId: UUID)
    }

    public enum Admission: Sendable, Equatable {
        /// An idle eligible agent's capacity is reserved for the task, under this attempt.
        case assign(attemptId: UUID, agent: AgentKey)
        /// It waits, for this reason.
        case wait(String)
    }
}
