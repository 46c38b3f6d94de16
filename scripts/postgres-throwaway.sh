#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks (run as root; installs the
# server from Debian if it is missing). Prints SWITCHYARD_TEST_POSTGRES_URL=... and PGDATA=... on stdout.
# Stop it with: scripts/postgres-throwaway.sh stop PGDATA; restart it fast (as chaos.sh does) with
# scripts/postgres-throwaway.sh restart PGDATA.
set -euo pipefail

if [ "${1:-}" = "restart" ]; then
  pgdata=${2:?usage: postgres-throwaway.sh restart PGDATA}
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -m fast -w restart >/dev/null
  exit 0
fi

if [ "${1:-}" = "stop" ]; then
  pgdata=${2:?usage: postgres-throwaway.sh stop PGDATA}
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pgdata"
  exit 0
fi

port=${PGPORT:-55432}
# Skip ports something else already listens on (a cluster left by an earlier run, say).
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
user=switchyard
password=switchyard-test
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdata=$(mktemp -d /tmp/switchyard-pg.XXXXXX)
chown postgres:postgres "$pgdata"
chmod 700 "$pgdata"
pwfile=$(mktemp)
echo "$password" > "$pwfile"
chown postgres "$pwfile"
runuser -u postgres -- "$pgbin/initdb" -D "$pgdata" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 --no-instructions >/dev/null
rm -f "$pwfile"
# Durability settings are relaxed (this cluster only ever holds test data) unless PG_DURABLE=1, which keeps
# PostgreSQL's defaults (fsync, synchronous_commit) for benchmarks that must count real commits.
relaxed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${PG_DURABLE:-0}" = "1" ] && relaxed=""
runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdata $relaxed -c max_connections=300" \
  start >/dev/null
PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U "$user" -d postgres -Atc "CREATE DATABASE switchyard_test" >/dev/null
echo "PGDATA=$pgdata"
echo "SWITCHYARD_TEST_POSTGRES_URL=postgres://$user:$password@127.0.0.1:$port/switchyard_test?sslmode=disable"
