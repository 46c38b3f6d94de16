#!/usr/bin/env bash
# Model sync throughput: a model registered through the API (POST /models/presign, PUT, POST /models) is fetched
# from the embedded store by the agent's download path (ModelCache: streamed presigned GET, SHA-256 while it
# streams, fsync, rename into place) and, alternately, by plain curl of the same presigned URL into a file on the
# same disk. Prints each run, the medians, the ratio, and the agent side's peak RSS (it must not grow with SIZE).
#
#   Benchmarks/model-sync.sh                     # 1 GiB, 3 runs each
#   SIZE_MB=256 RUNS=5 Benchmarks/model-sync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
port=${PORT:-18389}
if [ -z "${SWITCHYARD_BENCH_BUILT:-}" ]; then
  swift build -c release --product switchyard-model-bench >/dev/null 2>&1
fi
# One presigned PUT for the upload (the default single-upload cap would ask for a multipart upload above 512 MiB).
export SWITCHYARD_UPLOADS_MAX_FILE_SIZE=5368709120
source Benchmarks/serve-for-bench.sh
size=$((size_mb * 1024 * 1024))
head -c "$size" /dev/urandom >"$work/model.bin"
digest="sha256:$(sha256sum "$work/model.bin" | cut -d' ' -f1)"
auth=(-H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json")
presigned=$(curl -fsS -X POST "$base/api/v1/models/presign" "${auth[@]}" \
  -d "{\"file_name\":\"bench.safetensors\",\"file_size\":$size,\"model_type\":\"checkpoints\",\"model_path\":\"bench.safetensors\"}")
read -r storage_key upload_url <<<"$(python3 -c "import sys,json;p=json.loads(sys.argv[1]);print(p['storage_key'],p['upload_url'])" "$presigned")"
headers=$(python3 -c "import sys,json;print(' '.join('-H \"%s: %s\"' % kv for kv in json.loads(sys.argv[1])['upload_headers'].items()))" "$presigned")
eval curl -fsS -X PUT "$headers" -T "$work/model.bin" "'$upload_url'" >/dev/null
registered=$(curl -fsS -o "$work/registered.json" -w '%{time_total}' -X POST "$base/api/v1/models" "${auth[@]}" -d "{\"display_name\":\"bench\",\"model_type\":\"checkpoints\",\"model_path\":\"bench.safetensors\",\"storage_key\":\"$storage_key\",\"file_size\":$size,\"file_hash\":\"$digest\"}")
model_id=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['id'])" "$work/registered.json")
# Above models.verifyInlineMaxBytes the answer comes at once and the hash is checked in the background: how long
# until the model is active (this script asks every 50 ms).
verified=$(python3 - "$base/api/v1/models/$model_id" "$token" "$team" <<'PY'
import json, sys, time, urllib.request
url, token, team = sys.argv[1:4]
start = time.monotonic()
while True:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "X-Team-ID": team})
    status = json.load(urllib.request.urlopen(request))["model_status"]
    if status != "verifying":
        print(f"{time.monotonic() - start:.2f} s ({status})")
        break
    time.sleep(0.05)
PY
)
echo "registration of ${size_mb} MiB with file_hash answered in ${registered} s; active after a further ${verified}"
url=$("$bin/switchyard-model-bench" presign "$work/data/bootstrap.json" "$storage_key")

echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); model ${size_mb} MiB from the embedded store on loopback, written to $(df --output=fstype "$work" | tail -1)"
agent=()
plain=()
for run in $(seq 1 "$runs"); do
  rm -rf "$work/cache" "$work/curl.bin"
  read -r seconds rate rss transferred <<<"$("$bin/switchyard-model-bench" fetch "$url" "$size" "$digest" "$work/cache")"
  [ "$transferred" = "$size" ] || { echo "agent transferred $transferred of $size bytes" >&2; exit 1; }
  agent+=("$rate")
  curl_rate=$(curl -fsS -o "$work/curl.bin" -w '%{speed_download}' "$url" | python3 -c "import sys;print(f'{float(sys.stdin.read())/1e6:.1f}')")
  sync -f "$work/curl.bin" 2>/dev/null || sync
  plain+=("$curl_rate")
  echo "run $run: agent $rate MB/s (${seconds} s, peak RSS ${rss} MiB), curl $curl_rate MB/s"
done
python3 - "${agent[*]}" "${plain[*]}" <<'PY'
import statistics, sys
agent = [float(x) for x in sys.argv[1].split()]
plain = [float(x) for x in sys.argv[2].split()]
a, p = statistics.median(agent), statistics.median(plain)
print(f"median: agent {a:.1f} MB/s, curl {p:.1f} MB/s, agent/curl {100 * a / p:.0f} %")
PY
