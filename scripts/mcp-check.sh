#!/usr/bin/env bash
# Checks the MCP server with the official MCP Python client (PyPI `mcp`, in a throwaway venv): starts `switchyard
# serve` on a fresh data directory, the fake ComfyUI and an agent, imports the example workflow with the CLI, then
# runs scripts/mcp_client_check.py. CI runs it (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
swift build --product switchyard >/dev/null
swift build --product switchyard-fake-comfyui >/dev/null
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
pids=""
trap 'kill $pids 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "mcp==2.3.*"

port=${MCP_CHECK_PORT:-18097}
"$bin/switchyard-fake-comfyui" $((port + 2)) >"$work/comfyui.log" 2>&1 &
pids="$pids $!"
"$bin/switchyard" serve --data-dir "$work/data" --port "$port" --s3-port $((port + 1)) >"$work/serve.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
server="http://127.0.0.1:$port"
# Not in a subshell: $! must be the agent itself, so the trap stops it.
SWITCHYARD_DATA_DIR="$work/data" "$bin/switchyard" agent --server "$server" --comfyui "http://127.0.0.1:$((port + 2))" \
  --agent-id mcp-check >"$work/agent.log" 2>&1 &
pids="$pids $!"
"$bin/switchyard" workflows import "$root/examples/workflows/invert.json" --server "$server" --data-dir "$work/data"
read -r key agent_key <<<"$(python3 -c "import json;b=json.load(open('$work/data/bootstrap.json'));print(b['integration_key'],b['agent_key'])")"
if ! "$work/venv/bin/python" "$root/scripts/mcp_client_check.py" "$server/api/v1/mcp" "$key" "$agent_key"; then
  tail -n 30 "$work/serve.log" "$work/agent.log" >&2
  exit 1
fi
