// Switchyard dashboard: the live and interactive parts of the server-rendered pages. No build step, no
// dependencies. Changes go through the JSON API with the page's CSRF token; the session cookie is HttpOnly.
'use strict';
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
const meta = n => (document.querySelector(`meta[name="${n}"]`) || {}).content || '';

// --- The API -----------------------------------------------------------------------------------------------------
async function api(method, url, body) {
  const headers = { 'X-CSRF-Token': meta('csrf-token') };
  if (meta('team-id')) headers['X-Team-ID'] = meta('team-id');
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await r.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (_) { data = {}; }
  if (!r.ok) throw Object.assign(new Error(data.error_message || `${r.status} ${r.statusText}`), { status: r.status });
  return data;
}

function fill(template, data) {
  return template.replace(/\{(\w+)\}/g, (_, k) => (data[k] === undefined || data[k] === null ? '' : String(data[k])));
}

// Shows an API error in the form's output, and beside the field the message names ("field \"x\"", "parameter \"x\"").
function showError(scope, err) {
  const out = scope.querySelector('output.error') || scope.parentElement.querySelector('output.error');
  if (out) out.textContent = err.message;
  $$('.field-error', scope).forEach(e => (e.textContent = ''));
  const m = /"([^"]+)"/.exec(err.message);
  if (m) {
    const key = m[1].replace(/\[.*$/, '');
    const slot = scope.querySelector(`.field-error[data-for="${CSS.escape(key)}"]`);
    if (slot) slot.textContent = err.message;
    const input = scope.querySelector(`[name="${CSS.escape(key)}"]`);
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
  }
}

function done(how, data, scope) {
  if (!how || how === 'reload') return location.reload();
  if (how.startsWith('go:')) return (location.href = fill(how.slice(3), data));
  if (how.startsWith('show:')) {
    const box = document.getElementById(how.slice(5));
    $$('[data-template]', box).forEach(e => (e.textContent = fill(e.dataset.template, data)));
    box.hidden = false;
    if (scope && scope.tagName === 'FORM') scope.hidden = true;
  }
}

// --- Forms and buttons that call the API ------------------------------------------------------------------------
function formBody(form) {
  const body = JSON.parse(form.dataset.extra || '{}');
  for (const el of $$('[name]', form)) {
    if (el.dataset.local !== undefined || el.type === 'file') continue;
    const type = el.dataset.type;
    if (type === 'checklist') { (body[el.name] = body[el.name] || []); if (el.checked) body[el.name].push(el.value); continue; }
    if (type === 'boolean') { body[el.name] = el.checked; continue; }
    const v = el.value.trim();
    if (v === '' && type !== 'string') continue;
    if (type === 'number') body[el.name] = Number(v);
    else if (type === 'list') body[el.name] = v.split(',').map(s => s.trim()).filter(Boolean);
    else if (type === 'json') {
      try { body[el.name] = JSON.parse(v); } catch (e) { throw new Error(`field "${el.name}": not valid JSON (${e.message})`); }
    } else body[el.name] = el.value;
  }
  return body;
}

document.addEventListener('submit', async e => {
  const form = e.target;
  if (form.dataset.api !== undefined && form.dataset.editor === undefined) {
    e.preventDefault();
    const [method, url] = form.dataset.api.split(' ');
    const button = $('button[type=submit]', form);
    try {
      if (form.dataset.match !== undefined && $('[data-local]', form).value !== form.dataset.match) {
        throw new Error('the name typed does not match');
      }
      if (button) button.disabled = true;
      let body = method === 'DELETE' ? undefined : formBody(form);
      // A Switchyard export (an import body with its parameters) pasted whole: sent as it is, with the name and slug typed.
      if (body && body.workflow_json && body.workflow_json.workflow_json) {
        body = Object.assign({}, body.workflow_json, { display_name: body.display_name, workflow_slug: body.workflow_slug });
      }
      done(form.dataset.done, await api(method, url, body), form);
    } catch (err) { showError(form, err); } finally { if (button) button.disabled = false; }
  } else if (form.dataset.editor === 'parameters') {
    e.preventDefault();
    try {
      const body = formBody(form);
      delete body.target;
      body.parameters = $$('.param-row', $('#param-rows', form)).map(parameterOf);
      const [method, url] = form.dataset.api.split(' ');
      done(form.dataset.done, await api(method, url, body), form);
    } catch (err) { showError(form, err); }
  } else if (form.dataset.run !== undefined) {
    e.preventDefault();
    runWorkflow(form);
  } else if (form.dataset.modelUpload !== undefined) {
    e.preventDefault();
    uploadModel(form);
  }
});

