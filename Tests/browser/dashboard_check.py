"""Browser tests of the dashboard: headless Chromium (the system's) driven by Playwright, against a running
`switchyard serve` with an agent and the fake ComfyUI (scripts/browser-check.sh starts them).

Usage: dashboard_check.py BASE_URL DATA_DIR ARTIFACTS_DIR
Every page visited is checked for duplicate ids and unlabelled controls, and photographed into ARTIFACTS_DIR.
"""
import json
import os
import re
import struct
import sys
import tempfile
import time
import zlib

import requests
from playwright.sync_api import expect, sync_playwright

BASE, DATA, ARTIFACTS = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = tempfile.mkdtemp(prefix="switchyard-browser-files-")
API = BASE + "/api/v1"
boot = json.load(open(os.path.join(DATA, "bootstrap.json")))
SK = {"Authorization": "Bearer " + boot["integration_key"]}
os.makedirs(ARTIFACTS, exist_ok=True)
expect.set_options(timeout=30_000)

GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "TestSleep", "inputs": {"value": ["2", 0], "seconds": 0.2}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "dashboard"}},
}

# The HTML rules every page keeps: unique ids; every visible control has a label (label[for], a wrapping label, or
# aria-label); every label[for] points at something.
AUDIT = """() => {
  const problems = [];
  const ids = new Map();
  for (const el of document.querySelectorAll('[id]')) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, n] of ids) if (n > 1) problems.push(`duplicate id "${id}" (${n} times)`);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.closest('template')) continue;
    const labelled = el.getAttribute('aria-label') || el.closest('label') ||
      (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`));
    if (!labelled) problems.push(`unlabelled ${el.tagName.toLowerCase()} name="${el.name}" id="${el.id}"`);
  }
  for (const label of document.querySelectorAll('label[for]')) {
    if (label.closest('template')) continue;
    if (!document.getElementById(label.htmlFor)) problems.push(`label for missing id "${label.htmlFor}"`);
  }
  for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) problems.push('img without alt');
  return problems;
}"""

shots = []

# In the page: counts the PUTs of each multipart part, and fails part 2 the first two times as a dropped connection
# would (the upload's one retry included).
FLAKY_PART_2 = """(() => {
  const parts = () => JSON.parse(sessionStorage.getItem('parts') || '{}');
  const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) { this.__url = url; return open.call(this, method, url, ...rest) };
  XMLHttpRequest.prototype.send = function (body) {
    const m = /partNumber=(\\d+)/.exec(this.__url || '');
    if (m) {
      const seen = parts();
      seen[m[1]] = (seen[m[1]] || 0) + 1;
      sessionStorage.setItem('parts', JSON.stringify(seen));
      if (m[1] === '2' && seen[m[1]] <= 2) { setTimeout(() => this.dispatchEvent(new ProgressEvent('error')), 0); return; }
    }
    return send.call(this, body);
  };
})()"""


def check(page, name):
    """Audits the page's HTML and saves a screenshot named `name`."""
    problems = page.evaluate(AUDIT)
    assert not problems, f"{name}: {problems}"
    path = os.path.join(ARTIFACTS, f"{len(shots) + 1:02d}-{name}.png")
    page.screenshot(path=path, full_page=True)
    # The page as the server sent it, for the HTML validator (scripts/browser-check.sh runs vnu over these).
    os.makedirs(os.path.join(ARTIFACTS, "html"), exist_ok=True)
    open(os.path.join(ARTIFACTS, "html", f"{len(shots) + 1:02d}-{name}.html"), "w").write(page.request.get(page.url).text())
    shots.append(path)
    print(f"  ok  {name}  ({page.url})")


