#!/usr/bin/env bash
# Starts `switchyard serve` on an empty data directory, walks the README's tour with curl, runs the seeds'
# submission and polling calls (curl and Python requests, unchanged but for base URL and key), and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product switchyard >/dev/null
swift build --product switchyard-fake-comfyui >/dev/null
bin=$(swift build --show-bin-path)/switchyard
fake_bin=$(swift build --show-bin-path)/switchyard-fake-comfyui
dir=$(mktemp -d)
port=${SMOKE_PORT:-18089}
SWITCHYARD_S3_EMBEDDED_PORT=$((port + 1)) "$bin" serve --data-dir "$dir/data" --port "$port" >"$dir/serve.log" 2>&1 &
pid=$!
pids="$pid"
trap 'kill $pids 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
base="http://127.0.0.1:$port/api/v1"
read -r email password team key <<<"$(python3 -c "import json;b=json.load(open('$dir/data/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'],b['integration_key'])")"
token=$(curl -fsS -X POST "$base/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" | python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
curl -fsS "$base/users/me" -H "Authorization: Bearer $token" >/dev/null
created=$(curl -fsS -X POST "$base/credentials" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -d '{"kind":"integration","display_name":"smoke"}')
id=$(echo "$created" | python3 -c "import sys,json;print(json.load(sys.stdin)['id'])")
curl -fsS -X DELETE "$base/credentials/$id" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -o /dev/null -w '%{http_code}\n' | grep -q 204
grep -q "first start" "$dir/serve.log"
echo "smoke: serve, bootstrap, login, users/me, create and revoke a key: ok"

# The README's workflow import: the recorded txt2img graph with typed parameters.
python3 - "$dir/import.json" <<'PY'
import json, sys
graph = json.load(open("Tests/Fixtures/comfyui/c1_txt2img_missing_checkpoint.json"))
json.dump({"workflow_slug": "text-to-image", "display_name": "Text to image", "workflow_json": graph, "parameters": [
    {"key": "prompt", "node_id": "6", "field": "text", "type": "string", "required": True},
    {"key": "steps", "node_id": "3", "field": "steps", "type": "number", "min": 1, "max": 150, "default": 20},
    {"key": "width", "node_id": "5", "field": "width", "type": "number", "min": 64, "max": 2048, "default": 512},
]}, open(sys.argv[1], "w"))
graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
json.dump({"workflow_slug": "img2img", "display_name": "Image to image", "workflow_json": graph, "parameters": [
    {"key": "prompt", "node_id": "6", "field": "text", "type": "string", "required": True},
    {"key": "input_image", "node_id": "10", "field": "image", "type": "file", "required": True, "accept": ["image/*"]},
]}, open(sys.argv[1].replace("import.json", "import-img2img.json"), "w"))
PY
workflow=$(curl -fsS -X POST "$base/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" \
  -H "Content-Type: application/json" --data-binary "@$dir/import.json" | python3 -c "import sys,json;print(json.load(sys.stdin)['id'])")

curl -fsS -X POST "$base/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" \
  -H "Content-Type: application/json" --data-binary "@$dir/import-img2img.json" >/dev/null

# Seed quickstart, "Discover a workflow": the list, by slug, and pinned with slug@version.
curl -fsS -H "Authorization: Bearer $key" "$base/r/workflows" | python3 -c "import sys,json;assert 'text-to-image' in [w['workflow_slug'] for w in json.load(sys.stdin)['workflow_list']]"
curl -fsS -H "Authorization: Bearer $key" "$base/r/workflows/slug/text-to-image" | python3 -c "import sys,json;d=json.load(sys.stdin);assert 'workflow_json' not in d and len(d['parameters'])==3"
curl -fsS -H "Authorization: Bearer $key" "$base/r/workflows/slug/text-to-image@1" >/dev/null

# Seed "Execute a workflow by ID" (curl), minus the example's input_image, which names a file of another team.
code=$(curl -sS -o "$dir/run.json" -w '%{http_code}' --request POST \
  --url "$base/r/workflows/$workflow/run" \
  --header "Authorization: Bearer $key" \
  --header 'Content-Type: application/json' \
  --data '
{
  "parameters": {
    "prompt": "sunset over ocean",
    "width": 1024
  },
  "dispatch_target": "agent",
  "target_pool": "team",
  "submitter_region": "us-east",
  "tool_type": "comfyui"
}
')
[ "$code" = 202 ] || { echo "run by id answered $code: $(cat "$dir/run.json")"; exit 1; }

# Seed quickstart, "End-to-end: polling", with BASE and API_KEY changed; the loop stops after the first poll
# because no agent runs the task yet (the dispatcher has it waiting for one).
API_KEY=$key BASE="$base/r" python3 - <<'PY'
import os, time, requests
API_KEY = os.environ["API_KEY"]
BASE = os.environ["BASE"]
HEADERS = { "Authorization" : f"Bearer {API_KEY}" , "Content-Type" : "application/json" }
run = requests.post(
f"{BASE}/workflows/slug/text-to-image/run" ,
headers = HEADERS ,
json = { "parameters" : { "prompt" : "hello" }},
).json()
task_id = run[ "task_id" ]
task = requests.get( f"{BASE}/tasks/{task_id}" , headers = HEADERS ).json()
print (task[ "task_status" ])
assert task["task_status"] in ("pending", "waiting"), task
result = requests.get( f"{BASE}/tasks/{task_id}/result" , headers = HEADERS ).json()
assert result["task_status"] in ("pending", "waiting") and result["download_url"] is None, result
assert requests.post(f"{BASE}/tasks/{task_id}/cancel", headers = HEADERS).json() == {"is_success": True}
assert requests.get( f"{BASE}/tasks/{task_id}" , headers = HEADERS ).json()["task_status"] == "cancelled"
PY
echo "smoke: import a workflow, run it by id (curl) and by slug (Python requests), poll, cancel: ok"

# The embedded S3 store, with the keys bootstrap.json gives operators, through boto3 and requests.
read -r s3_endpoint s3_key s3_secret <<<"$(python3 -c "import json;b=json.load(open('$dir/data/bootstrap.json'));print(b['s3_endpoint'],b['s3_access_key_id'],b['s3_secret_access_key'])")"
python3 scripts/s3-conformance-check.py "$s3_endpoint" "$s3_key" "$s3_secret" >"$dir/s3check.out" 2>&1 || true
grep -q "SUMMARY 24 pass, 0 fail" "$dir/s3check.out" || { cat "$dir/s3check.out"; exit 1; }
# Seed "Upload input files": presign, PUT with upload_headers (Python requests with a file, then curl
# --upload-file), run img2img with the file_key; a second PUT to the same URL is refused with 412.
head -c 1048576 /dev/urandom >"$dir/photo.png"
(cd "$dir" && API_KEY=$key BASE="$base/r" python3 - <<'PY'
import os, requests
API_KEY = os.environ["API_KEY"]
BASE = os.environ["BASE"]
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

# 1. Presign
presign = requests.post(
    f"{BASE}/files/presign",
    headers=HEADERS,
    json={
        "file_name": "photo.png",
        "file_size": 1048576,
        "content_type": "image/png",
    },
).json()

# 2. PUT to S3 — pass back every header the presign returned
with open("photo.png", "rb") as f:
    put = requests.put(presign["upload_url"], data=f, headers=presign["upload_headers"])
assert put.status_code == 200, (put.status_code, put.text)

# 3. Run a workflow that takes a file parameter
resp = requests.post(
    f"{BASE}/workflows/slug/img2img/run",
    headers=HEADERS,
    json={"parameters": {"input_image": presign["file_key"], "prompt": "enhance"}},
)
print(resp.json()["task_id"])
with open("photo.png", "rb") as f:
    again = requests.put(presign["upload_url"], data=f, headers=presign["upload_headers"])
assert again.status_code == 412, again.status_code
PY
) >/dev/null
presign=$(curl -fsS -X POST "$base/r/files/presign" -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
  -d '{"file_name":"photo.png","file_size":1048576,"content_type":"image/png"}')
upload_url=$(echo "$presign" | python3 -c "import sys,json;print(json.load(sys.stdin)['upload_url'])")
file_key=$(echo "$presign" | python3 -c "import sys,json;print(json.load(sys.stdin)['file_key'])")
curl -fsS -X PUT \
  -H "Content-Length: 1048576" \
  -H "If-None-Match: *" \
  --upload-file "$dir/photo.png" \
  "$upload_url"
curl -fsS -o /dev/null -X POST "$base/r/workflows/slug/img2img/run" -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
  -d "{\"parameters\":{\"input_image\":\"$file_key\",\"prompt\":\"enhance\"}}"
echo "smoke: the seeds' upload flow (presign, PUT with upload_headers via requests and curl, run with the file_key): ok"
echo "smoke: embedded S3 store passes scripts/s3-conformance-check.py (boto3): ok"
if command -v aws >/dev/null; then
  # aws s3 cp uploads large files in parts and downloads them with parallel ranged GETs.
  head -c 20000000 /dev/urandom >"$dir/big.bin"
  export AWS_ACCESS_KEY_ID=$s3_key AWS_SECRET_ACCESS_KEY=$s3_secret
  aws --endpoint-url "$s3_endpoint" --region us-east-1 s3 cp "$dir/big.bin" s3://switchyard/smoke/big.bin --only-show-errors
  aws --endpoint-url "$s3_endpoint" --region us-east-1 s3 cp s3://switchyard/smoke/big.bin "$dir/big.back" --only-show-errors
  cmp -s "$dir/big.bin" "$dir/big.back"
  echo "smoke: aws s3 cp up and down (multipart upload, ranged download) through the embedded store: ok"
else
  echo "smoke: aws CLI not installed here; its check was not run"
fi

# The quickstart against serve + agent + ComfyUI (the fake in CI): `switchyard agent` dials out with the bootstrap
# ak- key; text-to-image is re-imported (version 2) with a graph a weightless ComfyUI can run; then the seed's
# "End-to-end: SSE" and "End-to-end: polling" programs run verbatim but for BASE and API_KEY.
fake_port=$((port + 2))
"$fake_bin" "$fake_port" >"$dir/fake.log" 2>&1 &
pids="$pids $!"
agent_key=$(python3 -c "import json;print(json.load(open('$dir/data/bootstrap.json'))['agent_key'])")
for _ in $(seq 1 100); do grep -q listening "$dir/fake.log" && break; sleep 0.1; done
"$bin" agent --server "http://127.0.0.1:$port" --key "$agent_key" --comfyui "http://127.0.0.1:$fake_port" --agent-id smoke-gpu \
  >"$dir/agent.log" 2>&1 &
pids="$pids $!"
python3 - "$dir/import-v2.json" <<'PY'
import json, sys
graph = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "TestSleep", "inputs": {"value": ["1", 0], "seconds": 0.5}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "quickstart"}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": "prompt"}},
}
json.dump({"workflow_slug": "text-to-image", "display_name": "Text to image", "workflow_json": graph, "parameters": [
    {"key": "prompt", "node_id": "4", "field": "source", "type": "string", "required": True},
    {"key": "steps", "node_id": "1", "field": "height", "type": "number", "min": 1, "max": 150, "default": 20},
]}, open(sys.argv[1], "w"))
PY
curl -fsS -o /dev/null -X POST "$base/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" \
  -H "Content-Type: application/json" --data-binary "@$dir/import-v2.json"