document.addEventListener('click', async e => {
  const el = e.target.closest('button');
  if (!el) return;
  if (el.dataset.api !== undefined) {
    if (el.dataset.confirm && !confirm(el.dataset.confirm)) return;
    const [method, url] = el.dataset.api.split(' ');
    try {
      el.disabled = true;
      done(el.dataset.done, await api(method, url, el.dataset.body ? JSON.parse(el.dataset.body) : undefined), el);
    } catch (err) { showError(el.closest('section,form,div') || document.body, err); } finally { el.disabled = false; }
  } else if (el.dataset.copy !== undefined) {
    const box = document.getElementById(el.dataset.copy);
    const text = ($('pre', box) || box).textContent;
    try { await navigator.clipboard.writeText(text); el.textContent = 'Copied'; } catch (_) {
      const range = document.createRange(); range.selectNodeContents($('pre', box) || box);
      getSelection().removeAllRanges(); getSelection().addRange(range); el.textContent = 'Selected: press Ctrl+C';
    }
  } else if (el.dataset.reload !== undefined) location.reload();
  else if (el.dataset.addRow !== undefined) addParameterRow(el.dataset.addRow);
  else if (el.dataset.removeRow !== undefined) el.closest('.param-row').remove();
});

document.addEventListener('change', e => {
  const el = e.target;
  if (el.dataset.autosubmit !== undefined) el.form.requestSubmit();
  if (el.dataset.loadInto && el.files[0]) {
    el.files[0].text().then(t => { const target = document.getElementById(el.dataset.loadInto); target.value = t; prefillImport(target); });
  }
});

document.addEventListener('input', e => {
  const el = e.target;
  if (el.dataset.slugSource) {
    const slug = document.getElementById(el.dataset.slugSource);
    if (!slug.dataset.edited) slug.value = el.value.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
  } else if (el.name === 'workflow_slug') el.dataset.edited = '1';
  else if (el.name === 'workflow_json') prefillImport(el);
});

// A pasted or chosen Switchyard export names its workflow: fill the name and slug the user left empty.
function prefillImport(textarea) {
  let parsed;
  try { parsed = JSON.parse(textarea.value); } catch (_) { return; }
  if (!parsed || !parsed.workflow_json) return;
  const form = textarea.form;
  const name = $('[name=display_name]', form);
  const slug = $('[name=workflow_slug]', form);
  if (name && !name.value && parsed.display_name) name.value = parsed.display_name;
  if (slug && !slug.value && parsed.workflow_slug) { slug.value = parsed.workflow_slug; slug.dataset.edited = '1'; }
}

// --- The parameter editor ---------------------------------------------------------------------------------------
let rowCounter = 0;
function addParameterRow(containerId) {
  const template = $('#param-template');
  const row = template.content.firstElementChild.cloneNode(true);
  const n = `n${++rowCounter}`;
  $$('[id]', row).forEach(el => (el.id = el.id.replace(/-new$/, '-' + n)));
  $$('label[for]', row).forEach(el => (el.htmlFor = el.htmlFor.replace(/-new$/, '-' + n)));
  document.getElementById(containerId).append(row);
  $('[data-p=key]', row).focus();
}

