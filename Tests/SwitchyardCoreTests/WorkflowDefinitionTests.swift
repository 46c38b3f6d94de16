import Foundation
import SwitchyardCore
import Testing

/// A graph recorded against a real ComfyUI server (Tests/Fixtures/comfyui).
func recordedGraph(_ name: String) throws -> JSONValue {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/comfyui/\(name).json")
    return try JSONValue.parse(Array(try Data(contentsOf: url)))
}

/// The txt2img workflow of the docs' example (api.md §2.1) on the recorded c1 graph.
func txt2imgImport(parameters: String? = nil) throws -> JSONValue {
    let parameters =
        parameters ?? """
            [{"key":"prompt","node_id":"6","field":"text","type":"string","label":"Positive Prompt","required":true},
             {"key":"width","node_id":"5","field":"width","type":"number","label":"Width","min":64,"max":2048,"default":512},
             {"key":"sampler","node_id":"3","field":"sampler_name","type":"select","label":"Sampler","options":["euler","euler_ancestral","dpmpp_2m"],"default":"euler"},
             {"key":"seed","node_id":"3","field":"seed","type":"number"},
             {"key":"hires","node_id":"3","field":"denoise","type":"boolean","default":false},
             {"key":"input_image","node_id":"10","field":"image","type":"file","accept":["image/*"]}]
            """
    guard case .object(var body) = try JSONValue.parse(#"{"workflow_slug":"text-to-image","display_name":"Text to image"}"#) else {
        throw SwitchyardError.invalid("fixture")
    }
    var graph = try recordedGraph("c1_txt2img_missing_checkpoint")
    // A LoadImage node for the file parameter, as an img2img graph would have.
    if case .object(var nodes) = graph {
        nodes["10"] = ["class_type": "LoadImage", "inputs": ["image": "placeholder.png"]]
        graph = .object(nodes)
    }
    body["workflow_json"] = graph
    body["parameters"] = try JSONValue.parse(parameters)
    return .object(body)
}

func parseDefinition(_ body: JSONValue, base: WorkflowDefinition? = nil) throws -> WorkflowDefinition {
    try WorkflowDefinition.parse(JSONFields(body: body), base: base)
}

func withMember(_ body: JSONValue, _ key: String, _ value: JSONValue?) -> JSONValue {
    guard case .object(var members) = body else { return body }
    members[key] = value
    return .object(members)
}

@Suite("Workflow definitions")
struct WorkflowDefinitionTests {
    @Test("the docs' example parameters import onto the recorded txt2img graph")
    func importsExample() throws {
        let definition = try parseDefinition(try txt2imgImport())
        #expect(definition.slug == "text-to-image")
        #expect(definition.toolType == .comfyui)
        #expect(definition.parameters.map(\.key) == ["prompt", "width", "sampler", "seed", "hires", "input_image"])
        #expect(definition.parameter("width")?.defaultValue == 512)
        #expect(definition.parameter("seed")?.label == "seed")
        #expect(definition.taskTimeout == 0 && definition.maxRetries == 0 && definition.defaultDispatchTarget == .agent)
        // Stored and read back, it is the same definition.
        #expect(try WorkflowDefinition.decodeStored(definition.storedJSON) == definition)
    }

    @Test(
        "slugs follow ^[a-z0-9]+(?:-[a-z0-9]+)*$ with 2–100 characters",
        arguments: [
            ("ab", true), ("text-to-image", true), ("sd15-v2", true), (String(repeating: "a", count: 100), true),
            ("a", false), (String(repeating: "a", count: 101), false), ("Text", false), ("-ab", false), ("ab-", false),
            ("a--b", false), ("a_b", false), ("a b", false), ("ä-b", false),
        ])
    func slugs(slug: String, valid: Bool) {
        #expect((WorkflowReference.slugRule(slug) == nil) == valid)
    }

    @Test(
        "slug@version splits on the last @; the version is a positive integer",
        arguments: [
            ("text-to-image", "text-to-image", nil), ("text-to-image@2", "text-to-image", 2), ("ab@10", "ab", 10),
        ] as [(String, String, Int?)])
    func references(raw: String, slug: String, version: Int?) throws {
        #expect(try WorkflowReference(parsing: raw) == WorkflowReference(slug: slug, version: version))
    }

