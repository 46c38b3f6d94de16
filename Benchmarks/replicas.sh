#!/usr/bin/env bash
# Dispatch across replicas: two release `serve` processes on one throwaway PostgreSQL (scripts/two-replicas.sh).
# Submit on A → offer received by a simulated agent (wire protocol; it acks and completes at once), with the
# agent on A (same replica) and on B (the task crosses by LISTEN/NOTIFY), one task at a time. Before
# notifications the cross-replica figure was the rescan interval (≈1 s).
#
#   Benchmarks/replicas.sh
#   TASKS=2000 Benchmarks/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${TASKS:-500}
port=${PORT:-18289}
products="switchyard switchyard-agent-bench"
source scripts/two-replicas.sh
curl -fsS -o /dev/null -X POST "$a/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"bench-trivial","display_name":"Trivial","required_labels":["comfyui"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"bench/replicas"}}},"parameters":[]}'

echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); two replicas on PostgreSQL $(psql --version | awk '{print $3}')"
"$bin/switchyard-agent-bench" dispatch "$a" "$key" "$agent_key" 1 "$tasks" "$a"
"$bin/switchyard-agent-bench" dispatch "$a" "$key" "$agent_key" 1 "$tasks" "$b"
