#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis (PyPI, in a throwaway venv): `switchyard
# serve` on a fresh data directory, then two runs with a fixed seed and `--checks all` — one as the bootstrap
# owner's session (with X-Team-ID), one with the integration (sk-) key. Each must send at least
# FUZZ_MIN_REQUESTS requests (3,000; counted by the server's own /metrics) and find nothing: no 5xx, no status,
# content type or body the document does not list, no schema-valid request refused (scripts/schemathesis.toml
# lists the few rules a schema cannot say), no schema-invalid one accepted.
#
# Excluded, and only these: the operations that end the run's own identity or team — delete the team, transfer
# or leave it, change the password, sign out everywhere. Everything else, deletions included, is fuzzed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
examples=${FUZZ_MAX_EXAMPLES:-30}
minimum=${FUZZ_MIN_REQUESTS:-3000}
seed=${FUZZ_SEED:-1}
port=${FUZZ_PORT:-18777}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.*"
swift build --product switchyard >/dev/null
bin=$(swift build --show-bin-path)/switchyard

run() {
  local mode=$1
  shift
  rm -rf "$work/data"
  # Comfy Cloud keys are checked against serve itself (its /api/user is a quick 404: "not verified"), not the
  # internet, which CI does not reach.
  SWITCHYARD_CLOUD_COMFY_BASE_URL="http://127.0.0.1:$port" SWITCHYARD_S3_EMBEDDED_PORT=$((port + 1)) "$bin" serve --data-dir "$work/data" --port "$port" --log-level error >"$work/serve-$mode.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do [ -f "$work/data/bootstrap.json" ] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve-$mode.log"; echo "serve did not start (port $port taken?)"; exit 1; }
  local base="http://127.0.0.1:$port"
  local email password team key token
  read -r email password team key <<<"$(python3 -c "import json;b=json.load(open('$work/data/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'],b['integration_key'])")"
  token=$(curl -fsS -X POST "$base/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" |
    python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
  local auth=()
  if [ "$mode" = session ]; then auth=(-H "Authorization: Bearer $token" -H "X-Team-ID: $team"); else auth=(-H "Authorization: Bearer $key"); fi
  echo "== schemathesis, $mode: seed $seed, $examples examples per operation, --checks all"
  local status=0
  # From the scratch directory: schemathesis keeps a crash cache in its working directory and replays it first.
  (cd "$work" && "$work/venv/bin/schemathesis" --no-color --config-file "$root/scripts/schemathesis.toml" run "$base/api/v1/openapi.json" "${auth[@]}" \
    --checks all --max-examples "$examples" --seed "$seed" --suppress-health-check filter_too_much --exclude-tag dashboard \
    --exclude-path /api/v1/teams/current --exclude-path /api/v1/teams/current/transfer --exclude-path /api/v1/teams/current/leave \
    --exclude-path /api/v1/users/me/sign-out-everywhere --exclude-path /api/v1/users/me/password \
    >"$work/schemathesis-$mode.log" 2>&1) || status=$?
  grep -E "^(Failures|  ❌|Test cases|  [0-9]+ generated|=+ .* in )" "$work/schemathesis-$mode.log" || true
  local requests
  requests=$(curl -fsS "$base/metrics" | awk '/^switchyard_http_requests_total/ {sum += $NF} END {printf "%d", sum}')
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  if [ "$status" != 0 ]; then
    cat "$work/schemathesis-$mode.log"
    echo "schemathesis ($mode) found problems"
    exit 1
  fi
  if [ "$requests" -lt "$minimum" ]; then
    echo "schemathesis ($mode) sent $requests requests, fewer than $minimum: raise FUZZ_MAX_EXAMPLES"
    exit 1
  fi
  echo "fuzz ($mode): $requests requests answered, 0 failures: ok"
}

run session
run key
