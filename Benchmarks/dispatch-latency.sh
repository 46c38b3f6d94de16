#!/usr/bin/env bash
# Dispatch and end-to-end latency of a release `serve` on the embedded default (SQLite), everything on this
# machine (Benchmarks/Sources/switchyard-agent-bench):
#  1. dispatch: submit (POST …/run with an sk- key) → the agent holds the offer, one task at a time, with 1 and
#     with 100 simulated agents connected (wire protocol; they ack and complete at once);
#  2. end to end: a real `switchyard agent` on the fake ComfyUI, a trivial graph (EmptyImage → ImageInvert →
#     SaveImage), submit → SSE `completed` (input-free; the output is uploaded to the store), next to
#  3. the same graph driven straight on the same fake ComfyUI the way the executor drives it.
#
#   Benchmarks/dispatch-latency.sh
#   TASKS=2000 Benchmarks/dispatch-latency.sh
#   AGENTS="1 1000 10000" TASKS=300 E2E=0 Benchmarks/dispatch-latency.sh   (many agents; serve's RSS printed after each)
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${TASKS:-1000}
e2e_tasks=${E2E_TASKS:-300}
port=${PORT:-18189}
source Benchmarks/serve-for-bench.sh
curl -fsS -o /dev/null -X POST "$base/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"bench-trivial","display_name":"Trivial","required_labels":["comfyui"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"ImageInvert","inputs":{"image":["1",0]}},"3":{"class_type":"SaveImage","inputs":{"images":["2",0],"filename_prefix":"bench/trivial"}}},"parameters":[]}'

echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); serve: SQLite (synchronous=FULL), embedded store"
ulimit -n 65536 2>/dev/null || true
serve_pid=$(echo $pids | cut -d' ' -f1)
for agents in ${AGENTS:-1 100}; do
  SWITCHYARD_BENCH_SERVE_PID=$serve_pid "$bin/switchyard-agent-bench" dispatch "$base" "$key" "$agent_key" "$agents" "$tasks"
  echo "serve RSS after $agents agents left: $(($(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status) / 1024)) MiB now, $(($(awk '/VmHWM/ {print $2}' /proc/$serve_pid/status) / 1024)) MiB peak"
done
[ "${E2E:-1}" = 0 ] && exit 0

fake_port=$((port + 2))
"$bin/switchyard-fake-comfyui" "$fake_port" >"$work/fake.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do grep -q listening "$work/fake.log" && break; sleep 0.1; done
"$bin/switchyard" agent --server "$base" --key "$agent_key" --comfyui "http://127.0.0.1:$fake_port" --agent-id bench-gpu --log-level warning \
  >"$work/agent.log" 2>&1 &
pids="$pids $!"
sleep 1
"$bin/switchyard-agent-bench" e2e "$base" "$key" "$e2e_tasks"
"$bin/switchyard-agent-bench" direct "http://127.0.0.1:$fake_port" "$e2e_tasks"
