#!/usr/bin/env bash
# Measures `switchyard serve`: cold start to a ready /readyz (first start with bootstrap, then restarts) and
# resident memory once idle. Usage: Benchmarks/startup.sh [debug|release]   (default release)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-release}
swift build -c "$config" --product switchyard >/dev/null
bin=$(swift build -c "$config" --show-bin-path)/switchyard
dir=$(mktemp -d)
port=${BENCH_PORT:-18090}
trap 'pkill -f "$bin serve --data-dir $dir" 2>/dev/null || true; rm -rf "$dir"' EXIT

now_ms() { date +%s%3N; }
# Sets $pid and $elapsed (ms from exec to the first ready /readyz). Not run in a subshell, so $pid survives.
start_once() {
  local started
  started=$(now_ms)
  "$bin" serve --data-dir "$dir/data" --port "$port" --log-level warning >>"$dir/serve.log" 2>&1 &
  pid=$!
  until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.005; done
  elapsed=$(( $(now_ms) - started ))
}

echo "build: $config ($(uname -m), $(nproc) cores)"
start_once
first=$elapsed
sleep 2
rss_first=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null || true
restarts=()
for _ in 1 2 3 4 5; do
  start_once
  restarts+=("$elapsed")
  kill $pid; wait $pid 2>/dev/null || true
done
start_once
sleep 2
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
sorted=$(printf '%s\n' "${restarts[@]}" | sort -n | tr '\n' ' ')
echo "first start (migrate + bootstrap, bcrypt cost 12): ${first} ms"
echo "restart to ready, 5 runs (ms, sorted): ${sorted}"
echo "idle RSS after first start: $((rss_first / 1024)) MiB; after a restart: $((rss_idle / 1024)) MiB"
