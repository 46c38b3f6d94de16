#!/usr/bin/env bash
# Switchyard next to the engine it drives, in one run, on the same ComfyUI and the same prompts
# (Benchmarks/Sources/switchyard-agent-bench, "engine ratio"):
#  1. direct: ComfyUI driven over one WebSocket — one prompt at a time (POST → executing null → history → view),
#     then a backlog of BACKLOG prompts posted at once (the rate ComfyUI itself reaches);
#  2. switchyard: release `serve` (SQLite, embedded store) + one `switchyard agent` on that ComfyUI — one task at a
#     time (submit → SSE completed), then a backlog of BACKLOG tasks submitted at once;
#  3. how many prompts ComfyUI ran per task (a task run twice shows here).
# Every prompt differs (its colour), so ComfyUI's cache never answers for it.
#
#   COMFYUI_URL=http://127.0.0.1:8188 Benchmarks/engine-ratio.sh    # a real ComfyUI (clear its output folder first)
#   Benchmarks/engine-ratio.sh                                       # the fake ComfyUI, started here
#   BACKLOG=500 LATENCY_TASKS=200 PREFETCH=2 Benchmarks/engine-ratio.sh
#   REPLICAS=2 COMFYUI_URL=… Benchmarks/engine-ratio.sh   # two replicas on PostgreSQL (scripts/two-replicas.sh): tasks
#                                                        # submitted on A, the agent connected to B (every task crosses)
set -euo pipefail
cd "$(dirname "$0")/.."
backlog=${BACKLOG:-500}
latency_tasks=${LATENCY_TASKS:-200}
prefetch=${PREFETCH:-2}
port=${PORT:-18289}
replicas=${REPLICAS:-1}
if [ "$replicas" = 2 ]; then
  products="switchyard switchyard-fake-comfyui switchyard-agent-bench"
  source scripts/two-replicas.sh
  base=$a
  agent_servers="$b,$a"
  setup="two replicas on PostgreSQL $(psql --version | awk '{print $3}'), tasks submitted on A, the agent on B"
else
  source Benchmarks/serve-for-bench.sh
  agent_servers=$base
  setup="serve: SQLite (synchronous=FULL), embedded store"
fi
comfyui=${COMFYUI_URL:-}
engine="real ComfyUI at $comfyui"
if [ -z "$comfyui" ]; then
  "$bin/switchyard-fake-comfyui" $((port + 2)) >"$work/fake.log" 2>&1 &
  pids="$pids $!"
  for _ in $(seq 1 100); do grep -q listening "$work/fake.log" && break; sleep 0.1; done
  comfyui="http://127.0.0.1:$((port + 2))"
  engine="the fake ComfyUI (switchyard-fake-comfyui)"
fi
curl -fsS "$comfyui/system_stats" >/dev/null || { echo "no ComfyUI answers at $comfyui" >&2; exit 1; }

run=$(date +%s)
curl -fsS -o /dev/null -X POST "$base/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"engine-ratio","display_name":"Engine ratio","required_labels":["comfyui"],"max_retries":1,
       "workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"ImageInvert","inputs":{"image":["1",0]}},"3":{"class_type":"SaveImage","inputs":{"images":["2",0],"filename_prefix":"bench/'"$run"'-switchyard/trivial"}}},
       "parameters":[{"key":"color","node_id":"1","field":"color","type":"number","min":0,"max":16777215,"default":0}]}'
"$bin/switchyard" agent --server "$agent_servers" --key "$agent_key" --comfyui "$comfyui" --agent-id bench-gpu --prefetch "$prefetch" --log-level warning \
  >"$work/agent.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do
  curl -fsS "$base/api/v1/r/agents" -H "Authorization: Bearer $key" | grep -q bench-gpu && break
  sleep 0.1
done

echo "machine: $(nproc) cores, commit $(git rev-parse --short HEAD); engine: $engine; $setup; agent prefetch $prefetch"
"$bin/switchyard-agent-bench" ratio-direct "$comfyui" "$latency_tasks" "$backlog" "$run"
"$bin/switchyard-agent-bench" ratio-switchyard "$base" "$key" "$latency_tasks" "$backlog" engine-ratio
"$bin/switchyard-agent-bench" prompts-per-task "$comfyui"
grep -iE "error|warning" "$work/agent.log" | sort | uniq -c | sort -rn | head -5 || true
