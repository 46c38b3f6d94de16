import Foundation
import SwitchyardCore
import Testing

@Suite("Run validation")
struct RunRequestTests {
    static let team = UUID(uuidString: "019abc12-4567-7890-abcd-ef1234567891")!
    static let otherTeam = UUID(uuidString: "019abc12-4567-7890-abcd-ef1234567892")!
    static let fileKey = "inputs/\(team.lowercased)/019abc12-0000-7000-8000-000000000001/aW1hZ2UvcG5n/photo.png"

    func validate(_ body: String) throws -> RunRequest {
        try RunRequest.validate(
            body: try JSONValue.parse(body), definition: try parseDefinition(try txt2imgImport()),
            fileKeyRule: { InputFileKey.violation($0, teamId: Self.team) }
        )
    }

    @Test("the docs' example values are injected into the recorded graph at node_id/field; omitted optionals take their default")
    func injects() throws {
        let run = try validate(
            #"{"parameters":{"prompt":"sunset over ocean","width":1024,"sampler":"dpmpp_2m","seed":18446744073709551615,"input_image":"\#(Self.fileKey)"}}"#
        )
        let graph = run.injectedDefinition
        #expect(graph["6"]?["inputs"]?["text"] == "sunset over ocean")
        #expect(graph["5"]?["inputs"]?["width"] == 1024)
        #expect(graph["3"]?["inputs"]?["sampler_name"] == "dpmpp_2m")
        #expect(graph["3"]?["inputs"]?["denoise"] == false)
        #expect(graph["10"]?["inputs"]?["image"] == .string(Self.fileKey))
        // A 64-bit seed survives exactly.
        #expect(graph["3"]?["inputs"]?["seed"]?.numberValue?.text == "18446744073709551615")
        // Links and untouched inputs stay as recorded.
        #expect(graph["6"]?["inputs"]?["clip"] == ["4", 1])
        #expect(graph["7"]?["inputs"]?["text"] == "blurry")
        #expect(run.parameters["hires"] == false && run.parameters["width"] == 1024)
        #expect(run.parameters.keys.sorted() == ["hires", "input_image", "prompt", "sampler", "seed", "width"])
        #expect(run.dispatchTarget == .agent && run.targetPool == .team && run.submitterRegion == nil)
    }