for _ in $(seq 1 100); do
  curl -fsS -H "Authorization: Bearer $key" "$base/r/agents" | grep -q smoke-gpu && break
  sleep 0.1
done
(cd "$dir" && API_KEY=$key BASE="$base/r" timeout 60 python3 - >"$dir/sse.out" <<'PY'
import os
import json, requests
API_KEY = os.environ["API_KEY"]
BASE = os.environ["BASE"]
HEADERS = { "Authorization" : f"Bearer {API_KEY}" , "Content-Type" : "application/json" }
# 1. Submit
run = requests.post(
f"{BASE}/workflows/slug/text-to-image/run" ,
headers = HEADERS ,
json = { "parameters" : { "prompt" : "a sunset over mountains, 4k" , "steps" : 30 }},
).json()
task_id = run[ "task_id" ]
print ( "task:" , task_id)
# 2. Stream events
event_type = None
with requests.get(
f"{BASE}/tasks/{task_id}/events" ,
headers = { "Authorization" : f"Bearer {API_KEY}" },
stream = True ,
) as stream:
    for line in stream.iter_lines( decode_unicode = True ):
        if not line:
            continue
        if line.startswith( "event:" ):
            event_type = line[ 6 :].strip()
        elif line.startswith( "data:" ):
            data = json.loads(line[ 5 :].strip())
            if event_type == "progress" :
                pct = int (data[ "progress" ] * 100 )
                print ( f"{pct}% ({data.get( 'step_current' )}/{data.get( 'step_total' )})" )
            elif event_type in ( "completed" , "failed" , "cancelled" ):
                print (event_type)
                break
# 3. Fetch result
result = requests.get( f"{BASE}/tasks/{task_id}/result" , headers = HEADERS ).json()
# `download_url` is the single primary output (agent tasks). Cloud-dispatched
# tasks instead populate `download_urls`, a map keyed by output identifier.
urls = [result[ "download_url" ]] if result.get( "download_url" ) else list (result.get( "download_urls" , {}).values())
for i, url in enumerate (urls):
    with open ( f"output_{i}.png" , "wb" ) as f:
        f.write(requests.get(url).content)
    print ( f"saved output_{i}.png" )
PY
) || { cat "$dir/sse.out" "$dir/agent.log"; exit 1; }
grep -q "^completed$" "$dir/sse.out" && grep -q "%" "$dir/sse.out" && grep -q "saved output_0.png" "$dir/sse.out" \
  || { cat "$dir/sse.out" "$dir/agent.log"; t=$(sed -n "s/^task: //p" "$dir/sse.out"); curl -sS -H "Authorization: Bearer $key" "$base/r/tasks/$t"; exit 1; }
