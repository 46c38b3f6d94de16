import Foundation

/// A Nerfstudio workflow's pipeline spec (spec/nerfstudio.md, "Pipeline spec JSON"), checked against an allow-list
/// and turned into the arguments of `ns-process-data`, `ns-train` and `ns-export`. Every key the spec may hold has a
/// type and a range; anything else is refused when the workflow is saved (and again by the agent). The flags that
/// place files, name the run or start a viewer are the agent's and never come from the spec.
///
/// ```json
/// {"input":   {"type": "video", "file": "capture.mp4"},
///  "process": {"num_frames_target": 300, "matching_method": "sequential"},
///  "train":   {"method": "splatfacto", "max_num_iterations": 30000, "pipeline": {"model": {"cull_alpha_thresh": 0.005}},
///              "dataparser": {"name": "nerfstudio-data", "downscale_factor": 2}},
///  "export":  {"kind": "gaussian-splat", "ply_color_mode": "sh_coeffs"},
///  "outputs": {"checkpoint": false},
///  "limits":  {"min_pose_fraction": 0.4}}
/// ```
public struct NerfstudioPipeline: Sendable, Equatable {
    public enum InputType: String, Sendable, CaseIterable {
        /// A zip of images.
        case images
        case video
    }

    public var inputType: InputType
    /// The spec's `input.file`: the file key (or name) of the run's file parameter that holds the capture.
    public var inputFile: String?
    public var method: String
    /// `train.max_num_iterations`, or the method's default when it has a known one (30,000 for nerfacto and
    /// splatfacto); the final checkpoint is step `maxIterations - 1`.
    public var maxIterations: Int?
    public var exportKind: String
    public var keepCheckpoint: Bool
    /// Below this share of images with a camera pose (COLMAP's report), the processing counts as failed.
    public var minPoseFraction: Double?
    /// Flags (without the agent's own) in the order they go on each command line.
    public var processArguments: [String]
    public var trainArguments: [String]
    public var dataparser: String
    public var dataparserArguments: [String]
    public var exportArguments: [String]

    /// The file each export kind writes (spec/nerfstudio.md §3).
    public static let exportFiles: [String: String] = [
        "gaussian-splat": "splat.ply", "pointcloud": "point_cloud.ply", "poisson": "poisson_mesh.ply", "tsdf": "tsdf_mesh.ply",
        "marching-cubes": "sdf_marching_cubes_mesh.ply", "cameras": "transforms_train.json",
    ]
    static let methods = [
        "nerfacto", "nerfacto-big", "nerfacto-huge", "depth-nerfacto", "instant-ngp", "instant-ngp-bounded", "splatfacto", "splatfacto-big",
        "splatfacto-mcmc", "mipnerf", "vanilla-nerf", "tensorf", "neus", "neus-facto",
    ]

    /// A value the allow-list takes, and how it becomes a flag's value.
    enum Rule {
        case integer(ClosedRange<Int>)
        case number(ClosedRange<Double>)
        case choice([String])
        case boolean
        /// An integer, or null for "unset" (the flag is left out).
        case optionalInteger(ClosedRange<Int>)
    }

    static let processRules: [String: Rule] = [
        "num_frames_target": .integer(1...100_000), "matching_method": .choice(["exhaustive", "sequential", "vocab_tree"]),
        "camera_type": .choice(["perspective", "fisheye", "equirectangular", "pinhole", "simple_pinhole"]), "num_downscales": .integer(0...4),
        "sfm_tool": .choice(["any", "colmap", "hloc"]), "gpu": .boolean, "verbose": .boolean, "random_seed": .integer(0...Int(Int32.max)),
    ]
    static let trainRules: [String: Rule] = [
        "max_num_iterations": .integer(1...10_000_000), "steps_per_save": .integer(1...10_000_000), "save_only_latest_checkpoint": .boolean,
        "mixed_precision": .boolean, "steps_per_eval_all_images": .integer(1...10_000_000), "steps_per_eval_image": .integer(1...10_000_000),
        "machine.seed": .integer(0...Int(Int32.max)), "pipeline.model.cull_alpha_thresh": .number(0...1),
        "pipeline.model.predict_normals": .boolean, "pipeline.model.sh_degree": .integer(0...4),
        "pipeline.model.background_color": .choice(["random", "black", "white"]), "pipeline.model.densify_grad_thresh": .number(0...1),
        "pipeline.model.num_random": .integer(0...10_000_000), "pipeline.model.use_scale_regularization": .boolean,
        "pipeline.datamanager.train_num_rays_per_batch": .integer(1...1_000_000),
    ]
    static let dataparserRules: [String: Rule] = [
        "downscale_factor": .optionalInteger(1...16), "train_split_fraction": .number(0...1),
        "eval_mode": .choice(["fraction", "filename", "interval", "all"]),
    ]
    static let exportRules: [String: Rule] = [
        "ply_color_mode": .choice(["sh_coeffs", "rgb"]), "num_points": .integer(1...100_000_000), "remove_outliers": .boolean,
        "normal_method": .choice(["model_output", "open3d"]), "target_num_faces": .integer(1...100_000_000),
        "texture_method": .choice(["nerf", "point_cloud", "tsdf"]), "num_pixels_per_side": .integer(16...16_384),
        "resolution": .integer(8...4096), "save_world_frame": .boolean,
    ]

