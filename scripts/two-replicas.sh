# Sourced by Benchmarks/replicas.sh and scripts/chaos.sh: builds the release products named in $products, starts a
# throwaway PostgreSQL and two `serve` replicas on it (A on $port, B on $port + 10, sharing one data directory, each
# with its own embedded store), and imports nothing. Sets bin, work, database, PGDATA, a, b, replica_pid,
# replica_port, team, key (sk-), agent_key (ak-), token (an owner session), and start_replica NAME (to restart one).
# Extra processes go in $pids; everything is stopped on exit unless KEEP is set (KEEP=running also leaves the
# processes running); REPLICA_LOG_LEVEL sets the replicas' log level (default warning).
[ -n "${SWITCHYARD_BENCH_BIN:-}" ] || for product in $products; do swift build -c release --product "$product" >/dev/null 2>&1; done
bin=${SWITCHYARD_BENCH_BIN:-$(swift build -c release --show-bin-path)}
work=$(mktemp -d)
pg_env=$(scripts/postgres-throwaway.sh)
PGDATA=$(echo "$pg_env" | sed -n 's/^PGDATA=//p')
database=$(echo "$pg_env" | sed -n 's/^SWITCHYARD_TEST_POSTGRES_URL=//p')
pids=""
declare -A replica_pid replica_port
replica_port[a]=$port
replica_port[b]=$((port + 10))
cleanup() {
  if [ "${KEEP:-}" = running ]; then echo "kept running: replicas $a $b (pids ${replica_pid[a]:-} ${replica_pid[b]:-} $pids), $work, $database"; return; fi
  kill $pids "${replica_pid[a]:-}" "${replica_pid[b]:-}" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept: $work (logs, data); PostgreSQL $database (stop: scripts/postgres-throwaway.sh stop $PGDATA)"; return; fi
  scripts/postgres-throwaway.sh stop "$PGDATA" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
start_replica() { # name
  SWITCHYARD_DATABASE_URL="$database" SWITCHYARD_S3_EMBEDDED_PORT=$((replica_port[$1] + 1)) SWITCHYARD_LOG_LEVEL=${REPLICA_LOG_LEVEL:-warning} \
    "$bin/switchyard" serve --data-dir "$work/data" --port "${replica_port[$1]}" >>"$work/$1.log" 2>&1 &
  replica_pid[$1]=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:${replica_port[$1]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
}
start_replica a
start_replica b
a="http://127.0.0.1:${replica_port[a]}"
b="http://127.0.0.1:${replica_port[b]}"
read -r email password team key agent_key <<<"$(python3 -c "import json;b=json.load(open('$work/data/bootstrap.json'));print(b['email_address'],b['password'],b['team_id'],b['integration_key'],b['agent_key'])")"
token=$(curl -fsS -X POST "$a/api/v1/auth/login" -d "{\"email_address\":\"$email\",\"password\":\"$password\"}" | python3 -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
