#!/usr/bin/env bash
# Chaos: two release `serve` replicas on one throwaway PostgreSQL (sharing a data directory, so their embedded
# stores serve the same objects), the fake ComfyUI, and one `switchyard agent` given both replicas' URLs. A steady
# stream of runs is submitted to both replicas; mid-stream one fault is injected (SCENARIO):
#   replica   the replica the agent is connected to is killed with `kill -9`, restarted 4 s later;
#   agent     the agent is killed with `kill -9`, restarted 2 s later (same agent id);
#   postgres  PostgreSQL is restarted fast (`pg_ctl restart -m fast`); submissions meanwhile must get 503.
# Prints accepted / refused (by status) / completed / failed / lost / run-twice, and how long each replica took to
# be ready again.
#
#   scripts/chaos.sh                          # SCENARIO=replica: 400 runs, one every 10 ms, fault after 1.5 s
#   SCENARIO=postgres RUNS=1000 KILL_AFTER=3 scripts/chaos.sh
#   KEEP=1 scripts/chaos.sh                   # leave the logs, the data directory and PostgreSQL running afterwards
#   SCENARIO=agent SLEEP=0.2 RUNS=150 scripts/chaos.sh   # each prompt runs 0.2 s in the fake ComfyUI (TestSleep),
#                                                        # so the killed agent holds work in ComfyUI when it dies
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-400}
kill_after=${KILL_AFTER:-1.5}
scenario=${SCENARIO:-replica}
port=${PORT:-18389}
products="switchyard switchyard-fake-comfyui switchyard-agent-bench"
source scripts/two-replicas.sh
if [ -n "${SLEEP:-}" ]; then
  graph='{"1":{"class_type":"EmptyImage","inputs":{"width":8,"height":8,"batch_size":1,"color":0}},"2":{"class_type":"TestSleep","inputs":{"value":["1",0],"seconds":'"$SLEEP"'}},"3":{"class_type":"SaveImage","inputs":{"images":["2",0],"filename_prefix":"chaos"}}}'
else
  graph='{"1":{"class_type":"EmptyImage","inputs":{"width":8,"height":8,"batch_size":1,"color":0}},"2":{"class_type":"SaveImage","inputs":{"images":["1",0],"filename_prefix":"chaos"}}}'
fi
curl -fsS -o /dev/null -X POST "$a/api/v1/workflows/import" -H "Authorization: Bearer $token" -H "X-Team-ID: $team" -H "Content-Type: application/json" \
  -d '{"workflow_slug":"chaos","display_name":"Chaos","required_labels":["gpu","comfyui"],"max_retries":2,"workflow_json":'"$graph"',"parameters":[{"key":"color","node_id":"1","field":"color","type":"number"}]}'

fake_port=$((port + 20))
"$bin/switchyard-fake-comfyui" "$fake_port" >"$work/fake.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do grep -q listening "$work/fake.log" && break; sleep 0.1; done
start_agent() {
  "$bin/switchyard" agent --server "$a,$b" --key "$agent_key" --comfyui "http://127.0.0.1:$fake_port" --agent-id chaos-gpu --capacity 2 \
    --log-level "${AGENT_LOG_LEVEL:-info}" >>"$work/agent.log" 2>&1 &
  agent_pid=$!
  pids="$pids $agent_pid"
}
start_agent
for _ in $(seq 1 50); do grep -q "connected to the gateway" "$work/agent.log" && break; sleep 0.1; done

# Submit to both replicas in turn; a replica that is down refuses (not accepted). Then follow every accepted task.
python3 - "$a" "$b" "$key" "$runs" "$work/accepted" <<'PY' &
import json, sys, time, urllib.error, urllib.request
a, b, key, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
accepted, refused = [], {}
for i in range(runs):
    base = (a, b)[i % 2]
    request = urllib.request.Request(f"{base}/api/v1/r/workflows/slug/chaos/run", data=json.dumps({"parameters": {"color": i}}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            accepted.append(json.load(response)["task_id"])
    except urllib.error.HTTPError as error:
        refused[str(error.code)] = refused.get(str(error.code), 0) + 1
    except Exception:
        refused["no answer"] = refused.get("no answer", 0) + 1
    time.sleep(0.01)
json.dump({"accepted": accepted, "refused": refused}, open(out, "w"))
PY
submitter=$!
sleep "$kill_after"
ready_within() { # name: seconds until /readyz answers 200
  local start=$(date +%s.%N)
  until curl -fsS "http://127.0.0.1:${replica_port[$1]}/readyz" >/dev/null 2>&1; do sleep 0.05; done
  python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')"
}
case "$scenario" in
replica)
  victim=a # the agent dials the first URL it was given
  echo "kill -9 replica $victim (the agent's) while runs are being submitted"
  kill -9 "${replica_pid[$victim]}"
  sleep 4
  start_replica "$victim"
  ;;
agent)
  echo "kill -9 the agent while runs are being submitted; restarted 2 s later"
  kill -9 "$agent_pid"
  sleep 2
  start_agent
  ;;
postgres)
  echo "PostgreSQL fast restart while runs are being submitted"
  scripts/postgres-throwaway.sh restart "$PGDATA"
  echo "PostgreSQL is back; ready again after: replica a $(ready_within a) s, replica b $(ready_within b) s"
  ;;
*) echo "SCENARIO must be replica, agent or postgres" >&2; exit 2 ;;
esac
wait "$submitter"

python3 - "$a" "$b" "$key" "$work/accepted" <<'PY'
import json, sys, time, urllib.request
a, b, key, path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
data = json.load(open(path))
pending, ended = set(data["accepted"]), {}
deadline = time.time() + 180
while pending and time.time() < deadline:
    for task in list(pending):
        request = urllib.request.Request(f"{b}/api/v1/r/tasks/{task}", headers={"Authorization": f"Bearer {key}"})
        try:
            status = json.load(urllib.request.urlopen(request, timeout=5))["task_status"]
        except Exception:
            continue
        if status in ("completed", "failed", "cancelled"):
            ended[task] = status
            pending.discard(task)
    time.sleep(0.5)
counts = {s: list(ended.values()).count(s) for s in ("completed", "failed", "cancelled")}
print(f"accepted {len(data['accepted'])} (refused, by status: {data['refused'] or 'none'}); completed {counts['completed']}, "
      f"failed {counts['failed']}, cancelled {counts['cancelled']}, lost (not ended after 180 s) {len(pending)}")
PY
"$bin/switchyard-agent-bench" prompts-per-task "http://127.0.0.1:$fake_port"
