"""Seeds tasks, times the tasks page, then watches an open page in Chromium under ~1,000 changes per second."""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import requests

base, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
boot = json.load(open(os.path.join(data, "bootstrap.json")))
api = base + "/api/v1"
sk = {"Authorization": "Bearer " + boot["integration_key"]}
session = requests.post(api + "/auth/login", json={"email_address": boot["email_address"], "password": boot["password"]}).json()["access_token"]
owner = {"Authorization": "Bearer " + session, "X-Team-ID": boot["team_id"]}
graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}
workflows = []
for slug in ("bench-a", "bench-b"):
    body = {"workflow_slug": slug, "display_name": slug, "workflow_json": graph,
            "parameters": [{"key": "color", "node_id": "1", "field": "color", "type": "number", "default": 0}]}
    workflows.append(requests.post(api + "/workflows/import", headers=owner, json=body).json()["id"])


def submit(total, threads=8):
    """Submits `total` runs over `threads` connections; returns the seconds it took."""
    per = total // threads
    started = time.perf_counter()

    def worker(index):
        s = requests.Session()
        for n in range(per):
            r = s.post(f"{api}/r/workflows/{workflows[n % 2]}/run", headers=sk, json={"parameters": {"color": n}})
            assert r.status_code == 202, r.text

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started


took = submit(count)
print(f"seeded {count} tasks in {took:.1f} s ({count / took:.0f}/s)")

# Sign in as a browser does, then time pages over one keep-alive connection.
form = urllib.parse.urlencode({"email_address": boot["email_address"], "password": boot["password"]})
signed = requests.post(base + "/login", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
cookie = signed.headers["Set-Cookie"].split(";")[0]
host = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(host.hostname, host.port)


def timed(path, runs=200):
    samples = []
    for _ in range(runs + 10):
        begun = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()
        body = response.read()
        samples.append((time.perf_counter() - begun) * 1000)
        assert response.status == 200, (path, response.status, body[:200])
    samples = sorted(samples[10:])
    return statistics.median(samples), samples[int(len(samples) * 0.95)], len(body)


pages = count // 25
for label, path in [("first page", "/tasks"), (f"page {pages // 2}", f"/tasks?current_page={pages // 2}"),
                    ("last page", f"/tasks?current_page={pages}"), ("by workflow", f"/tasks?workflow_id={workflows[0]}"),
                    ("by status", "/tasks?status=waiting"), ("a task", "/tasks/" + requests.get(api + "/r/tasks?per_page=1", headers=sk).json()["task_list"][0]["id"])]:
    p50, p95, size = timed(path)
    print(f"  {label:<12} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({size} bytes)")

# An open tasks page while tasks change state at ~1,000/s.
from playwright.sync_api import sync_playwright

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"])
    context = browser.new_context()
    context.add_cookies([{"name": "switchyard_session", "value": cookie.split("=", 1)[1], "url": base}])
    page = context.new_page()
    page.goto(base + "/tasks")
    page.wait_for_function("() => document.getElementById('live-state').textContent === 'live'")
    page.evaluate("""() => {
        window.__frames = []; window.__long = []; window.__events = {task: 0, refresh: 0};
        new PerformanceObserver(list => { for (const e of list.getEntries()) window.__long.push(e.duration) }).observe({type: 'longtask', buffered: false});
        let last = performance.now();
        const tick = now => { window.__frames.push(now - last); last = now; requestAnimationFrame(tick) };
        requestAnimationFrame(tick);
    }""")
    # wrk submits as fast as the server takes runs (each a new task: created, then waiting).
    lua = os.path.join(data, "run.lua")
    open(lua, "w").write('wrk.method = "POST"\nwrk.body = \'{"parameters":{"color":7}}\'\n'
                         'wrk.headers["Content-Type"] = "application/json"\n'
                         f'wrk.headers["Authorization"] = "Bearer {boot["integration_key"]}"\n')
    before = requests.get(api + "/r/tasks?per_page=1", headers=sk).json()["page_meta"]["total_count"]
    begun = time.perf_counter()
    subprocess.run(["wrk", "-t", "2", "-c", "8", "-d", "5s", "-s", lua, f"{api}/r/workflows/{workflows[0]}/run"], check=True, capture_output=True)
    took = time.perf_counter() - begun
    burst = requests.get(api + "/r/tasks?per_page=1", headers=sk).json()["page_meta"]["total_count"] - before
    page.wait_for_timeout(1500)
    frames = page.evaluate("window.__frames")
    long_tasks = page.evaluate("window.__long")
    rows = page.evaluate("document.querySelectorAll('#task-rows tr').length")
    print(f"open tasks page, {burst} tasks submitted in {took:.1f} s ({burst / took:.0f} changes/s, each a new task):")
    print(f"  frames {len(frames)}, longest {max(frames):.0f} ms, p99 {sorted(frames)[int(len(frames) * 0.99)]:.0f} ms; "
          f"long tasks {len(long_tasks)}, longest {max(long_tasks, default=0):.0f} ms; rows on the page {rows}")
    browser.close()