function parameterOf(row) {
  const v = name => { const el = $(`[data-p=${name}]`, row); return el.type === 'checkbox' ? el.checked : el.value.trim(); };
  const p = { key: v('key'), type: v('type'), required: v('required') };
  if (!p.key) throw new Error('field "key": every parameter needs a key');
  if (v('label')) p.label = v('label');
  if (v('description')) p.description = v('description');
  const target = v('target');
  if (target) { const i = target.indexOf('/'); p.node_id = target.slice(0, i); p.field = target.slice(i + 1); }
  const list = s => s.split(',').map(x => x.trim()).filter(Boolean);
  const typed = s => (p.type === 'number' ? Number(s) : p.type === 'boolean' ? s === 'true' : s);
  if (v('default') !== '') p.default = typed(v('default'));
  if (p.type === 'number') { if (v('min') !== '') p.min = Number(v('min')); if (v('max') !== '') p.max = Number(v('max')); }
  if (p.type === 'select') p.options = list(v('options'));
  if (p.type === 'file' && v('accept')) p.accept = list(v('accept'));
  return p;
}

// --- Uploads straight to the object store -----------------------------------------------------------------------
function put(url, headers, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() !== 'content-length' && k.toLowerCase() !== 'host') xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = e => e.lengthComputable && onProgress(e.loaded);
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr.getResponseHeader('ETag')) : reject(new Error(`the object store refused the upload (${xhr.status})`)));
    xhr.onerror = () => reject(new Error('the upload failed: the object store could not be reached'));
    xhr.send(blob);
  });
}

async function runWorkflow(form) {
  const button = $('button[type=submit]', form);
  button.disabled = true;
  try {
    const parameters = {};
    const options = {};
    for (const el of $$('[name]', form)) {
      const t = el.dataset.type;
      if (t === 'run-option') { if (el.value.trim()) options[el.name] = el.value.trim(); continue; }
      if (t === 'file') {
        const file = el.files[0];
        if (!file) { if (el.dataset.previous) parameters[el.name] = el.dataset.previous; continue; }
        const bar = el.parentElement.querySelector('progress');
        bar.hidden = false;
        const upload = await api('POST', '/api/v1/r/files/presign', { file_name: file.name, file_size: file.size, content_type: file.type || 'application/octet-stream' })
          .catch(err => { err.message = `parameter "${el.name}": ${err.message}`; throw err; });
        await put(upload.upload_url, upload.upload_headers, file, n => (bar.value = n / file.size));
        bar.value = 1;
        parameters[el.name] = upload.file_key;
      } else if (t === 'boolean') parameters[el.name] = el.checked;
      else if (el.value === '' && t !== 'string') continue;
      else if (t === 'number') parameters[el.name] = Number(el.value);
      else if (t === 'select') parameters[el.name] = JSON.parse(el.selectedOptions[0].dataset.json);
      else parameters[el.name] = el.value;
    }
    const task = await api('POST', form.dataset.run, Object.assign({ parameters }, options));
    location.href = '/tasks/' + task.task_id;
  } catch (err) { showError(form, err); button.disabled = false; }
}

async function uploadModel(form) {
  const file = $('[name=file]', form).files[0];
  const bar = $('progress', form);
  const button = $('button[type=submit]', form);
  button.disabled = true;
  try {
    const type = $('[name=model_type]', form).value.trim();
    const path = `${type}/${file.name}`;
    bar.hidden = false;
    // A multipart upload of this file that stopped part-way (this tab or an earlier one) resumes where it was.
    const resumeKey = `switchyard-upload:${meta('team-id')}:${file.name}:${file.size}:${file.lastModified}`;
    let key;
    if (localStorage.getItem(resumeKey)) key = await multipart(null, file, bar, resumeKey);
    else {
      const presigned = await api('POST', '/api/v1/models/presign', { file_name: file.name, file_size: file.size, model_type: type, model_path: path });
      key = presigned.storage_key;
      if (presigned.upload_method === 'multipart') key = await multipart(presigned.storage_key, file, bar, resumeKey);
      else await put(presigned.upload_url, presigned.upload_headers, file, n => (bar.value = n / file.size));
    }
    await api('POST', '/api/v1/models', { display_name: $('[name=display_name]', form).value, model_type: type, storage_key: key, file_size: file.size, model_path: path });
    location.reload();
  } catch (err) { showError(form, err); button.disabled = false; }
}

