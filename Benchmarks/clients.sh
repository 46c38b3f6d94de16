#!/usr/bin/env bash
# The clients next to the raw API, on a release `serve` (SQLite, embedded store) with a release agent on the fake
# ComfyUI, everything on this machine:
#  1. `switchyard run invert --wait --out DIR` (an sk- key: fetch the workflow, submit, follow the SSE stream,
#     download the output) against the same steps with curl (submit, `curl -N` the events, result, download);
#  2. an MCP `tools/call get_task` (the runtime route called in-process) against `GET /r/tasks/{id}`, one kept-alive
#     connection each, sequential requests.
#
#   Benchmarks/clients.sh
#   RUNS=50 CALLS=2000 Benchmarks/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}
calls=${CALLS:-1000}
port=${PORT:-18289}
source Benchmarks/serve-for-bench.sh
"$bin/switchyard-fake-comfyui" $((port + 2)) >"$work/comfyui.log" 2>&1 &
pids="$pids $!"
SWITCHYARD_DATA_DIR="$work/data" "$bin/switchyard" agent --server "$base" --comfyui "http://127.0.0.1:$((port + 2))" --agent-id bench \
  --log-level warning >"$work/agent.log" 2>&1 &
pids="$pids $!"
"$bin/switchyard" workflows import examples/workflows/invert.json --server "$base" --data-dir "$work/data" >/dev/null
export SWITCHYARD_API_KEY=$key
"$bin/switchyard" run invert -p width=64 -p height=64 --wait --out "$work/warm" --server "$base" >/dev/null 2>&1   # the agent is connected

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s%N; }
echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); $runs runs each, medians"
cli=()
raw=()
for i in $(seq 1 "$runs"); do
  start=$(now)
  "$bin/switchyard" run invert -p width=64 -p height=64 --wait --out "$work/cli" --server "$base" >/dev/null 2>&1
  cli+=($((($(now) - start) / 1000000)))
  start=$(now)
  # JSON fields picked with sed, not a Python start-up each (which would cost more than the steps themselves).
  task=$(curl -fsS -X POST "$base/api/v1/r/workflows/slug/invert/run" -H "Authorization: Bearer $key" -d '{"parameters":{"width":64,"height":64}}' |
    sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p')
  curl -fsSN "$base/api/v1/r/tasks/$task/events" -H "Authorization: Bearer $key" >/dev/null
  url=$(curl -fsS "$base/api/v1/r/tasks/$task/result" -H "Authorization: Bearer $key" | sed -n 's/.*"download_url":"\([^"]*\)".*/\1/p')
  curl -fsS -o "$work/raw.png" "$url"
  raw+=($((($(now) - start) / 1000000)))
done
echo "run → completed → output on disk: switchyard run --wait $(printf '%s\n' "${cli[@]}" | median) ms, curl steps $(printf '%s\n' "${raw[@]}" | median) ms"

python3 - "$base" "$key" "$task" "$calls" <<'PY'
import http.client, json, sys, time
base, key, task, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host = base.split("//")[1]
def measure(method, path, body):
    connection = http.client.HTTPConnection(host)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        assert answer.status == 200, (answer.status, data[:200])
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6
rest = measure("GET", f"/api/v1/r/tasks/{task}", None)
call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_task", "arguments": {"task_id": task}}})
mcp = measure("POST", "/api/v1/mcp", call)
print(f"get a task, {calls} sequential calls: REST p50 {rest[0]:.0f} µs p99 {rest[1]:.0f} µs; MCP tools/call p50 {mcp[0]:.0f} µs p99 {mcp[1]:.0f} µs")
PY
