# Sourced by benchmark scripts (dispatch-latency.sh, engine-ratio.sh): builds the release products, starts a
# release `serve` on the embedded default (SQLite, embedded store) in a throwaway data directory on $port, and
# sets bin, work, pids (killed on exit), base, team, key (sk-), agent_key (ak-) and token (an owner session).
# (A script that sources this more than once builds first and sets SWITCHYARD_BENCH_BUILT=1; SWITCHYARD_BENCH_BIN runs
# binaries built elsewhere, such as an earlier commit's, for a before/after.)
if [ -z "${SWITCHYARD_BENCH_BUILT:-}" ]; then
  for product in switchyard switchyard-fake-comfyui switchyard-agent-bench; do swift build -c release --product $product >/dev/null 2>&1; done
fi
bin=${SWITCHYARD_BENCH_BIN:-$(swift build -c release --show-bin-path)}
work=$(mktemp -d)
pids=""
trap 'kill $pids 2>/dev/null || true; rm -rf "$work"' EXIT
SWITCHYARD_S3_EMBEDDED_PORT=$((port + 1)) SWITCHYARD_LOG_LEVEL=warning "$bin/switchyard" serve --data-dir "$work/data" --port "$port" \
  >"$work/serve.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
base="http://127.0.0.1:$port"
read -r email password team key agent_key <<<"$(python3 -c "import json;b=json.load(open('$work/data/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'],b['integration_key'],b['agent_key'])")"
token=$(curl -fsS -X POST "$base/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" | python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