// Parts of `part_size`, three at a time; a part that fails is retried once. Each finished part is remembered in
// localStorage under `resumeKey`, so choosing the same file again after a failure or a reload sends only the rest.
async function multipart(storageKey, file, bar, resumeKey) {
  let state = JSON.parse(localStorage.getItem(resumeKey) || 'null');
  if (!state) {
    const up = await api('POST', '/api/v1/uploads/multipart/initiate', { storage_key: storageKey, file_size: file.size });
    state = { storage_key: up.storage_key, upload_id: up.upload_id, part_size: up.part_size, part_count: up.part_count, etags: {} };
    localStorage.setItem(resumeKey, JSON.stringify(state));
  }
  const ask = { storage_key: state.storage_key, upload_id: state.upload_id };
  const missing = Array.from({ length: state.part_count }, (_, i) => i + 1).filter(n => !state.etags[n]);
  const signed = [];
  try {
    for (let i = 0; i < missing.length; i += 100) {
      signed.push(...(await api('POST', '/api/v1/uploads/multipart/presign-parts', Object.assign({ part_numbers: missing.slice(i, i + 100) }, ask))).parts);
    }
  } catch (err) {
    // The upload is gone (completed, aborted, or swept by retention): start over next time.
    localStorage.removeItem(resumeKey);
    throw err;
  }
  const loaded = new Map(Object.keys(state.etags).map(n => [Number(n), Math.min(state.part_size, file.size - (n - 1) * state.part_size)]));
  const progress = () => (bar.value = [...loaded.values()].reduce((a, b) => a + b, 0) / file.size);
  progress();
  const queue = signed.slice();
  const worker = async () => {
    for (let part; (part = queue.shift());) {
      const start = (part.part_number - 1) * state.part_size;
      const blob = file.slice(start, start + part.content_length);
      const send = () => put(part.url, {}, blob, n => { loaded.set(part.part_number, n); progress(); });
      state.etags[part.part_number] = await send().catch(send);
      localStorage.setItem(resumeKey, JSON.stringify(state));
    }
  };
  // Every worker finishes (and remembers its parts) before a failure is reported, so a retry sends only what is missing.
  const failed = (await Promise.allSettled([worker(), worker(), worker()])).find(r => r.status === 'rejected');
  if (failed) throw failed.reason;
  const parts = Object.entries(state.etags).map(([n, etag]) => ({ part_number: Number(n), etag })).sort((a, b) => a.part_number - b.part_number);
  const done = await api('POST', '/api/v1/uploads/multipart/complete', Object.assign({ parts }, ask));
  localStorage.removeItem(resumeKey);
  return done.storage_key;
}

