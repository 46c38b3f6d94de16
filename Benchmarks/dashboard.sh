#!/usr/bin/env bash
# The dashboard's figures (docs/performance.md): server time for the tasks page with 10,000 tasks in the team
# (first page, a deep page, filtered), the size of its JavaScript, and an open tasks page in headless Chromium
# while tasks change state at about 1,000 per second (its longest frame and main-thread long tasks).
# Release build, embedded default (SQLite + embedded store), no agent (submitted tasks wait). Needs Chromium and
# Playwright for Python as scripts/browser-check.sh installs them. Usage: Benchmarks/dashboard.sh [tasks]
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PORT:-18480}
count=${1:-10000}
SWITCHYARD_BENCH_BUILT=${SWITCHYARD_BENCH_BUILT:-}
if [ -z "$SWITCHYARD_BENCH_BUILT" ]; then swift build -c release --product switchyard >/dev/null; SWITCHYARD_BENCH_BUILT=1; fi
# shellcheck source=serve-for-bench.sh
. Benchmarks/serve-for-bench.sh
echo "dashboard bench: $(git rev-parse --short HEAD), $count tasks, release build, SQLite"
echo "JavaScript: $(curl -fsS "$base/assets/dashboard.js" | wc -c) bytes uncompressed; CSS: $(curl -fsS "$base/assets/dashboard.css" | wc -c) bytes"
python3 Benchmarks/dashboard/bench.py "$base" "$work/data" "$count"
