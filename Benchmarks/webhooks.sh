#!/usr/bin/env bash
# Webhook delivery of a release `serve` (SQLite, embedded store) to a receiver on the same machine:
#  - delay: from the cancel request that ends a task (task.cancelled webhook) to the receiver getting the POST,
#    one task at a time (an upper bound on "terminal state → first delivery attempt": it includes the cancel request);
#  - deliveries/s: N tasks are submitted, then all cancelled from 16 threads while the receiver holds its answers,
#    so the deliveries pile up in the outbox; then the receiver lets go and the rate is counted from that moment
#    to the last delivery (the sender's own throughput, not the rate tasks can be cancelled at).
# The receiver is Python's ThreadingHTTPServer (HTTP/1.1 keep-alive), answering 204 at once.
#
#   Benchmarks/webhooks.sh            # 200 delays, 2000 deliveries
#   SAMPLES=500 COUNT=10000 Benchmarks/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product switchyard >/dev/null 2>&1
bin=$(swift build -c release --show-bin-path)/switchyard
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$((18900 + RANDOM % 500))
"$bin" serve --data-dir "$work/data" --port "$port" --log-level warning --allow-insecure-webhooks >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(git rev-parse --short HEAD)"
python3 - "$port" "$work/data/bootstrap.json" "${SAMPLES:-200}" "${COUNT:-2000}" <<'PY'
import http.client, http.server, json, sys, threading, time, statistics
port, bootstrap, samples, count = int(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
received = {}
lock = threading.Condition()
release = threading.Event(); release.set()
class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        release.wait()
        now = time.perf_counter()
        task = json.loads(body)["task_id"]
        with lock:
            received.setdefault(task, now)
            lock.notify_all()
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()

local = threading.local()
def call(method, path, body=None, token=None, team=None):
    if not hasattr(local, "c"): local.c = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    if token: headers["Authorization"] = "Bearer " + token
    if team: headers["X-Team-ID"] = team
    local.c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = local.c.getresponse(); data = r.read()
    return r.status, (json.loads(data) if data else {})
email, password, team, key = bootstrap["email_address"], bootstrap["password"], bootstrap["team_id"], bootstrap["integration_key"]
_, login = call("POST", "/api/v1/auth/login", {"email_address": email, "password": password})
session = login["access_token"]
graph = json.load(open("Tests/Fixtures/comfyui/a_empty_invert_save.json"))
status, _ = call("POST", "/api/v1/workflows/import", {"workflow_slug": "invert", "display_name": "Invert", "workflow_json": graph, "required_labels": ["gpu"], "parameters": []}, session, team)
assert status in (200, 201), status
status, hook = call("POST", "/api/v1/webhooks", {"display_name": "bench", "webhook_url": f"http://127.0.0.1:{server.server_port}/hook", "webhook_events": ["task.cancelled"]}, session, team)
assert status == 201, hook
def submit():
    status, body = call("POST", "/api/v1/r/workflows/slug/invert/run", {"parameters": {}}, key)
    assert status == 202, body
    return body["task_id"]

delays = []
for _ in range(samples):
    task = submit()
    start = time.perf_counter()
    status, _ = call("POST", f"/api/v1/r/tasks/{task}/cancel", {}, key)
    assert status == 200
    with lock:
        while task not in received: lock.wait(5)
        delays.append((received[task] - start) * 1000)
delays.sort()
p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
print(f"cancel → delivery received, {samples} one at a time: p50 {p(0.5):.2f} ms, p90 {p(0.9):.2f} ms, p99 {p(0.99):.2f} ms")

tasks = []
def submit_many(n):
    mine = [submit() for _ in range(n)]
    with lock: tasks.extend(mine)
threads = [threading.Thread(target=submit_many, args=(count // 16,)) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
before = len(received)
def cancel_many(chunk):
    for task in chunk: call("POST", f"/api/v1/r/tasks/{task}/cancel", {}, key)
chunks = [tasks[i::16] for i in range(16)]
threads = [threading.Thread(target=cancel_many, args=(c,)) for c in chunks]
release.clear()
cancel_start = time.perf_counter()
[t.start() for t in threads]; [t.join() for t in threads]
cancelled = time.perf_counter()
start = time.perf_counter()
release.set()
with lock:
    while len(received) < before + len(tasks): 
        if not lock.wait(30): break
    times = sorted(received[t] for t in tasks if t in received)
print(f"{len(times)} of {len(tasks)} deliveries; cancels took {cancelled - cancel_start:.2f} s ({len(tasks) / (cancelled - cancel_start):.0f}/s) "
      f"with the receiver holding; then {len(times) / (times[-1] - start):.0f} deliveries/s from its release to the last delivery")
_, log = call("GET", f"/api/v1/webhooks/{hook['id']}/deliveries?per_page=1", None, session, team)
print(f"delivery log total: {log['page_meta']['total_count']}")
PY
