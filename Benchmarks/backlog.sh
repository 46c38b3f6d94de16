#!/usr/bin/env bash
# Dispatch with a long queue: a release `serve` on the embedded default (SQLite); one simulated agent (labels gpu,
# comfyui) is connected while WAITING tasks that need an h100 are submitted — they wait, held by the dispatcher —
# then submit → offer latency of tasks the agent can take is measured as in dispatch-latency.sh, and the server's
# RSS is read before and after. Flat latency and RSS across WAITING is the goal (issue 14, item 4).
#
#   Benchmarks/backlog.sh                       # 0, 10,000 and 100,000 waiting
#   WAITING="0 100000" TASKS=500 Benchmarks/backlog.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${TASKS:-500}
port=${PORT:-18389}
[ -n "${SWITCHYARD_BENCH_BIN:-}" ] || for product in switchyard switchyard-fake-comfyui switchyard-agent-bench; do swift build -c release --product $product >/dev/null 2>&1; done
export SWITCHYARD_BENCH_BUILT=1
echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); serve: SQLite (synchronous=FULL), embedded store"
for waiting in ${WAITING:-0 10000 100000}; do
  (
    source Benchmarks/serve-for-bench.sh
    serve_pid=$(echo $pids | awk '{print $1}')
    for body in \
      '{"workflow_slug":"bench-trivial","display_name":"Trivial","required_labels":["comfyui"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"bench/trivial"}}},"parameters":[]}' \
      '{"workflow_slug":"bench-backlog","display_name":"Needs an H100","required_labels":["gpu","h100"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"bench/backlog"}}},"parameters":[]}'; do
      curl -fsS -o /dev/null -X POST "$base/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" \
        -H "Content-Type: application/json" -d "$body"
    done
    rss() { awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$serve_pid/status"; }
    echo "== $waiting waiting; server RSS at start: $(rss)"
    "$bin/switchyard-agent-bench" backlog "$base" "$key" "$agent_key" "$waiting" "$tasks"
    echo "   server RSS after: $(rss); CPU time: $(ps -o times= -p "$serve_pid") s"
  )
done
