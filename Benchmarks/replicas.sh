#!/usr/bin/env bash
# Dispatch across replicas: two release `serve` processes on one throwaway PostgreSQL (scripts/postgres-throwaway.sh),
# each with its own data directory. Submit on A → offer received by a simulated agent (wire protocol; it acks and
# completes at once), with the agent on A (same replica) and on B (the task crosses by LISTEN/NOTIFY), one task at
# a time. Before notifications the cross-replica figure was the rescan interval (≈1 s).
#
#   Benchmarks/replicas.sh
#   TASKS=2000 Benchmarks/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${TASKS:-500}
port=${PORT:-18289}
for product in switchyard switchyard-agent-bench; do swift build -c release --product $product >/dev/null 2>&1; done
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
pg_env=$(scripts/postgres-throwaway.sh)
PGDATA=$(echo "$pg_env" | sed -n 's/^PGDATA=//p')
database=$(echo "$pg_env" | sed -n 's/^SWITCHYARD_TEST_POSTGRES_URL=//p')
pids=""
trap 'kill $pids 2>/dev/null || true; scripts/postgres-throwaway.sh stop "$PGDATA" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
start_replica() { # name port
  SWITCHYARD_DATABASE_URL="$database" SWITCHYARD_S3_EMBEDDED_PORT=$(($2 + 1)) SWITCHYARD_LOG_LEVEL=warning \
    "$bin/switchyard" serve --data-dir "$work/$1" --port "$2" >"$work/$1.log" 2>&1 &
  pids="$pids $!"
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
}
start_replica a "$port"
start_replica b $((port + 10))
a="http://127.0.0.1:$port"
b="http://127.0.0.1:$((port + 10))"
read -r email password team key agent_key <<<"$(python3 -c "import json;b=json.load(open('$work/a/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'],b['integration_key'],b['agent_key'])")"
token=$(curl -fsS -X POST "$a/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" | python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
curl -fsS -o /dev/null -X POST "$a/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"bench-trivial","display_name":"Trivial","required_labels":["gpu","comfyui"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":64,"height":64,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"bench/replicas"}}},"parameters":[]}'

echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); two replicas on PostgreSQL $(psql --version | awk '{print $3}')"
"$bin/switchyard-agent-bench" dispatch "$a" "$key" "$agent_key" 1 "$tasks" "$a"
"$bin/switchyard-agent-bench" dispatch "$a" "$key" "$agent_key" 1 "$tasks" "$b"
