#!/usr/bin/env bash
# Idle event streams: a release `serve` (SQLite, embedded store), one task waiting (no agent), and STREAMS clients
# each holding `GET /r/tasks/{id}/events` open. Prints serve's RSS before and with the streams, and its CPU while
# they idle (from /proc over 10 s). Streams wake on notifications, so idle ones should cost memory, not CPU.
#
#   Benchmarks/idle-streams.sh
#   STREAMS=2000 Benchmarks/idle-streams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${STREAMS:-10000}
port=${PORT:-18489}
ulimit -n 65536 2>/dev/null || true
source Benchmarks/serve-for-bench.sh
serve_pid=$(echo $pids | awk '{print $1}')
curl -fsS -o /dev/null -X POST "$base/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"idle","display_name":"Idle","required_labels":["comfyui"],"workflow_json":{"1":{"class_type":"EmptyImage","inputs":{"width":8,"height":8,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"idle"}}},"parameters":[]}'
task=$(curl -fsS -X POST "$base/api/v1/r/workflows/slug/idle/run" -H "Authorization: Bearer $key" -H "Content-Type: application/json" -d '{}' | python3 -c "import sys,json;print(json.load(sys.stdin)['task_id'])")
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$serve_pid/status; }
cpu() { awk '{print $14 + $15}' /proc/$serve_pid/stat; }
echo "machine: $(nproc) cores, $(git rev-parse --short HEAD); serve RSS with no stream: $(rss)"
python3 - "$port" "$key" "$task" "$streams" "$serve_pid" <<'PY'
import asyncio, os, sys, time
port, key, task, count, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
request = (f"GET /api/v1/r/tasks/{task}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n").encode()
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
async def main():
    opened = []
    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        await reader.readuntil(b"retry: 3000\n\n")
        opened.append((reader, writer))
    start = time.time()
    for batch in range(0, count, 500):
        await asyncio.gather(*(one() for _ in range(min(500, count - batch))))
    print(f"{len(opened)} streams open after {time.time() - start:.1f} s; serve RSS {rss():.0f} MiB")
    before, t0 = cpu(), time.time()
    await asyncio.sleep(10)
    used = cpu() - before
    print(f"idle for 10 s: serve used {used:.2f} CPU-seconds ({100 * used / (time.time() - t0):.1f} % of a core); RSS {rss():.0f} MiB")
    for _, writer in opened: writer.close()
asyncio.run(main())
PY
