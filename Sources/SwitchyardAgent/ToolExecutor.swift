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

    public struct Input: Sendable {
        public var offer: OfferInput
        public var bytes: [UInt8]

        public init(offer: OfferInput, bytes: [UInt8]) {
            self.offer = offer
            self.bytes = bytes
        }
    }

    public init(attemptId: String, taskId: String, definition: JSONValue, inputs: [Input]) {
        self.attemptId = attemptId
        self.taskId = taskId
        self.definition = definition
        self.inputs = inputs
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

/// A file the tool produced, to be uploaded as an output.
public struct ProducedOutput: Sendable, Equatable {
    public var nodeId: String
    public var kind: String
    public var index: Int
    public var fileName: String
    public var contentType: String
    public var bytes: [UInt8]

    public init(nodeId: String, kind: String, index: Int, fileName: String, contentType: String, bytes: [UInt8]) {
        self.nodeId = nodeId
        self.kind = kind
        self.index = index
        self.fileName = fileName
        self.contentType = contentType
        self.bytes = bytes
    }
}

/// Why an attempt failed, and whose fault it was (`FaultOrigin` on the wire).
public struct ExecutionFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var fault: FaultOrigin

    public init(_ message: String, fault: FaultOrigin) {
        self.message = message
        self.fault = fault
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

/// Runs attempts on one local tool (ComfyUI today). Cancelling the calling task stops the work: the executor
/// must then make the tool stop too, and return (or throw `CancellationError`) only once it has.
public protocol ToolExecutor: Sendable {
    var tool: String { get }
    func health() async -> ToolHealth
    func execute(_ job: ExecutionJob, progress: @escaping @Sendable (ExecutionProgress) -> Void) async throws -> [ProducedOutput]
}
