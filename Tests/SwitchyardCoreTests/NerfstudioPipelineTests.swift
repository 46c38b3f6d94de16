import Foundation
import SwitchyardCore
import Testing

/// The Nerfstudio pipeline spec: its allow-list, its cross-checks and the command lines it becomes.
@Suite("Nerfstudio pipeline spec")
struct NerfstudioPipelineTests {
    static let suggested: JSONValue = [
        "kind": "nerfstudio",
        "input": ["type": "video", "file": "capture.mp4"],
        "process": ["mode": "video", "num_frames_target": 300, "matching_method": "sequential", "camera_type": "perspective", "gpu": false],
        "train": [
            "method": "splatfacto", "max_num_iterations": 30000, "steps_per_save": 2000, "machine": ["seed": 42],
            "pipeline": ["model": ["cull_alpha_thresh": 0.005]], "dataparser": ["name": "nerfstudio-data", "downscale_factor": .null],
        ],
        "export": ["kind": "gaussian-splat", "ply_color_mode": "sh_coeffs"],
        "render": .null,
        "limits": ["min_pose_fraction": 0.4],
    ]

    @Test("the suggested spec becomes flags: process booleans as --x/--no-x, train and export booleans and values as values, dotted paths")
    func arguments() throws {
        let pipeline = try NerfstudioPipeline(Self.suggested)
        #expect(pipeline.inputType == .video && pipeline.inputFile == "capture.mp4")
        #expect(
            pipeline.processArguments == [
                "--camera-type", "perspective", "--no-gpu", "--matching-method", "sequential", "--num-frames-target", "300",
            ])
        #expect(
            pipeline.trainArguments == [
                "--machine.seed", "42", "--max-num-iterations", "30000", "--pipeline.model.cull-alpha-thresh", "0.005", "--steps-per-save", "2000",
            ])
        #expect(pipeline.dataparser == "nerfstudio-data" && pipeline.dataparserArguments.isEmpty)
        #expect(pipeline.exportKind == "gaussian-splat" && pipeline.exportArguments == ["--ply-color-mode", "sh_coeffs"])
        #expect(pipeline.maxIterations == 30000 && pipeline.minPoseFraction == 0.4 && !pipeline.keepCheckpoint)
        let nerf = try NerfstudioPipeline(
            [
                "input": ["type": "images"],
                "train": ["method": "nerfacto", "pipeline": ["model": ["predict_normals": true]], "dataparser": ["downscale_factor": 2]],
                "export": ["kind": "poisson", "remove_outliers": true], "outputs": ["checkpoint": true],
            ])
        #expect(nerf.trainArguments == ["--pipeline.model.predict-normals", "True"])
        #expect(nerf.dataparserArguments == ["--downscale-factor", "2"])
        #expect(nerf.exportArguments == ["--remove-outliers", "True"])
        #expect(nerf.maxIterations == 30000 && nerf.keepCheckpoint)
    }

    @Test("refused: keys outside the allow-list, the agent's own flags, values out of range, wrong types, impossible combinations")
    func refusals() {
        func refused(_ change: (inout [String: JSONValue]) -> Void, _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
            var spec = Self.suggested.objectValue!
            change(&spec)
            do {
                _ = try NerfstudioPipeline(.object(spec))
                Issue.record("accepted, expected a refusal with \(needle)", sourceLocation: sourceLocation)
            } catch {
                #expect(error.message.contains(needle), "\(error.message)", sourceLocation: sourceLocation)
            }
        }
        refused({ $0["train"] = ["method": "splatfacto", "output_dir": "/etc"] }, #"workflow_json.train.output_dir" is not a setting"#)
        refused({ $0["train"] = ["method": "splatfacto", "vis": "viewer"] }, #"workflow_json.train.vis" is not a setting"#)
        refused({ $0["train"] = ["method": "splatfacto", "viewer": ["websocket_host": "0.0.0.0"]] }, "train.viewer.websocket_host")
        refused({ $0["process"] = ["data": "/"] }, #"workflow_json.process.data" is not a setting"#)
        refused({ $0["train"] = ["method": "rm -rf"] }, "is not one of nerfacto")
        refused({ $0["train"] = ["method": "splatfacto", "max_num_iterations": 0] }, "max_num_iterations\" must be an integer in 1–10000000")
        refused({ $0["train"] = ["method": "splatfacto", "max_num_iterations": "10"] }, "must be an integer, not a string")
        refused({ $0["process"] = ["matching_method": "magic"] }, #""magic" is not one of exhaustive, sequential, vocab_tree"#)
        refused({ $0["export"] = ["kind": "pointcloud"] }, "pointcloud needs a NeRF method")
        refused(
            {
                $0["train"] = ["method": "nerfacto"]; $0["export"] = ["kind": "gaussian-splat"]
            }, "gaussian-splat needs a splatfacto method")
        refused(
            {
                $0["train"] = ["method": "nerfacto"]; $0["export"] = ["kind": "pointcloud"]
            }, "needs train.pipeline.model.predict_normals true")
        refused({ $0["render"] = ["mode": "spiral"] }, "render\" is not supported yet")
        refused(
            {
                $0["input"] = ["type": "images"]; $0["process"] = ["num_frames_target": 10]
            }, "num_frames_target\" is for video input")
        refused({ $0["input"] = ["type": "images"] }, "process.mode\" is video but input.type is images")
        refused({ $0["extra"] = 1 }, #"workflow_json.extra" is not a setting"#)
        refused({ $0["limits"] = ["min_pose_fraction": 2] }, "min_pose_fraction\" must be 0–1")
    }

    @Test("a workflow's spec is checked when it is saved")
    func atImport() throws {
        let body: JSONValue = [
            "workflow_slug": "splat", "display_name": "Splat", "tool_type": "nerfstudio",
            "workflow_json": ["input": ["type": "images"], "train": ["method": "splatfacto", "log_dir": "/tmp"]],
        ]
        #expect(throws: SwitchyardError.self) { _ = try WorkflowDefinition.parse(JSONFields(body: body), base: nil) }
    }
}