    @Test("defaults fill omitted optional keys; parameters without a default stay unset")
    func defaults() throws {
        let run = try validate(#"{"parameters":{"prompt":"x"}}"#)
        #expect(run.parameters == ["prompt": "x", "width": 512, "sampler": "euler", "hires": false])
        #expect(run.injectedDefinition["3"]?["inputs"]?["seed"] == 156_680_208_700_286)
        #expect(run.injectedDefinition["5"]?["inputs"]?["width"] == 512)
    }

    @Test(
        "every rule of api.md §2.1 is a 400 naming the key and the rule",
        arguments: [
            // unknown key
            (
                #"{"parameters":{"prompt":"x","steps":30}}"#,
                #"parameter "steps" is not defined by workflow "text-to-image" (its parameters: prompt, width, sampler, seed, hires, input_image)"#
            ),
            // missing required
            (#"{"parameters":{}}"#, #"parameter "prompt" is required (string)"#),
            ("{}", #"parameter "prompt" is required (string)"#),
            (#"{"parameters":null}"#, #"parameter "prompt" is required (string)"#),
            // string
            (#"{"parameters":{"prompt":5}}"#, #"parameter "prompt": must be a string, not a number"#),
            (#"{"parameters":{"prompt":null}}"#, #"parameter "prompt": must be a string, not null"#),
            (#"{"parameters":{"prompt":["x"]}}"#, #"parameter "prompt": must be a string, not an array"#),
            (#"{"parameters":{"prompt":"a\u0000b"}}"#, #"parameter "prompt": must not contain NUL (\u0000)"#),
            (
                #"{"parameters":{"prompt":"\#(String(repeating: "é", count: 32_769))"}}"#,
                #"parameter "prompt": is 65538 bytes long; the maximum is 65536"#
            ),
            // number
            (#"{"parameters":{"prompt":"x","width":"1024"}}"#, #"parameter "width": must be a number, not a string"#),
            (#"{"parameters":{"prompt":"x","width":true}}"#, #"parameter "width": must be a number, not a boolean"#),
            (#"{"parameters":{"prompt":"x","width":63}}"#, #"parameter "width": 63 is below min 64"#),
            (#"{"parameters":{"prompt":"x","width":63.99}}"#, #"parameter "width": 63.99 is below min 64"#),
            (#"{"parameters":{"prompt":"x","width":2049}}"#, #"parameter "width": 2049 is above max 2048"#),
            (#"{"parameters":{"prompt":"x","width":4096}}"#, #"parameter "width": 4096 is above max 2048"#),
            // boolean
            (#"{"parameters":{"prompt":"x","hires":"true"}}"#, #"parameter "hires": must be a boolean, not a string"#),
            (#"{"parameters":{"prompt":"x","hires":1}}"#, #"parameter "hires": must be a boolean, not a number"#),
            // select
            (
                #"{"parameters":{"prompt":"x","sampler":"ddim"}}"#,
                #"parameter "sampler": "ddim" is not one of the options ["euler","euler_ancestral","dpmpp_2m"]"#
            ),
            (
                #"{"parameters":{"prompt":"x","sampler":"Euler"}}"#,
                #"parameter "sampler": "Euler" is not one of the options ["euler","euler_ancestral","dpmpp_2m"]"#
            ),
            (
                #"{"parameters":{"prompt":"x","sampler":1}}"#,
                #"parameter "sampler": 1 is not one of the options ["euler","euler_ancestral","dpmpp_2m"]"#
            ),
            // file
            (
                #"{"parameters":{"prompt":"x","input_image":42}}"#,
                #"parameter "input_image": must be a file_key string from POST /r/files/presign, not a number"#
            ),
            (
                #"{"parameters":{"prompt":"x","input_image":"photo.png"}}"#,
                #"parameter "input_image": "photo.png" is not a file_key from POST /r/files/presign (inputs/<team>/<upload>/…)"#
            ),
            (
                #"{"parameters":{"prompt":"x","input_image":"inputs/019abc12-4567-7890-abcd-ef1234567891/019abc12-0000-7000-8000-000000000001/../x"}}"#,
                #"parameter "input_image": "inputs/019abc12-4567-7890-abcd-ef1234567891/019abc12-0000-7000-8000-000000000001/../x" is not a file_key from POST /r/files/presign (inputs/<team>/<upload>/…)"#
            ),
            (
                #"{"parameters":{"prompt":"x","input_image":"inputs/019abc12-4567-7890-abcd-ef1234567892/019abc12-0000-7000-8000-000000000001/a.png"}}"#,
                #"parameter "input_image": file_key "inputs/019abc12-4567-7890-abcd-ef1234567892/019abc12-0000-7000-8000-000000000001/a.png" was not uploaded by this team"#
            ),
            // several at once, in key order
            (
                #"{"parameters":{"width":1,"zzz":1}}"#,
                #"parameter "width": 1 is below min 64; parameter "zzz" is not defined by workflow "text-to-image" (its parameters: prompt, width, sampler, seed, hires, input_image); parameter "prompt" is required (string)"#
            ),
            // shape of the body
            (#"{"parameters":["prompt"]}"#, #"field "parameters" must be an object of parameter key → value, not an array"#),
            (#""x""#, "request body must be a JSON object, not a string"),
            // options
            (#"{"parameters":{"prompt":"x"},"dispatch_target":"gpu"}"#, #"field "dispatch_target": "gpu" is not one of agent, comfy_cloud"#),
            (#"{"parameters":{"prompt":"x"},"target_pool":"public"}"#, #"field "target_pool": "public" is not one of team, community"#),
            (
                #"{"parameters":{"prompt":"x"},"tool_type":"nerfstudio"}"#,
                #"field "tool_type": workflow "text-to-image" is a comfyui workflow, not nerfstudio"#
            ),
            (#"{"parameters":{"prompt":"x"},"tool_type":"maya"}"#, #"field "tool_type": "maya" is not one of comfyui, nerfstudio"#),
            (#"{"parameters":{"prompt":"x"},"submitter_region":7}"#, #"field "submitter_region" must be a string, not a number"#),
        ])
    func rules(body: String, message: String) {
        #expect(throws: SwitchyardError.invalid(message)) { try validate(body) }
    }

    @Test("more than 100 parameter keys are refused before anything else")
    func tooManyKeys() {
        let keys = (0...100).map { #""k\#($0)":1"# }.joined(separator: ",")
        #expect(throws: SwitchyardError.invalid(#"field "parameters" has 101 keys; the maximum is 100"#)) {
            try validate(#"{"parameters":{\#(keys)}}"#)
        }
    }

    @Test("submitter_region is trimmed and lowercased, at most 64 characters, empty means unknown")
    func region() throws {
        #expect(try validate(#"{"parameters":{"prompt":"x"},"submitter_region":"  US-East "}"#).submitterRegion == "us-east")
        #expect(try validate(#"{"parameters":{"prompt":"x"},"submitter_region":"   "}"#).submitterRegion == nil)
        let long = String(repeating: "a", count: 65)
        #expect(throws: SwitchyardError.invalid(#"field "submitter_region" is 65 characters long; the maximum is 64"#)) {
            try validate(#"{"parameters":{"prompt":"x"},"submitter_region":" \#(long) "}"#)
        }
        #expect(try validate(#"{"parameters":{"prompt":"x"},"submitter_region":" \#(String(long.dropFirst())) "}"#).submitterRegion?.count == 64)
    }

    @Test("dispatch options: explicit values win, else the workflow's default target and the team pool")
    func options() throws {
        let run = try validate(#"{"parameters":{"prompt":"x"},"dispatch_target":"comfy_cloud","target_pool":"community","tool_type":"comfyui"}"#)
        #expect(run.dispatchTarget == .comfyCloud && run.targetPool == .community)
        var definition = try parseDefinition(try txt2imgImport())
        definition.defaultDispatchTarget = .comfyCloud
        let defaulted = try RunRequest.validate(body: ["parameters": ["prompt": "x"]], definition: definition, fileKeyRule: { _ in nil })
        #expect(defaulted.dispatchTarget == .comfyCloud)
    }

    @Test("a workflow without parameters accepts {} and a body without parameters, and refuses any key")
    func noParameters() throws {
        let definition = try parseDefinition(
            withMember(withMember(try txt2imgImport(), "parameters", nil), "workflow_json", try recordedGraph("a_empty_invert_save")))
        #expect(try RunRequest.validate(body: [:], definition: definition, fileKeyRule: { _ in nil }).parameters.isEmpty)
        #expect(
            try RunRequest.validate(body: ["parameters": [:]], definition: definition, fileKeyRule: { _ in nil }).injectedDefinition
                == definition.graph)
        #expect(throws: SwitchyardError.invalid(#"parameter "x" is not defined by workflow "text-to-image" (this workflow takes no parameters)"#)) {
            try RunRequest.validate(body: ["parameters": ["x": 1]], definition: definition, fileKeyRule: { _ in nil })
        }
    }

    @Test(
        "accept patterns match MIME types",
        arguments: [
            (["image/*"], "image/png", true), (["image/*"], "IMAGE/PNG; charset=binary", true), (["image/png"], "image/jpeg", false),
            (["*/*"], "video/mp4", true), (["image/*", "video/mp4"], "video/mp4", true), (["image/*"], "text/plain", false),
        ])
    func accept(patterns: [String], mime: String, accepted: Bool) {
        let parameter = ParameterDefinition(key: "f", kind: .file, accept: patterns)
        #expect(parameter.accepts(mimeType: mime) == accepted)
    }
}