head -c 4 "$dir/output_0.png" | od -An -c | grep -q "P   N   G" || { echo "output_0.png is not the PNG ComfyUI wrote"; exit 1; }
(API_KEY=$key BASE="$base/r" timeout 60 python3 - >"$dir/poll.out" <<'PY'
import os
import time, requests
API_KEY = os.environ["API_KEY"]
BASE = os.environ["BASE"]
HEADERS = { "Authorization" : f"Bearer {API_KEY}" , "Content-Type" : "application/json" }
run = requests.post(
f"{BASE}/workflows/slug/text-to-image/run" ,
headers = HEADERS ,
json = { "parameters" : { "prompt" : "hello" }},
).json()
task_id = run[ "task_id" ]
while True :
    task = requests.get( f"{BASE}/tasks/{task_id}" , headers = HEADERS ).json()
    print (task[ "task_status" ])
    if task[ "task_status" ] in ( "completed" , "failed" , "cancelled" ):
        break
    time.sleep( 3 )
result = requests.get( f"{BASE}/tasks/{task_id}/result" , headers = HEADERS ).json()
print (result)
PY
) || { cat "$dir/poll.out"; exit 1; }
tail -2 "$dir/poll.out" | head -1 | grep -q "^completed$" && grep -q "download_url': 'http" "$dir/poll.out" || { cat "$dir/poll.out"; exit 1; }
echo "smoke: the seeds' quickstart (SSE with progress, then polling; result downloaded) against serve + switchyard agent + ComfyUI (fake): ok"

