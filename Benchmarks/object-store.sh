#!/usr/bin/env bash
# Object-store figures of a release `serve` with the embedded S3 store, load generators on the same machine:
#  1. presigns/s: the signing itself in process (switchyard-bench), then POST /api/v1/r/files/presign over
#     HTTP with an sk- key (auth, validation, key, SigV4) next to the no-op ceiling (GET /healthz), wrk -t1;
#  2. PUT throughput of the embedded store (presigned PUT with Content-Length and If-None-Match signed, body
#     hashed, fsync, atomic publish) for 1 MB and 100 MB objects, sent by curl, next to raw disk writes of the
#     same sizes on the same file system (dd … conv=fsync).
# Needs wrk and curl.
#
#   Benchmarks/object-store.sh
#   SMALL_COUNT=200 LARGE_COUNT=5 Benchmarks/object-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
small_count=${SMALL_COUNT:-100}
large_count=${LARGE_COUNT:-3}
swift build -c release --product switchyard >/dev/null 2>&1
swift build -c release --product switchyard-bench >/dev/null 2>&1
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-objects.XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(git rev-parse --short HEAD), data on $(df -P "$work" | awk 'NR==2 {print $1}')"
echo "== presigns, in process"
"$bin/switchyard-bench"

port=$((18100 + RANDOM % 800))
SWITCHYARD_S3_EMBEDDED_PORT=$((port + 1)) "$bin/switchyard" serve --data-dir "$work/data" --port "$port" --log-level warning \
  >"$work/serve.log" 2>&1 &
pid=$!
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
base="http://127.0.0.1:$port/api/v1"
key=$(python3 -c "import json;print(json.load(open('$work/data/bootstrap.json'))['integration_key'])")

echo "== presigns over HTTP (wrk -t1 -c32 -d5s)"
cat >"$work/presign.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"file_name":"photo.png","file_size":1048576,"content_type":"image/png"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
ceiling=$(wrk -t1 -c32 -d5s "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {print $2}')
presigns=$(wrk -t1 -c32 -d5s -s "$work/presign.lua" "$base/r/files/presign" | tee "$work/wrk.out" | awk '/Requests\/sec/ {print $2}')
grep -q "Non-2xx" "$work/wrk.out" && { echo "presign answered errors:"; cat "$work/wrk.out"; exit 1; }
printf "no-op ceiling %10s req/s\npresign       %10s req/s\n" "$ceiling" "$presigns"

# Writes a curl config that uploads $2 (of $3 bytes) $1 times, each to its own presigned URL.
upload_config() {
  local count=$1 file=$2 size=$3 config=$4
  : >"$config"
  for _ in $(seq 1 "$count"); do
    curl -fsS -X POST "$base/r/files/presign" -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
      -d "{\"file_name\":\"blob.bin\",\"file_size\":$size,\"content_type\":\"application/octet-stream\"}" |
      python3 -c "import sys,json;p=json.load(sys.stdin);print('next\nupload-file = \"$file\"\nurl = \"'+p['upload_url']+'\"\nheader = \"If-None-Match: *\"\noutput = /dev/null\nwrite-out = \"%{http_code}\\\\n\"')" >>"$config"
  done
  sed -i '1d' "$config"  # no "next" before the first transfer
}

seconds() { python3 -c "import sys;print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$1" "$2"; }
mbps() { python3 -c "import sys;print(f'{float(sys.argv[1])/1048576/float(sys.argv[2]):.0f}')" "$1" "$2"; }

echo "== PUT throughput: embedded store vs dd conv=fsync on the same file system"
printf "%-8s %6s %14s %14s %8s\n" size count "dd MB/s" "store MB/s" ratio
for spec in "1048576 $small_count" "104857600 $large_count"; do
  read -r size count <<<"$spec"
  head -c "$size" /dev/urandom >"$work/source.bin"
  mkdir -p "$work/dd"
  start=$(date +%s.%N)
  for i in $(seq 1 "$count"); do dd if="$work/source.bin" of="$work/dd/$i" bs=1M conv=fsync status=none; done
  dd_seconds=$(seconds "$start" "$(date +%s.%N)")
  rm -rf "$work/dd"
  upload_config "$count" "$work/source.bin" "$size" "$work/uploads.curl"
  start=$(date +%s.%N)
  curl -sS -K "$work/uploads.curl" -X PUT >"$work/codes"
  store_seconds=$(seconds "$start" "$(date +%s.%N)")
  ok=$(grep -c '^200$' "$work/codes" || true)
  [ "$ok" = "$count" ] || { echo "uploads answered: $(sort "$work/codes" | uniq -c)"; exit 1; }
  dd_rate=$(mbps $((size * count)) "$dd_seconds")
  store_rate=$(mbps $((size * count)) "$store_seconds")
  printf "%-8s %6s %14s %14s %7s%%\n" "$((size / 1048576)) MB" "$count" "$dd_rate" "$store_rate" "$(python3 -c "print(round(100*$store_rate/$dd_rate))")"
done