    @Test(
        "malformed references are refused (the version: digits only, no sign, no leading zero, at most nine)",
        arguments: ["ab@0", "ab@-1", "ab@x", "ab@", "@2", "a@2", "ab@1@2", "AB@2", "ab@١", "ab@+5", "ab@01", "ab@1234567890"])
    func badReferences(raw: String) {
        #expect(throws: SwitchyardError.self) { try WorkflowReference(parsing: raw) }
    }

    @Test(
        "each broken definition rule is a 400 naming the field or parameter",
        arguments: [
            (
                #"{"key":"p","type":"text","node_id":"6","field":"text"}"#,
                #"field "parameters[0].type": "text" is not one of string, number, boolean, select, file"#
            ),
            (#"{"type":"string","node_id":"6","field":"text"}"#, #"field "parameters[0].key" is required"#),
            (#"{"key":"1p","type":"string","node_id":"6","field":"text"}"#, #"field "parameters[0].key": "1p" must start with a letter or _"#),
            (
                #"{"key":"p","type":"string","min":1,"node_id":"6","field":"text"}"#,
                #"parameter "p": field "min" is only allowed for type number, not string"#
            ),
            (
                #"{"key":"p","type":"number","options":[1],"node_id":"5","field":"width"}"#,
                #"parameter "p": field "options" is only allowed for type select, not number"#
            ),
            (
                #"{"key":"p","type":"string","accept":["image/*"],"node_id":"6","field":"text"}"#,
                #"parameter "p": field "accept" is only allowed for type file, not string"#
            ),
            (#"{"key":"p","type":"number","min":10,"max":1,"node_id":"5","field":"width"}"#, "parameter \"p\": min 10 is greater than max 1"),
            (#"{"key":"p","type":"number","max":100,"default":512,"node_id":"5","field":"width"}"#, "parameter \"p\": default 512 is above max 100"),
            (
                #"{"key":"p","type":"number","default":"512","node_id":"5","field":"width"}"#,
                "parameter \"p\": default must be a number, not a string"
            ),
            (#"{"key":"p","type":"select","node_id":"3","field":"sampler_name"}"#, #"parameter "p": type select needs a non-empty "options" array"#),
            (#"{"key":"p","type":"select","options":["a","a"],"node_id":"3","field":"sampler_name"}"#, "parameter \"p\": options must be distinct"),
            (
                #"{"key":"p","type":"select","options":[["a"]],"node_id":"3","field":"sampler_name"}"#,
                "parameter \"p\": options must be strings, numbers or booleans, not an array"
            ),
            (
                #"{"key":"p","type":"select","options":["a","b"],"default":"c","node_id":"3","field":"sampler_name"}"#,
                #"parameter "p": default "c" is not one of the options ["a","b"]"#
            ),
            (
                #"{"key":"p","type":"string","required":true,"default":"x","node_id":"6","field":"text"}"#,
                "parameter \"p\": a required parameter cannot have a default (defaults apply only when the key is omitted)"
            ),
            (
                #"{"key":"p","type":"file","default":"inputs/x","node_id":"10","field":"image"}"#,
                "parameter \"p\": file parameters cannot have a default; callers upload a file for each run"
            ),
            (
                #"{"key":"p","type":"file","accept":["image"],"node_id":"10","field":"image"}"#,
                #"field "parameters[0].accept[0]": "image" is not a MIME pattern like image/png or image/*"#
            ),
            (
                #"{"key":"p","type":"string","node_id":"6"}"#,
                #"parameter "p": comfyui parameters need "node_id" and "field" (where the value is injected)"#
            ),
            (
                #"{"key":"p","type":"string","target_path":"a.b","node_id":"6","field":"text"}"#,
                #"parameter "p": field "target_path" is for nerfstudio workflows; comfyui parameters use node_id and field"#
            ),
            (#"{"key":"p","type":"string","node_id":"99","field":"text"}"#, #"parameter "p": node_id "99" is not a node of workflow_json"#),
            (
                #"{"key":"p","type":"string","node_id":"6","field":"txt"}"#,
                #"parameter "p": node "6" (CLIPTextEncode) has no input "txt" (its inputs: clip, text)"#
            ),
            (
                #"{"key":"p","type":"string","node_id":"6","field":"clip"}"#,
                #"parameter "p": input "clip" of node "6" is linked to node "4"; a parameter can only set a widget value"#
            ),
            (
                #"{"key":"p","type":"string","node_id":"6","field":"text"},{"key":"q","type":"string","node_id":"6","field":"text"}"#,
                #"parameter "q": node "6" input "text" is already set by parameter "p""#
            ),
            (
                #"{"key":"p","type":"string","node_id":"6","field":"text"},{"key":"p","type":"string","node_id":"7","field":"text"}"#,
                "parameter \"p\" is defined twice (parameters[1]); keys must be unique"
            ),
            (#""p""#, #"field "parameters[0]" must be a JSON object, not a string"#),
        ])
    func definitionRules(parameters: String, message: String) throws {
        let body = try txt2imgImport(parameters: "[\(parameters)]")
        #expect(throws: SwitchyardError.invalid(message)) { try parseDefinition(body) }
    }

    @Test("more than 100 parameters are refused")
    func tooManyParameters() throws {
        let entries = (0...100).map { #"{"key":"p\#($0)","type":"string","node_id":"6","field":"text"}"# }.joined(separator: ",")
        #expect(throws: SwitchyardError.invalid(#"field "parameters" has 101 items; the maximum is 100"#)) {
            try parseDefinition(try txt2imgImport(parameters: "[\(entries)]"))
        }
    }

    @Test(
        "top-level fields follow their rules",
        arguments: [
            (
                "workflow_slug", JSONValue.string("Bad Slug"),
                #"field "workflow_slug": "Bad Slug" must be lowercase letters and digits in groups joined by single hyphens"#
            ),
            ("workflow_slug", nil, #"field "workflow_slug" is required"#),
            ("display_name", "  ", #"field "display_name" must not be empty"#),
            ("display_name", .string(String(repeating: "x", count: 256)), #"field "display_name" is 256 characters long; the maximum is 255"#),
            ("description", .string(String(repeating: "x", count: 2001)), #"field "description" is 2001 characters long; the maximum is 2000"#),
            ("workflow_json", nil, #"field "workflow_json" is required"#),
            (
                "workflow_json", [1, 2],
                #"field "workflow_json" must be a ComfyUI API-format graph (an object of node id → {class_type, inputs}), not an array"#
            ),
            ("tool_type", "blender", #"field "tool_type": "blender" is not one of comfyui, nerfstudio"#),
            ("task_timeout", -1, #"field "task_timeout": -1 is outside 0–604800"#),
            ("task_timeout", 1.5, #"field "task_timeout" must be an integer, not 1.5"#),
            ("max_retries", 11, #"field "max_retries": 11 is outside 0–10"#),
            ("min_vram_gb", 4096, #"field "min_vram_gb": 4096 is outside 0–2048"#),
            ("default_dispatch_target", "lambda", #"field "default_dispatch_target": "lambda" is not one of agent, comfy_cloud"#),
            ("required_labels", ["gpu", "has space"], #"field "required_labels[1]": "has space" must not contain whitespace or commas"#),
            (
                "required_models", ["sdxl.safetensors"],
                #"field "required_models[0]": "sdxl.safetensors" is not a model path like checkpoints/sdxl-base.safetensors"#
            ),
            (
                "required_models", ["checkpoints/../etc"],
                #"field "required_models[0]": "checkpoints/../etc" is not a model path like checkpoints/sdxl-base.safetensors"#
            ),
        ] as [(String, JSONValue?, String)])
    func topLevelRules(field: String, value: JSONValue?, message: String) throws {
        #expect(throws: SwitchyardError.invalid(message)) { try parseDefinition(withMember(try txt2imgImport(), field, value)) }
    }

    @Test(
        "ComfyUI graphs must be API-format",
        arguments: [
            (JSONValue.object([:]), #"field "workflow_json" is an empty graph; it needs at least one node"#),
            (["1": ["inputs": [:]]], #"workflow_json node "1" has no "class_type" string (is this the UI format? export with "Save (API)")"#),
            (["1": ["class_type": "X"]], #"workflow_json node "1" (X) has no "inputs" object"#),
            (
                ["1": ["class_type": "X", "inputs": ["a": ["9", 0]]]],
                #"workflow_json node "1" input "a" links to node "9", which is not in the graph"#
            ),
            (
                ["nodes": [1, 2], "links": []],
                #"workflow_json node "links" must be an object with class_type and inputs, not an array (is this the UI format? export with "Save (API)")"#
            ),
        ] as [(JSONValue, String)])
    func comfyGraphs(graph: JSONValue, message: String) throws {
        let body = withMember(withMember(try txt2imgImport(), "workflow_json", graph), "parameters", [])
        #expect(throws: SwitchyardError.invalid(message)) { try parseDefinition(body) }
    }

    @Test(
        "every recorded graph is accepted",
        arguments: ["a_empty_invert_save", "b_load_blur_save", "c1_txt2img_missing_checkpoint", "d_sleep_progress_TESTNODES"])
    func recordedGraphsValidate(name: String) throws {
        #expect(throws: Never.self) { try DefinitionGraph.validateComfyUI(try recordedGraph(name)) }
    }

    @Test("nerfstudio parameters address the spec by dotted target_path")
    func nerfstudio() throws {
        let spec: JSONValue = [
            "input": ["type": "images", "file": ""], "train": ["method": "splatfacto", "max_num_iterations": 30000],
            "export": ["kind": "gaussian-splat", "ply_color_mode": "sh_coeffs"],
        ]
        func body(_ parameters: JSONValue) -> JSONValue {
            ["workflow_slug": "splat", "display_name": "Splat", "tool_type": "nerfstudio", "workflow_json": spec, "parameters": parameters]
        }
        let definition = try parseDefinition(
            body([
                ["key": "iterations", "type": "number", "target_path": "train.max_num_iterations", "min": 1000],
                ["key": "color", "type": "select", "target_path": "export.ply_color_mode", "options": ["sh_coeffs", "rgb"]],
            ]))
        let injected = DefinitionGraph.inject(
            ["iterations": 5000, "color": "rgb"], parameters: definition.parameters, into: spec, toolType: .nerfstudio)
        #expect(injected["train"]?["max_num_iterations"] == 5000)
        #expect(injected["export"]?["ply_color_mode"] == "rgb")
        #expect(throws: SwitchyardError.invalid(#"parameter "x": target_path "train.iters" does not resolve: no key "iters""#)) {
            try parseDefinition(body([["key": "x", "type": "number", "target_path": "train.iters"]]))
        }
        #expect(throws: SwitchyardError.invalid(#"parameter "x": target_path "train.method.5" does not resolve: "5" goes inside a string"#)) {
            try parseDefinition(body([["key": "x", "type": "string", "target_path": "train.method.5"]]))
        }
        #expect(
            throws: SwitchyardError.invalid(
                #"parameter "x": fields "node_id" and "field" are for comfyui workflows; nerfstudio parameters use target_path"#)
        ) {
            try parseDefinition(body([["key": "x", "type": "string", "node_id": "1", "field": "a"]]))
        }
    }

    @Test("an update keeps what it does not name and re-checks the whole definition")
    func partialUpdate() throws {
        let base = try parseDefinition(try txt2imgImport())
        let renamed = try parseDefinition(["display_name": "Renamed", "max_retries": 2, "preferred_gpu": "RTX_4090"], base: base)
        #expect(renamed.displayName == "Renamed" && renamed.maxRetries == 2 && renamed.preferredGPU == "RTX_4090")
        #expect(renamed.parameters == base.parameters && renamed.graph == base.graph && renamed.slug == base.slug)
        let cleared = try parseDefinition(["preferred_gpu": nil], base: renamed)
        #expect(cleared.preferredGPU == nil)
        // A new graph without node 5 breaks the "width" parameter the update kept.
        #expect(throws: SwitchyardError.invalid(#"parameter "prompt": node_id "6" is not a node of workflow_json"#)) {
            try parseDefinition(["workflow_json": try recordedGraph("a_empty_invert_save")], base: base)
        }
    }
}
