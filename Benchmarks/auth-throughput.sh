#!/usr/bin/env bash
# Requests/s of a release `serve` on SQLite, load generator on the same machine: the no-op ceiling
# (/healthz) next to an authenticated read (/api/v1/users/me with a session token: JWT check, user and
# membership reads). Loopback only, bounded: wrk for 5 s per route. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
swift build -c release --product switchyard >/dev/null 2>&1
bin=$(swift build -c release --show-bin-path)/switchyard
dir=$(mktemp -d)
port=${BENCH_PORT:-18091}
"$bin" serve --data-dir "$dir/data" --port "$port" --log-level warning >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.01; done
base="http://127.0.0.1:$port"
read -r email password <<<"$(python3 -c "import json;b=json.load(open('$dir/data/bootstrap.json'));print(b['email_address'],b['password'])")"
token=$(curl -fsS -X POST "$base/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" |
  python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")

rate() { wrk -t1 -c32 -d5s "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "machine: $(nproc) cores; wrk -t1 -c32 -d5s on loopback"
echo "GET /healthz (no-op ceiling):              $(rate "$base/healthz") req/s"
echo "GET /api/v1/users/me (session, 2 reads):    $(rate -H "Authorization: Bearer $token" "$base/api/v1/users/me") req/s"