# /metrics after the tour: Prometheus' own linter, and the figures the tour must have moved.
curl -fsS "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
if command -v promtool >/dev/null; then
  promtool check metrics <"$dir/metrics.txt" || { echo "promtool check metrics found problems"; exit 1; }
elif [ -n "${CI:-}" ]; then
  echo "promtool is missing (.ci/run installs Debian's prometheus package)"; exit 1
else
  echo "promtool is not installed: lint skipped"
fi
python3 - "$dir/metrics.txt" <<'PY'
import re, sys
samples = {}
for line in open(sys.argv[1]):
    if not line.startswith("#") and line.strip():
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
def total(pattern):
    return sum(v for s, v in samples.items() if re.fullmatch(pattern, s))
assert total(r'switchyard_task_transitions_total\{status="completed"\}') >= 2, "completed transitions"
assert total(r'switchyard_queue_wait_seconds_count') >= 2, "queue wait"
assert total(r'switchyard_dispatch_latency_seconds_count') >= 2, "dispatch latency"
assert total(r'switchyard_agents\{status="(idle|busy)"\}') == 1, "one agent connected"
assert total(r'switchyard_object_store_received_bytes_total') > 0, "uploaded output bytes"
assert total(r'switchyard_http_requests_total\{method="POST",route="/api/v1/r/workflows/slug/\{workflowSlug\}/run",status="202"\}') >= 2
print(f"smoke: /metrics, {len(samples)} samples, promtool-clean, the tour's tasks, agent and uploads counted: ok")
PY

# switchyard secrets rotate beside the running server: a new session key; sessions signed before keep working.
"$bin" secrets rotate --data-dir "$dir/data" >"$dir/rotate.out" 2>&1 || { cat "$dir/rotate.out"; exit 1; }
grep -q "new key k[0-9a-f]\{12\} signs from now on" "$dir/rotate.out" && grep -q "still verifies until" "$dir/rotate.out" || { cat "$dir/rotate.out"; exit 1; }
curl -fsS "$base/users/me" -H "Authorization: Bearer $token" >/dev/null
echo "smoke: switchyard secrets rotate (the server's sessions stay valid through the overlap): ok"