// --- Times ------------------------------------------------------------------------------------------------------
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
function ago(date) {
  const s = (date - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 45) return relative.format(Math.round(s), 'second');
  if (a < 2700) return relative.format(Math.round(s / 60), 'minute');
  if (a < 64800) return relative.format(Math.round(s / 3600), 'hour');
  return relative.format(Math.round(s / 86400), 'day');
}
function duration(ms) {
  if (ms < 1000) return 'under 1 s'; // the API's times are whole seconds
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} min`;
}
function times(root = document) {
  for (const t of $$('time[datetime]', root)) {
    const d = new Date(t.getAttribute('datetime'));
    if (isNaN(d)) continue;
    t.textContent = ago(d);
    t.title = d.toLocaleString();
  }
  for (const el of $$('[data-from]', root)) {
    const from = Date.parse(el.dataset.from);
    const to = el.dataset.to ? Date.parse(el.dataset.to) : NaN;
    el.textContent = isNaN(from) ? '' : isNaN(to) ? '' : duration(to - from);
  }
}

// --- The live tasks list ----------------------------------------------------------------------------------------
function liveTasks(table) {
  const tbody = $('tbody', table);
  const page = Number(table.dataset.page);
  const perPage = Number(table.dataset.perPage);
  const state = $('#live-state');
  let pending = new Map();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const batch = pending;
    pending = new Map();
    for (const [id, change] of batch) {
      const row = document.getElementById('task-' + id);
      if (change.remove) { if (row) row.remove(); continue; }
      const holder = document.createElement('tbody');
      holder.innerHTML = change.html;
      const fresh = holder.firstElementChild;
      if (change.progress !== undefined) { const bar = $('progress', fresh); if (bar) bar.value = change.progress; }
      if (row) row.replaceWith(fresh);
      else if (page === 1) {
        tbody.prepend(fresh);
        const empty = $('#no-tasks'); if (empty) empty.remove();
        const count = $('#task-count'); if (count) count.textContent = Number(count.textContent) + 1;
        while (tbody.rows.length > perPage) tbody.lastElementChild.remove();
      }
      times(fresh);
    }
  };
  const source = new EventSource(table.dataset.live);
  source.addEventListener('task', e => {
    const change = JSON.parse(e.data);
    pending.set(change.id, change);
    if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
  });
  source.addEventListener('refresh', async () => {
    const html = await (await fetch(location.href, { credentials: 'same-origin' })).text();
    const doc = new DOMParser().parseFromString(html, 'text/html');
    const rows = doc.getElementById('task-rows');
    if (rows) { tbody.replaceChildren(...rows.children); times(tbody); }
    const count = doc.getElementById('task-count');
    if (count) $('#task-count').textContent = count.textContent;
  });
  source.onopen = () => state && (state.textContent = 'live', state.className = 'live');
  source.onerror = () => state && (state.textContent = 'reconnecting…', state.className = 'live off');
}

// --- A task's page, live ----------------------------------------------------------------------------------------
function liveTask(section) {
  if (section.dataset.terminal === 'true') return;
  const bar = $('#task-progress');
  const node = $('#task-node');
  const log = $('#event-rows');
  const source = new EventSource(section.dataset.events);
  const seen = new Set($$('tr > td:first-child', log).map(td => td.textContent));
  const add = (kind, e) => {
    if (e.lastEventId && seen.has(e.lastEventId)) return;
    if (e.lastEventId) seen.add(e.lastEventId);
    const tr = document.createElement('tr');
    for (const text of [e.lastEventId || '·', kind, new Date().toLocaleTimeString(), e.data]) {
      const td = document.createElement('td'); td.textContent = text; tr.append(td);
    }
    tr.lastElementChild.className = 'mono small';
    log.append(tr);
  };
  source.addEventListener('status', e => {
    add('status', e);
    const s = JSON.parse(e.data).status;
    const badge = $('#task-status .badge');
    if (badge && s) { badge.textContent = s; badge.className = 'badge b-' + s; badge.dataset.status = s; }
  });
  source.addEventListener('progress', e => {
    const p = JSON.parse(e.data);
    if (e.lastEventId) add('progress', e);
    if (typeof p.progress === 'number') bar.value = p.progress;
    const parts = [];
    if (p.stage) parts.push(p.stage);
    if (p.current_node) parts.push('node ' + p.current_node);
    if (p.step_total) parts.push(`step ${p.step_current}/${p.step_total}`);
    if (p.message) parts.push(p.message);
    node.textContent = parts.join(' · ');
  });
  for (const end of ['completed', 'failed', 'cancelled']) {
    source.addEventListener(end, e => { add(end, e); source.close(); location.reload(); });
  }
}

// --- Start ------------------------------------------------------------------------------------------------------
function start() {
  times();
  setInterval(times, 30000);
  const table = $('table[data-live]');
  if (table) liveTasks(table);
  const task = $('#live-task');
  if (task) liveTask(task);
  for (const pre of $$('[data-text-src]')) {
    fetch(pre.dataset.textSrc).then(r => r.text()).then(t => (pre.textContent = t.length > 100000 ? t.slice(0, 100000) + '\n…' : t))
      .catch(() => (pre.textContent = '(could not load the preview; use the link)'));
  }
  const refresh = $('[data-refresh]');
  if (refresh) {
    setInterval(async () => {
      const doc = new DOMParser().parseFromString(await (await fetch(location.href, { credentials: 'same-origin' })).text(), 'text/html');
      const fresh = doc.querySelector('[data-refresh] tbody');
      if (fresh) { $('tbody', refresh).replaceWith(fresh); times(refresh); }
    }, Number(refresh.dataset.refresh) * 1000);
  }
}
document.readyState === 'loading' ? document.addEventListener('DOMContentLoaded', start) : start();
