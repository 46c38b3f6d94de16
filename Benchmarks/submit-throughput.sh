#!/usr/bin/env bash
# Run submissions per second of a release `serve`, load generator on the same machine: for SQLite and for
# PostgreSQL (a throwaway cluster with durable defaults: fsync and synchronous_commit on), the no-op ceiling
# (GET /healthz) next to POST /api/v1/r/workflows/slug/text-to-image/run with an sk- key (auth, workflow
# lookup, parameter validation and injection into the recorded txt2img graph, durable insert of task + first
# event). After each run it checks that every 202 left a task behind (the tasks column counts all so far).
# Needs wrk (apt-get install wrk).
#
#   Benchmarks/submit-throughput.sh            # both backends
#   BACKENDS=sqlite Benchmarks/submit-throughput.sh
#   DURATION=10s CONNECTIONS="64 256" Benchmarks/submit-throughput.sh   # one row per backend and concurrency
#   SWITCHYARD_BENCH_BIN=/tmp/bins/abc1234 Benchmarks/submit-throughput.sh   # a binary built elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
duration=${DURATION:-5s}
concurrencies=${CONNECTIONS:-32 128}
backends=${BACKENDS:-sqlite postgres}
# SWITCHYARD_BENCH_BIN: a folder holding a release `switchyard` to measure instead of building this checkout's
# (side-by-side runs of two commits with one copy of this script).
if [ -n "${SWITCHYARD_BENCH_BIN:-}" ]; then
  bin=$SWITCHYARD_BENCH_BIN/switchyard
else
  swift build -c release --product switchyard >/dev/null 2>&1
  bin=$(swift build -c release --show-bin-path)/switchyard
fi
work=$(mktemp -d)
pid=""
pgdata=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$pgdata" ] && scripts/postgres-throwaway.sh stop "$pgdata" || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/run.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"parameters":{"prompt":"a sunset over mountains, 4k","steps":30}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SWITCHYARD_KEY")
LUA

python3 - "$work/import.json" <<'PY'
import json, sys
graph = json.load(open("Tests/Fixtures/comfyui/c1_txt2img_missing_checkpoint.json"))
body = {
    "workflow_slug": "text-to-image", "display_name": "Text to image", "workflow_json": graph,
    "required_labels": ["gpu"], "parameters": [
        {"key": "prompt", "node_id": "6", "field": "text", "type": "string", "required": True},
        {"key": "negative", "node_id": "7", "field": "text", "type": "string", "default": "blurry"},
        {"key": "steps", "node_id": "3", "field": "steps", "type": "number", "min": 1, "max": 150, "default": 20},
        {"key": "seed", "node_id": "3", "field": "seed", "type": "number"},
        {"key": "width", "node_id": "5", "field": "width", "type": "number", "min": 64, "max": 2048, "default": 512},
        {"key": "sampler", "node_id": "3", "field": "sampler_name", "type": "select", "options": ["euler", "dpmpp_2m"], "default": "euler"},
    ]}
json.dump(body, open(sys.argv[1], "w"))
PY

rate() { wrk -t1 -c"$1" -d"$duration" "${@:2}" >"$work/wrk.out"; awk '/Requests\/sec/ {print $2}' "$work/wrk.out"; }
errors() { awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.out"; }
# serve's CPU time so far, in clock ticks (user + system; SQLite's work included, PostgreSQL's not).
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

echo "machine: $(nproc) cores, ${SWITCHYARD_BENCH_BIN:-$(git rev-parse --short HEAD)}; wrk -t1 -d$duration on loopback"
printf "%-10s %12s %12s %14s %8s %14s %10s\n" backend connections "no-op req/s" "submissions/s" "ratio" "serve µs/sub" "tasks"
for backend in $backends; do
  port=$((18100 + RANDOM % 800))
  args=(serve --data-dir "$work/data-$backend" --port "$port" --log-level warning)
  if [ "$backend" = postgres ]; then
    eval "$(PG_DURABLE=1 scripts/postgres-throwaway.sh | sed 's/^/export /')"
    pgdata=$PGDATA
    args+=(--database-url "$SWITCHYARD_TEST_POSTGRES_URL")
  fi
  "$bin" "${args[@]}" >"$work/serve-$backend.log" 2>&1 &
  pid=$!
  until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
  base="http://127.0.0.1:$port"
  read -r email password key <<<"$(python3 -c "import json;b=json.load(open('$work/data-$backend/bootstrap.json'));print(b['email_address'],b['password'],b['integration_key'])")"
  login=$(curl -fsS -X POST "$base/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}")
  token=$(python3 -c "import sys,json;print(json.loads(sys.argv[1])['access_token'])" "$login")
  team=$(python3 -c "import json;print(json.load(open('$work/data-$backend/bootstrap.json'))['team_id'])")
  curl -fsS -X POST "$base/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" \
    -H "Content-Type: application/json" --data-binary "@$work/import.json" >/dev/null

  export SWITCHYARD_KEY=$key
  accepted=0
  for connections in $concurrencies; do
    ceiling=$(rate "$connections" "$base/healthz")
    before=$(cpu)
    submissions=$(rate "$connections" -s "$work/run.lua" "$base/api/v1/r/workflows/slug/text-to-image/run")
    # CPU per submission is steadier than the rate on a shared machine: a neighbour's load slows both sides alike.
    perSubmission=$(python3 -c "print(f'{($(cpu) - $before) * 1e6 / $(getconf CLK_TCK) / $(awk '/requests in/ {print $1}' "$work/wrk.out"):.0f}')")
    problems=$(errors)
    accepted=$((accepted + $(awk '/requests in/ {print $1}' "$work/wrk.out") - $(awk '/Non-2xx/ {print $NF}' "$work/wrk.out" | grep . || echo 0)))
    tasks=$(curl -fsS "$base/api/v1/r/tasks?per_page=1" -H "Authorization: Bearer $key" |
      python3 -c "import sys,json;print(json.load(sys.stdin)['page_meta']['total_count'])")
    ratio=$(python3 -c "print(f'{100*$submissions/$ceiling:.0f}%')")
    printf "%-10s %12s %12s %14s %8s %14s %10s\n" "$backend" "$connections" "$ceiling" "$submissions" "$ratio" "$perSubmission" "$tasks"
    [ -n "$problems" ] && echo "  wrk reported: $problems"
    # wrk stops counting with requests still in flight, so the server may hold a few more tasks, never fewer.
    [ "$tasks" -ge "$accepted" ] || echo "  LOST: wrk saw $accepted accepted submissions, the server holds $tasks tasks"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  if [ -n "$pgdata" ]; then scripts/postgres-throwaway.sh stop "$pgdata"; pgdata=""; fi
done
