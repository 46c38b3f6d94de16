import Foundation
import SwitchyardCore
import SwitchyardWire

/// One attempt as an executor sees it: the definition to run (parameters injected) and its input files, each
/// already downloaded.
public struct ExecutionJob: Sendable {
    public var attemptId: String
    public var taskId: String
    public var definition: JSONValue
    public var inputs: [Input]
    /// Whether previews (ComfyUI's temp outputs) are kept as outputs; a workflow may opt out.
    public var keepPreviews: Bool

    public struct Input: Sendable {
        public var offer: OfferInput
        public var bytes: [UInt8]

        public init(offer: OfferInput, bytes: [UInt8]) {
            self.offer = offer
            self.bytes = bytes
        }
    }

    public init(attemptId: String, taskId: String, definition: JSONValue, inputs: [Input], keepPreviews: Bool = true) {
        self.attemptId = attemptId
        self.taskId = taskId
        self.definition = definition
        self.inputs = inputs
        self.keepPreviews = keepPreviews
    }
}

/// How far an attempt got: 0–1, never decreasing.
public struct ExecutionProgress: Sendable, Equatable {
    public var progress: Double
    public var stepCurrent: Int?
    public var stepTotal: Int?
    public var currentNode: String?

    public init(progress: Double, stepCurrent: Int? = nil, stepTotal: Int? = nil, currentNode: String? = nil) {
        self.progress = progress
        self.stepCurrent = stepCurrent
        self.stepTotal = stepTotal
        self.currentNode = currentNode
    }
}

/// What an executor tells the agent while an attempt runs.
public enum ExecutionReport: Sendable, Equatable {
    /// The tool took the work from its own queue and runs it now (the attempt becomes `running`).
    case started
    case progress(ExecutionProgress)
}

/// A file the tool produced, to be uploaded as an output.
public struct ProducedOutput: Sendable, Equatable {
    public var nodeId: String
    public var kind: String
    public var index: Int
    public var fileName: String
    public var contentType: String
    public var bytes: [UInt8]
    /// A preview (ComfyUI's temp folder: `PreviewImage`), not a saved output.
    public var preview: Bool
    /// Frames of one animation (`SaveAnimatedWEBP`/`SaveAnimatedPNG`).
    public var animated: Bool
    /// A text value, also kept inline in `task_output`.
    public var text: String?

    public init(
        nodeId: String, kind: String, index: Int, fileName: String, contentType: String, bytes: [UInt8], preview: Bool = false,
        animated: Bool = false,
        text: String? = nil
    ) {
        self.nodeId = nodeId
        self.kind = kind
        self.index = index
        self.fileName = fileName
        self.contentType = contentType
        self.bytes = bytes
        self.preview = preview
        self.animated = animated
        self.text = text
    }
}

/// Why an attempt failed, and whose fault it was (`FaultOrigin` on the wire).
public struct ExecutionFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var fault: FaultOrigin
    /// The tool could not be reached before any work began: the agent is unhealthy, and the attempt goes back
    /// to waiting without using up a retry.
    public var toolUnavailable: Bool

    public init(_ message: String, fault: FaultOrigin, toolUnavailable: Bool = false) {
        self.message = message
        self.fault = fault
        self.toolUnavailable = toolUnavailable
    }

    public var description: String { message }
}

/// What a health probe found.
public struct ToolHealth: Sendable, Equatable {
    public var healthy: Bool
    public var detail: String?
    public var toolVersion: String?
    public var systemStats: SystemStats?

    public init(healthy: Bool, detail: String? = nil, toolVersion: String? = nil, systemStats: SystemStats? = nil) {
        self.healthy = healthy
        self.detail = detail
        self.toolVersion = toolVersion
        self.systemStats = systemStats
    }
}

/// Runs attempts on one local tool (ComfyUI today). Several attempts may be in an executor at once: the tool's
/// own queue orders them, and `.started` says when one leaves it. Cancelling the calling task stops the work: the
/// executor must then make the tool stop too, and throw `ExecutionStopped` only once it has.
public protocol ToolExecutor: Sendable {
    var tool: String { get }
    func health() async -> ToolHealth
    func execute(_ job: ExecutionJob, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput]
    /// Work an earlier run of this agent left in the tool — it crashed or was restarted mid-attempt — that can be
    /// followed to its end instead of being run again: waiting, running, or finished within `window`.
    func recoverable(window: Duration) async -> [RecoveredAttempt]
    /// Follows a recovered attempt to its end, as `execute` follows its own.
    func resume(_ attempt: RecoveredAttempt, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput]
    /// Stops a recovered attempt the gateway no longer gives this agent (nothing happens if it already finished).
    func abandon(_ attempt: RecoveredAttempt) async
    /// The folders the tool reads each model type from (`checkpoints` → its folders), when it says; nil otherwise.
    func modelFolders() async -> [String: [String]]?
}

/// An attempt found in the tool after a restart.
public struct RecoveredAttempt: Sendable, Equatable {
    public var attemptId: String
    public var taskId: String
    public var keepPreviews: Bool
    /// Still queued or running in the tool (false: it finished, its outputs are there to read).
    public var active: Bool

    public init(attemptId: String, taskId: String, keepPreviews: Bool, active: Bool) {
        self.attemptId = attemptId
        self.taskId = taskId
        self.keepPreviews = keepPreviews
        self.active = active
    }
}

extension ToolExecutor {
    /// A tool that cannot tell: nothing to recover; attempts of a crashed agent run again elsewhere.
    public func recoverable(window: Duration) async -> [RecoveredAttempt] { [] }

    public func resume(_ attempt: RecoveredAttempt, report: @escaping @Sendable (ExecutionReport) -> Void) async throws -> [ProducedOutput] {
        throw ExecutionFailure("\(tool) cannot resume an attempt", fault: .platform)
    }

    public func abandon(_ attempt: RecoveredAttempt) async {}

    public func modelFolders() async -> [String: [String]]? { nil }
}

/// A cancelled attempt's work stopped; `at` is when the tool confirmed.
public struct ExecutionStopped: Error, Sendable, Equatable {
    public var at: Date

    public init(at: Date) { self.at = at }
}
