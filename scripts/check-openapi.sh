#!/usr/bin/env bash
# Validates docs/openapi.yaml as OpenAPI 3.1 (PyPI's openapi-spec-validator, in a throwaway venv). CI runs it;
# the route-coverage test (ConventionsTests) checks that it lists exactly the server's routes.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==0.7.*" "PyYAML==6.*"
"$work/venv/bin/python" - <<'PY'
import yaml
from openapi_spec_validator import validate
document = yaml.safe_load(open("docs/openapi.yaml"))
assert document["openapi"].startswith("3.1"), document["openapi"]
validate(document)
print(f"docs/openapi.yaml: valid OpenAPI {document['openapi']}, {len(document['paths'])} paths")
PY