    /// Reads and checks a spec; every problem names its path (`workflow_json.train.method`) and the rule.
    public init(_ spec: JSONValue) throws(SwitchyardError) {
        let top = try JSONFields(object: spec, name: "workflow_json")
        try Self.onlyKeys(top, ["kind", "input", "process", "train", "export", "outputs", "limits", "render"])
        if let kind = try top.string("kind"), kind != "nerfstudio" { throw .invalid("\(top.name("kind")) must be \"nerfstudio\"") }
        if top.has("render") { throw .invalid("\(top.name("render")) is not supported yet; set it to null or leave it out") }

        let input = try JSONFields(object: top.value("input") ?? .object([:]), name: "workflow_json.input")
        try Self.onlyKeys(input, ["type", "file"])
        inputType = try input.enumeration("type", InputType.self) ?? .images
        inputFile = try input.string("file")

        let process = try JSONFields(object: top.value("process") ?? .object([:]), name: "workflow_json.process")
        if let mode = try process.enumeration("mode", InputType.self), mode != inputType {
            throw .invalid("\(process.name("mode")) is \(mode.rawValue) but input.type is \(inputType.rawValue)")
        }
        if inputType == .images, process.has("num_frames_target") {
            throw .invalid("\(process.name("num_frames_target")) is for video input")
        }
        processArguments = try Self.flags(process, Self.processRules, ignoring: ["mode"], booleansAsFlags: true)

        let train = try JSONFields(object: top.value("train") ?? .object([:]), name: "workflow_json.train")
        method = try train.required("method") { key throws(SwitchyardError) in try train.string(key) }
        guard Self.methods.contains(method) else {
            throw .invalid("\(train.name("method")): \"\(method)\" is not one of \(Self.methods.joined(separator: ", "))")
        }
        trainArguments = try Self.flags(train, Self.trainRules, ignoring: ["method", "dataparser"], booleansAsFlags: false)
        maxIterations =
            try train.integer("max_num_iterations", range: 1...10_000_000)
            ?? (["nerfacto", "splatfacto", "splatfacto-big", "splatfacto-mcmc"].contains(method) ? 30_000 : nil)
        let parser = try JSONFields(object: train.value("dataparser") ?? .object([:]), name: "workflow_json.train.dataparser")
        dataparser = try parser.string("name") ?? "nerfstudio-data"
        guard ["nerfstudio-data", "colmap"].contains(dataparser) else {
            throw .invalid("\(parser.name("name")): \"\(dataparser)\" is not one of nerfstudio-data, colmap")
        }
        dataparserArguments = try Self.flags(parser, Self.dataparserRules, ignoring: ["name"], booleansAsFlags: false)

        let export = try JSONFields(object: top.value("export") ?? .object([:]), name: "workflow_json.export")
        exportKind = try export.string("kind") ?? (method.hasPrefix("splatfacto") ? "gaussian-splat" : "pointcloud")
        guard Self.exportFiles[exportKind] != nil else {
            throw .invalid("\(export.name("kind")): \"\(exportKind)\" is not one of \(Self.exportFiles.keys.sorted().joined(separator: ", "))")
        }
        exportArguments = try Self.flags(export, Self.exportRules, ignoring: ["kind"], booleansAsFlags: false)
        try Self.crossCheck(method: method, export: exportKind, normals: export.string("normal_method"), train: train)

        let outputs = try JSONFields(object: top.value("outputs") ?? .object([:]), name: "workflow_json.outputs")
        try Self.onlyKeys(outputs, ["checkpoint"])
        keepCheckpoint = try outputs.bool("checkpoint") ?? false
        let limits = try JSONFields(object: top.value("limits") ?? .object([:]), name: "workflow_json.limits")
        try Self.onlyKeys(limits, ["min_pose_fraction", "timeout_s"])
        minPoseFraction = try limits.number("min_pose_fraction").map(\.doubleValue)
        if let fraction = minPoseFraction, !(0...1).contains(fraction) { throw .invalid("\(limits.name("min_pose_fraction")) must be 0–1") }
    }

