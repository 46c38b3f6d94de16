#!/usr/bin/env bash
# Starts `switchyard serve` on an empty data directory, walks the README's first steps with curl, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product switchyard >/dev/null
bin=$(swift build --show-bin-path)/switchyard
dir=$(mktemp -d)
port=${SMOKE_PORT:-18089}
"$bin" serve --data-dir "$dir/data" --port "$port" >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
base="http://127.0.0.1:$port/api/v1"
read -r email password team <<<"$(python3 -c "import json;b=json.load(open('$dir/data/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'])")"
token=$(curl -fsS -X POST "$base/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" | python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
curl -fsS "$base/users/me" -H "Authorization: Bearer $token" >/dev/null
created=$(curl -fsS -X POST "$base/credentials" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -d '{"kind":"integration","display_name":"smoke"}')
id=$(echo "$created" | python3 -c "import sys,json;print(json.load(sys.stdin)['id'])")
curl -fsS -X DELETE "$base/credentials/$id" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -o /dev/null -w '%{http_code}\n' | grep -q 204
grep -q "first start" "$dir/serve.log"
echo "smoke: serve, bootstrap, login, users/me, create and revoke a key: ok"