def png(width=8, height=8):
    """A small RGB PNG, built by hand."""
    raw = b"".join(b"\x00" + bytes([200, 80, 20]) * width for _ in range(height))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def sign_in(page, email, password):
    page.goto(BASE + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/tasks$"))


def main():
    image = os.path.join(ARTIFACTS, "input.png")
    open(image, "wb").write(png())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"])
        owner = browser.new_context(viewport={"width": 1280, "height": 900})
        page = owner.new_page()
        page.on("dialog", lambda dialog: dialog.accept())

        print("sign in")
        sign_in(page, boot["email_address"], boot["password"])
        cookies = {c["name"]: c for c in owner.cookies()}
        session = cookies["switchyard_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict", session
        check(page, "tasks-empty")

        print("import a workflow by pasting its JSON, then mark two parameters")
        page.get_by_role("link", name="Workflows").click()
        check(page, "workflows")
        page.get_by_label("Name").fill("Invert a photo")
        expect(page.get_by_label("Slug (lowercase letters, digits, hyphens)")).to_have_value("invert-a-photo")
        page.get_by_label("Workflow JSON").fill(json.dumps(GRAPH))
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Invert a photo")
        workflow_url = page.url
        page.get_by_role("button", name="Add a parameter").click()
        page.get_by_role("button", name="Add a parameter").click()
        rows = page.locator("#param-rows .param-row")
        first, second = rows.nth(0), rows.nth(1)
        first.get_by_label("Key").fill("photo")
        first.get_by_label("Type").select_option("file")
        first.get_by_label("Label").fill("Photo")
        first.get_by_label("Node and input").select_option("1/image")
        first.get_by_label("Accept (file; e.g. image/*)").fill("image/*")
        first.get_by_label("Required").check()
        second.get_by_label("Key").fill("seconds")
        second.get_by_label("Type").select_option("number")
        second.get_by_label("Node and input").select_option("3/seconds")
        second.get_by_label("Default").fill("0.2")
        second.get_by_label("Min (numbers)").fill("0")
        second.get_by_label("Max (numbers)").fill("120")
        check(page, "workflow-editor")
        page.get_by_role("button", name=re.compile("Save as version 2")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("v2")
        expect(page.locator("section", has=page.get_by_role("heading", name="Parameters")).first).to_contain_text("photo")
        check(page, "workflow-saved")

        print("the live tasks list shows a task submitted elsewhere without a reload")
        tasks = owner.new_page()
        tasks.goto(BASE + "/tasks")
        expect(tasks.locator("#live-state")).to_have_text("live")
        workflow_id = workflow_url.rstrip("/").split("/")[-1]
        presign = requests.post(f"{API}/r/files/presign", headers=SK, json={"file_name": "p.png", "file_size": len(png()), "content_type": "image/png"}).json()
        assert requests.put(presign["upload_url"], data=png(), headers=presign["upload_headers"]).status_code == 200
        submitted = requests.post(f"{API}/r/workflows/{workflow_id}/run", headers=SK, json={"parameters": {"photo": presign["file_key"]}})
        assert submitted.status_code == 202, submitted.text
        api_task = submitted.json()["task_id"]
        expect(tasks.locator(f"#task-{api_task} .badge")).to_have_text("completed")
        check(tasks, "tasks-live")

        print("run it from the generated form with a file upload, and watch it complete")
        page.get_by_role("link", name="Run", exact=True).click()
        check(page, "run-form")
        page.get_by_label("Photo (required)").set_input_files(image)
        page.get_by_role("button", name="Run").click()
        expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
        expect(page.locator("#task-status .badge")).to_have_text("completed")
        output = page.locator(".outputs img").first
        expect(output).to_be_visible()
        page.wait_for_function("() => { const i = document.querySelector('.outputs img'); return i && i.complete && i.naturalWidth > 0 }")
        check(page, "task-completed")

        print("cancel a running task")
        page.get_by_role("link", name="Run again with these parameters").click()
        page.get_by_label("Seconds").fill("60")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#task-status .badge")).to_have_text("running")
        expect(page.locator("#task-node")).to_contain_text("node 3")
        check(page, "task-running")
        page.get_by_role("button", name="Cancel task").click()
        expect(page.locator("#task-status .badge")).to_have_text("cancelled")
        check(page, "task-cancelled")

        print("the README's path: choose examples/workflows/invert.json, import it whole, run it with a value, see the image")
        page.get_by_role("link", name="Workflows").click()
        page.get_by_label("Workflow file (API format)").set_input_files(os.path.join(ROOT, "examples/workflows/invert.json"))
        expect(page.get_by_label("Name")).to_have_value("Invert a solid colour")
        expect(page.get_by_label("Slug (lowercase letters, digits, hyphens)")).to_have_value("invert")
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Invert a solid colour")
        page.get_by_role("link", name="Run", exact=True).click()
        page.get_by_label("color").fill("255")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#task-status .badge")).to_have_text("completed")
        page.wait_for_function("() => { const i = document.querySelector('.outputs img'); return i && i.complete && i.naturalWidth > 0 }")
        expect(page.locator("table.kv")).to_contain_text("255")

        print("create and revoke a key")
        page.get_by_role("link", name="Keys").click()
        page.get_by_label("Name").fill("browser test")
        page.get_by_role("button", name="Create key").click()
        raw = page.locator("#new-key-value")
        expect(raw).to_contain_text("sk-")
        raw_key = raw.inner_text().strip()
        assert requests.get(f"{API}/r/workflows", headers={"Authorization": "Bearer " + raw_key}).status_code == 200
        check(page, "key-created")
        page.get_by_role("button", name="Done").click()
        row = page.locator("tr", has_text="browser test")
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator("tr", has_text="browser test").locator(".badge")).to_have_text("revoked")
        assert requests.get(f"{API}/r/workflows", headers={"Authorization": "Bearer " + raw_key}).status_code == 401
        check(page, "key-revoked")

        print("approve a device pairing")
        started = requests.post(f"{API}/desktop/pair/start", json={"device_name": "ci laptop"}).json()
        page.goto(BASE + "/pair?user_code=" + started["user_code"])
        expect(page.locator("#pair-request")).to_contain_text("ci laptop")
        check(page, "pair")
        page.get_by_role("button", name="Approve this device").click()
        expect(page.locator("#paired")).to_be_visible()
        polled = requests.post(f"{API}/desktop/pair/poll", json={"device_code": started["device_code"]}).json()
        assert polled.get("access_token", polled.get("device_key", "")).startswith("dk-") or "dk-" in json.dumps(polled), polled

        print("a model upload in parts resumes after a failure, sending only the parts it lacks")
        big = os.path.join(SCRATCH, "big.safetensors")
        with open(big, "wb") as f:
            f.truncate(100 * 1024 * 1024 + 1024)  # two parts: 100 MiB and 1 KiB (the server's cap here is 1 MiB)
        # Parts are counted, and part 2 refused twice, inside the page (Playwright's own network hooks would copy the
        # 100 MiB part through its driver).
        page.add_init_script(FLAKY_PART_2)
        page.get_by_role("link", name="Models", exact=True).click()
        page.get_by_label("Model file").set_input_files(big)
        page.get_by_label("Name").fill("big model")
        page.get_by_role("button", name="Upload and register").click()
        expect(page.locator("form[data-model-upload] output.error")).to_contain_text("could not be reached")
        assert page.evaluate("JSON.parse(sessionStorage.getItem('parts'))") == {"1": 1, "2": 2}, page.evaluate("JSON.parse(sessionStorage.getItem('parts'))")
        page.get_by_label("Model file").set_input_files(big)
        page.get_by_role("button", name="Upload and register").click()
        expect(page.locator("tr", has_text="big model")).to_contain_text(re.compile(r"100(\.0)? Mi?B"))
        parts = page.evaluate("JSON.parse(sessionStorage.getItem('parts'))")
        assert parts == {"1": 1, "2": 3}, parts
        check(page, "models")

        print("the other pages render")
        for link, name in [("Agents", "agents"), ("Webhooks", "webhooks"), ("Team", "team")]:
            page.get_by_role("link", name=link, exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            check(page, name)

        print("a viewer sees no management buttons, and the server refuses anyway")
        invitation = page.evaluate(
            """async () => (await fetch('/api/v1/invitations', {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}, body: JSON.stringify({email_address: 'viewer@example.com',
               invitation_role: 'viewer'})})).json()""")
        viewer = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
        vpage = viewer.new_page()
        vpage.goto(BASE + "/invite?token=" + invitation["invitation_token"])
        vpage.get_by_label("Password").fill("viewer-password-1")
        vpage.get_by_role("button", name="Join").click()
        expect(vpage).to_have_url(re.compile(r"/tasks$"))
        check(vpage, "viewer-tasks-phone-dark")
        vpage.goto(workflow_url)
        expect(vpage.get_by_role("heading", level=1)).to_contain_text("Invert a photo")
        assert vpage.get_by_role("button", name=re.compile("Save as version")).count() == 0
        assert vpage.get_by_role("link", name="Run", exact=True).count() == 0
        vpage.goto(BASE + "/workflows")
        assert vpage.get_by_role("button", name="Import").count() == 0
        vpage.goto(BASE + "/keys")
        expect(vpage.get_by_role("heading", level=1)).to_have_text("Keys")
        assert vpage.get_by_role("button", name="Create key").count() == 0
        assert vpage.get_by_role("button", name="Revoke").count() == 0
        check(vpage, "viewer-keys-phone")
        vpage.goto(workflow_url.replace("/workflows/", "/tasks?workflow_id="))
        vpage.locator("#task-rows a").first.click()
        expect(vpage.locator("#task-status .badge")).to_be_visible()
        assert vpage.get_by_role("button", name="Cancel task").count() == 0
        assert vpage.get_by_role("link", name="Run again with these parameters").count() == 0
        check(vpage, "viewer-task-phone")
        refused = vpage.evaluate(
            """async () => (await fetch('/api/v1/workflows/import', {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({workflow_slug: 'nope', display_name: 'nope', workflow_json: {}})})).status""")
        assert refused == 403, refused
        no_token = vpage.evaluate("""async () => (await fetch('/api/v1/r/tasks/00000000-0000-0000-0000-000000000000/cancel', {method: 'POST'})).status""")
        assert no_token == 403, no_token

        print("sign out")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login"))
        page.goto(BASE + "/tasks")
        expect(page).to_have_url(re.compile(r"/login"))
        browser.close()
    print(f"dashboard: all checks passed; {len(shots)} screenshots in {ARTIFACTS}")


if __name__ == "__main__":
    main()