    /// `gaussian-splat` needs a splatfacto method; the NeRF exports need a NeRF method, and the default-normals ones
    /// a model that predicts normals; `marching-cubes` an SDF method (spec/nerfstudio.md, "Cross-checks").
    static func crossCheck(method: String, export: String, normals: String?, train: JSONFields) throws(SwitchyardError) {
        let splat = method.hasPrefix("splatfacto")
        switch export {
        case "gaussian-splat" where !splat:
            throw .invalid("field \"workflow_json.export.kind\": gaussian-splat needs a splatfacto method, not \(method)")
        case "pointcloud", "poisson", "tsdf":
            if splat { throw .invalid("field \"workflow_json.export.kind\": \(export) needs a NeRF method; \(method) exports gaussian-splat") }
            let predicts = (train.value("pipeline")?["model"]?["predict_normals"]) == .bool(true)
            if export != "tsdf", normals ?? "model_output" == "model_output", !predicts {
                throw .invalid(
                    "field \"workflow_json.export.kind\": \(export) with normal_method model_output needs train.pipeline.model.predict_normals true (or export.normal_method open3d)"
                )
            }
        case "marching-cubes" where !method.hasPrefix("neus"):
            throw .invalid("field \"workflow_json.export.kind\": marching-cubes needs an SDF method (neus, neus-facto), not \(method)")
        default: break
        }
    }

    static func onlyKeys(_ fields: JSONFields, _ allowed: Set<String>) throws(SwitchyardError) {
        if let unknown = fields.members.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .invalid(
                "\(fields.name(unknown)) is not a setting this server passes to Nerfstudio (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// The flags for the allowed keys of `fields` (nested objects flattened to dotted keys), in key order.
    static func flags(_ fields: JSONFields, _ rules: [String: Rule], ignoring: Set<String>, booleansAsFlags: Bool) throws(SwitchyardError)
        -> [String]
    {
        var flat: [(String, JSONValue)] = []
        func walk(_ value: JSONValue, _ prefix: String) {
            if case .object(let members) = value, rules[prefix] == nil {
                for (key, member) in members.sorted(by: { $0.key < $1.key }) { walk(member, prefix.isEmpty ? key : "\(prefix).\(key)") }
            } else {
                flat.append((prefix, value))
            }
        }
        for (key, value) in fields.members.sorted(by: { $0.key < $1.key }) where !ignoring.contains(key) { walk(value, key) }
        var arguments: [String] = []
        for (key, value) in flat {
            let name = "field \"\(fields.path)\(key)\""
            guard let rule = rules[key] else {
                throw .invalid("\(name) is not a setting this server passes to Nerfstudio (allowed: \(rules.keys.sorted().joined(separator: ", ")))")
            }
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            switch (rule, value) {
            case (.boolean, .bool(let on)):
                if booleansAsFlags {
                    arguments.append(on ? flag : "--no-" + flag.dropFirst(2))
                } else {
                    arguments += [flag, on ? "True" : "False"]
                }
            case (.integer(let range), .number(let number)), (.optionalInteger(let range), .number(let number)):
                guard let integer = number.intValue, range.contains(integer) else {
                    throw .invalid("\(name) must be an integer in \(range.lowerBound)–\(range.upperBound)")
                }
                arguments += [flag, String(integer)]
            case (.optionalInteger, .null):
                continue
            case (.number(let range), .number(let number)):
                guard range.contains(number.doubleValue) else {
                    throw .invalid("\(name) must be a number in \(range.lowerBound)–\(range.upperBound)")
                }
                arguments += [flag, number.description]
            case (.choice(let options), .string(let choice)):
                guard options.contains(choice) else { throw .invalid("\(name): \"\(choice)\" is not one of \(options.joined(separator: ", "))") }
                arguments += [flag, choice]
            default:
                throw .invalid("\(name) must be \(Self.describe(rule)), not \(value.typeDescription)")
            }
        }
        return arguments
    }

    static func describe(_ rule: Rule) -> String {
        switch rule {
        case .integer: "an integer"
        case .optionalInteger: "an integer or null"
        case .number: "a number"
        case .choice(let options): "one of \(options.joined(separator: ", "))"
        case .boolean: "true or false"
        }
    }
}
