/* bashexec dashboard: plain JavaScript, no framework, no build step.
 *
 * Views are picked by the URL's hash: #/ (jobs), #/jobs/<id> (one job),
 * #/cluster (queues and workers). The API token lives in sessionStorage
 * only (gone when the tab closes) and is sent in the Authorization header;
 * that is also why a job's events are read with fetch() rather than
 * EventSource, which cannot send headers.
 *
 * Everything a job or a worker says is put on the page as text
 * (textContent), never as markup. */
'use strict';

(function () {
  const TOKEN_KEY = 'bx.token';
  const MY_JOBS_KEY = 'bx.myJobs'; // ids submitted from this tab, newest first
  const MY_JOBS_MAX = 200;
  const TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'rejected']);
  const LIST_MS = 1500;
  const LIST_LIMIT = 30;
  const CLUSTER_MS = 2000;
  const HEALTH_MS = 5000;
  const JOB_POLL_MS = 1000;

  const $ = (id) => document.getElementById(id);

  /* ------------------------------------------------------------ helpers */

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function formatDuration(ms) {
    if (ms === undefined || ms === null || !isFinite(ms) || ms < 0) return '–';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.floor(s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function parseTime(s) {
    const t = s ? Date.parse(s) : NaN;
    return isNaN(t) ? null : t;
  }

  /* A <time> element: the local time of day, and the date when it is not today. */
  function timeEl(s) {
    const t = parseTime(s);
    if (t === null) return document.createTextNode('–');
    const d = new Date(t);
    const today = new Date().toDateString() === d.toDateString();
    const text = (today ? '' : d.toLocaleDateString() + ' ') + d.toLocaleTimeString();
    return el('time', { datetime: s, title: s, text });
  }

  function stateEl(doc) {
    const state = doc.state || 'unknown';
    const span = el('span', { class: 'state state-' + state.replace(/[^a-z_]/g, ''), text: state });
    if (doc.attempt > 1) span.append(' (attempt ' + doc.attempt + ')');
    return span;
  }

  const SIGNALS = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS',
    8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM' };

  /* How a finished job ended, in a few words. */
  function outcome(doc) {
    if (doc.exit_code !== undefined && doc.exit_code !== null) return String(doc.exit_code);
    if (doc.signal) return (SIGNALS[doc.signal] || 'signal ' + doc.signal) + (doc.core_dumped ? ' (core dumped)' : '');
    if (doc.limit === 'timeout_s') return 'timeout';
    if (doc.limit) return 'limit ' + doc.limit;
    if (doc.reason) return doc.reason;
    return '–';
  }

  /* A job's duration: its own when it has ended, else the time so far. */
  function durationOf(doc) {
    if (typeof doc.duration_ms === 'number') return formatDuration(doc.duration_ms);
    const started = parseTime(doc.started_at);
    if (doc.state === 'running' && started !== null) return formatDuration(Date.now() - started) + '…';
    return '–';
  }

  function b64bytes(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  const utf8 = new TextEncoder();
  const lenient = new TextDecoder('utf-8', { fatal: false });

  /* --------------------------------------------------------------- token */

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  function forgetToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(MY_JOBS_KEY);
    known.clear();
    $('token-error').textContent = message || '';
    route();
  }

  function myJobs() {
    try {
      const a = JSON.parse(sessionStorage.getItem(MY_JOBS_KEY) || '[]');
      return Array.isArray(a) ? a.filter((x) => typeof x === 'string') : [];
    } catch (e) {
      return [];
    }
  }

  function rememberJob(id) {
    const a = myJobs().filter((x) => x !== id);
    a.unshift(id);
    sessionStorage.setItem(MY_JOBS_KEY, JSON.stringify(a.slice(0, MY_JOBS_MAX)));
  }

  /* ----------------------------------------------------------------- API */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /* The error a non-2xx answer carries ({"error": {"code", "message"}}). */
  async function apiError(res) {
    let code = 'http_' + res.status;
    let message = res.statusText || 'HTTP ' + res.status;
    try {
      const doc = JSON.parse(await res.text());
      if (doc && doc.error) {
        code = doc.error.code || code;
        message = doc.error.message || message;
      }
    } catch (e) {
      /* not JSON: keep the status line */
    }
    return new ApiError(res.status, code, message);
  }

  function authHeaders(extra) {
    return Object.assign({ Authorization: 'Bearer ' + token() }, extra || {});
  }

  /* One call of the API, its JSON answer; throws ApiError. A 401 means the
   * token is no good any more: back to asking for one. */
  async function api(method, path, body, signal) {
    const headers = authHeaders({ Accept: 'application/json' });
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method, headers, signal, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      const err = await apiError(res);
      if (res.status === 401) forgetToken('The server refused the token: ' + err.message);
      throw err;
    }
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  /* A path the API does not serve (an endpoint this server predates). */
  function missingEndpoint(e) {
    return e instanceof ApiError && (e.status === 501 || e.status === 405 ||
      (e.status === 404 && /no such path/.test(e.message)));
  }

  /* -------------------------------------------------------- page notices */

  let noticeTimer = null;
  function notice(text, isError) {
    const n = $('notice');
    n.textContent = text || '';
    n.classList.toggle('error', !!isError);
    clearTimeout(noticeTimer);
    if (text && !isError) noticeTimer = setTimeout(() => { n.textContent = ''; }, 8000);
  }

  function describe(e) {
    if (e instanceof ApiError) return e.message + ' (HTTP ' + e.status + ')';
    return (e && e.message) || String(e);
  }

  /* Runs fn now and then every ms until signal aborts; skipped while the
   * tab is hidden; never two at once. */
  function every(ms, fn, signal) {
    let timer = null;
    const tick = async () => {
      if (signal.aborted) return;
      if (!document.hidden) {
        try {
          await fn();
        } catch (e) {
          if (!signal.aborted && e.name !== 'AbortError') console.warn(e);
        }
      }
      if (!signal.aborted) timer = setTimeout(tick, ms);
    };
    signal.addEventListener('abort', () => clearTimeout(timer));
    tick();
  }

  /* -------------------------------------------------------------- health */

  async function refreshHealth() {
    const h = $('health');
    try {
      const res = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
      const doc = await res.json();
      const checks = doc.checks || {};
      const names = { rabbitmq: 'RabbitMQ', redis: 'Redis', mongodb: 'MongoDB' };
      const parts = Object.keys(checks).map((k) =>
        (names[k] || k) + (checks[k] === 'ok' ? ' ok' : ' down'));
      h.textContent = (res.ok ? 'Ready: ' : 'Not ready: ') + parts.join(', ');
      h.className = 'health ' + (res.ok ? 'ok' : 'bad');
      h.title = Object.keys(checks).map((k) => k + ': ' + checks[k]).join('\n');
    } catch (e) {
      h.textContent = 'API unreachable';
      h.className = 'health bad';
    }
  }

  /* ---------------------------------------------------------------- views */

  const VIEWS = ['token', 'jobs', 'job', 'cluster'];
  let stopView = null; // aborts the current view's timers and requests
  let firstRoute = true;

  function show(name, title, navKey) {
    for (const v of VIEWS) $('view-' + v).hidden = v !== name;
    document.title = title + ' · bashexec';
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === navKey) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    $('session-bar').hidden = name === 'token';
    // After a navigation, put keyboard and screen reader users at the new
    // view's heading, as a page load would.
    if (!firstRoute) {
      const h = $('view-' + name).querySelector('h1');
      if (h) {
        h.tabIndex = -1;
        h.focus({ preventScroll: false });
      }
    }
    firstRoute = false;
  }

  function route() {
    if (stopView) stopView.abort();
    stopView = new AbortController();
    const signal = stopView.signal;
    if (!token()) {
      show('token', 'Sign in', null);
      $('token-input').focus();
      return;
    }
    const hash = location.hash || '#/';
    const m = /^#\/jobs\/([^/]+)$/.exec(hash);
    if (m) {
      showJob(decodeURIComponent(m[1]), signal);
    } else if (hash === '#/cluster') {
      show('cluster', 'Queues and workers', 'cluster');
      every(CLUSTER_MS, () => refreshCluster(signal), signal);
    } else {
      show('jobs', 'Jobs', 'jobs');
      every(LIST_MS, () => refreshJobs(signal), signal);
    }
  }

  /* ----------------------------------------------------------- sign in */

  async function onTokenSubmit(ev) {
    ev.preventDefault();
    const input = $('token-input');
    const t = input.value.trim();
    const errEl = $('token-error');
    errEl.textContent = '';
    if (!t) return;
    // Try it before keeping it: a token the server refuses is not stored.
    try {
      const res = await fetch('/v1/jobs?limit=1', {
        headers: { Authorization: 'Bearer ' + t }, cache: 'no-store', credentials: 'omit',
      });
      if (res.status === 401) {
        errEl.textContent = 'The server does not know this token.';
        return;
      }
      if (res.status === 403) notice('This token may not read jobs: the lists will stay empty.', true);
    } catch (e) {
      errEl.textContent = 'The API did not answer: ' + describe(e);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    input.value = '';
    route();
  }

  /* ------------------------------------------------------------- jobs list */

  const known = new Map(); // id → latest status document seen
  const rows = new Map();  // id → <tr>

  function filters() {
    return { state: $('filter-state').value, queue: $('filter-queue').value.trim() };
  }

  function matches(doc, f) {
    return (!f.state || doc.state === f.state) && (!f.queue || doc.queue === f.queue);
  }

  async function fetchStatus(id, signal) {
    try {
      const doc = await api('GET', '/v1/jobs/' + encodeURIComponent(id), undefined, signal);
      if (doc && doc.id) known.set(doc.id, doc);
      return doc;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }

  /* Ids of jobs running on a worker now (from their heartbeats). */
  async function runningIds(signal) {
    try {
      const doc = await api('GET', '/v1/workers', undefined, signal);
      const ids = [];
      for (const w of (doc && doc.workers) || []) for (const j of w.jobs || []) ids.push(j);
      return ids;
    } catch (e) {
      if (missingEndpoint(e) || (e instanceof ApiError && e.status === 503)) return [];
      throw e;
    }
  }

  async function refreshJobs(signal) {
    const f = filters();
    const q = new URLSearchParams({ limit: String(LIST_LIMIT) });
    if (f.state) q.set('state', f.state);
    if (f.queue) q.set('queue', f.queue);
    const updated = $('jobs-updated');
    try {
      // History (MongoDB) holds jobs once they have ended; the live ones
      // are asked for one by one: this tab's own, and those running now.
      const [page, running] = await Promise.all([
        api('GET', '/v1/jobs?' + q, undefined, signal),
        runningIds(signal),
      ]);
      const shown = new Map();
      for (const doc of (page && page.jobs) || []) {
        // a finished record beats an older live status of the same job
        const prev = known.get(doc.id);
        if (!prev || TERMINAL.has(doc.state) || !TERMINAL.has(prev.state)) known.set(doc.id, doc);
        shown.set(doc.id, known.get(doc.id));
      }
      const live = new Set(running);
      for (const id of myJobs().slice(0, LIST_LIMIT)) {
        const doc = known.get(id);
        if (!doc || !TERMINAL.has(doc.state)) live.add(id);
        else if (matches(doc, f)) shown.set(id, doc);
      }
      const docs = await Promise.all([...live].slice(0, 2 * LIST_LIMIT).map((id) => fetchStatus(id, signal)));
      for (const doc of docs) if (doc && matches(doc, f)) shown.set(doc.id, doc);
      if (signal.aborted) return;
      renderJobs([...shown.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .slice(0, LIST_LIMIT));
      updated.textContent = 'Updated ' + new Date().toLocaleTimeString();
      updated.classList.remove('error');
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      updated.textContent = 'Could not refresh (' + new Date().toLocaleTimeString() + '): ' + describe(e);
      updated.classList.add('error');
    }
  }

  function jobRow(doc) {
    const tr = el('tr', { 'data-id': doc.id });
    for (let i = 0; i < 7; i++) tr.append(el('td'));
    tr.cells[5].className = 'num';
    tr.cells[6].className = 'num';
    return tr;
  }

  function fillRow(tr, doc) {
    const c = tr.cells;
    const key = JSON.stringify([doc.state, doc.attempt, doc.duration_ms, doc.started_at,
      doc.exit_code, doc.signal, doc.limit, doc.reason]);
    if (tr.dataset.key !== key || doc.state === 'running') {
      tr.dataset.key = key;
      if (!c[0].firstChild) {
        c[0].append(el('a', { href: '#/jobs/' + encodeURIComponent(doc.id) }, el('code', { text: doc.id })));
        c[2].textContent = doc.queue || 'default';
        const cmd = String(doc.command || '');
        c[3].append(el('code', { class: 'cmd', title: cmd.slice(0, 2000), text: cmd }));
        c[4].append(timeEl(doc.submitted_at));
      }
      c[1].replaceChildren(stateEl(doc));
      c[5].textContent = durationOf(doc);
      c[6].textContent = TERMINAL.has(doc.state) ? outcome(doc) : '–';
      tr.dataset.state = doc.state || '';
    }
  }

  function renderJobs(docs) {
    const body = $('jobs-body');
    const want = new Set(docs.map((d) => d.id));
    for (const [id, tr] of rows) {
      if (!want.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    // Rows are reused and moved only when out of place, so that a link
    // holding the keyboard focus keeps it while the list refreshes.
    docs.forEach((doc, i) => {
      let tr = rows.get(doc.id);
      if (!tr) {
        tr = jobRow(doc);
        rows.set(doc.id, tr);
      }
      fillRow(tr, doc);
      const at = body.children[i];
      if (at !== tr) body.insertBefore(tr, at || null);
    });
    const empty = body.querySelector('tr.empty');
    if (!docs.length && !empty) {
      body.append(el('tr', { class: 'empty' }, el('td', { colspan: 7, text: 'No jobs yet.' })));
    } else if (docs.length && empty) {
      empty.remove();
    }
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const form = ev.target;
    const result = $('submit-result');
    const button = $('submit-button');
    const job = { command: $('submit-command').value };
    const queue = $('submit-queue').value.trim();
    const timeout = $('submit-timeout').value.trim();
    if (queue) job.queue = queue;
    if (timeout) job.timeout_s = Number(timeout);
    result.classList.remove('error');
    result.textContent = 'Submitting…';
    button.disabled = true;
    try {
      const doc = await api('POST', '/v1/jobs', job);
      known.set(doc.id, doc);
      rememberJob(doc.id);
      result.replaceChildren('Job ', el('a', { href: '#/jobs/' + encodeURIComponent(doc.id), id: 'submitted-link' },
        el('code', { text: doc.id })), ' is ' + doc.state + '.');
      $('submit-command').value = '';
      if (stopView && !stopView.signal.aborted && !$('view-jobs').hidden) {
        refreshJobs(stopView.signal);
      }
    } catch (e) {
      result.classList.add('error');
      result.textContent = 'Not submitted: ' + describe(e);
    } finally {
      button.disabled = false;
      form.querySelector('textarea').focus();
    }
  }

  /* ------------------------------------------------------------- one job */

  /* What the job page holds while it is shown. */
  function newOutput() {
    return {
      stdout: { next: 0, any: false, pre: $('job-stdout') },
      stderr: { next: 0, any: false, pre: $('job-stderr') },
    };
  }

  function setLive(text) {
    $('job-live').textContent = text ? '— ' + text : '';
  }

  function renderFields(doc) {
    $('job-state').replaceChildren(stateEl(doc));
    const dl = $('job-fields');
    const items = [];
    const add = (k, v) => {
      if (v === undefined || v === null || v === '') return;
      items.push(el('dt', { text: k }), el('dd', {}, v));
    };
    add('Command', el('code', { class: 'block', text: String(doc.command || '') }));
    add('Queue', doc.queue);
    if (doc.priority) add('Priority', String(doc.priority));
    add('Attempt', doc.attempt > 1 || doc.max_retries ? doc.attempt + ' of ' + ((doc.max_retries || 0) + 1) : null);
    add('Worker', doc.worker);
    if (doc.submitted_at) add('Submitted', timeEl(doc.submitted_at));
    if (doc.started_at) add('Started', timeEl(doc.started_at));
    if (doc.finished_at) add('Finished', timeEl(doc.finished_at));
    add('Duration', durationOf(doc) === '–' ? null : durationOf(doc));
    if (TERMINAL.has(doc.state)) {
      if (doc.exit_code !== undefined && doc.exit_code !== null) add('Exit code', String(doc.exit_code));
      else add('Outcome', outcome(doc));
    }
    if (doc.timeout_s) add('Timeout', doc.timeout_s + ' s');
    add('Lock', doc.lock);
    if (doc.labels && Object.keys(doc.labels).length) {
      add('Labels', Object.entries(doc.labels).map(([k, v]) => k + '=' + v).join(', '));
    }
    add('Request id', doc.request_id ? el('code', { text: doc.request_id }) : null);
    dl.replaceChildren(...items);
    $('job-cancel').hidden = TERMINAL.has(doc.state);
    document.title = 'Job ' + doc.id.slice(0, 8) + '… ' + doc.state + ' · bashexec';
  }

  /* Appends text to a <pre>, keeping it scrolled to the end when it was. */
  function appendText(pre, text, cls) {
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.append(cls ? el('span', { class: cls, text }) : text);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  /* One "output" event: {stream, offset, data, encoding?, truncated?}. */
  function onOutput(view, o) {
    const s = view.out[o.stream];
    if (!s || typeof o.data !== 'string') return;
    let bytes;
    let text = o.data;
    if (o.encoding === 'base64') {
      bytes = b64bytes(o.data);
      text = lenient.decode(bytes);
      s.binary = true;
    } else {
      bytes = utf8.encode(text);
    }
    const offset = typeof o.offset === 'number' ? o.offset : s.next;
    if (o.truncated || offset > s.next) {
      appendText(s.pre, '\n[… ' + (offset > s.next ? (offset - s.next) + ' bytes or more' : 'some output') +
        ' dropped here …]\n', 'cut');
    }
    appendText(s.pre, text);
    s.next = offset + bytes.length;
    s.any = true;
  }

  /* The output a status document carries (a finished job's). */
  function outputFromDoc(view, doc) {
    for (const name of ['stdout', 'stderr']) {
      const s = view.out[name];
      if (s.any || typeof doc[name] !== 'string') continue;
      let bytes = doc[name + '_encoding'] === 'base64' ? b64bytes(doc[name]) : utf8.encode(doc[name]);
      if (doc[name + '_encoding'] === 'base64') s.binary = true;
      const cut = doc[name + '_truncated'] ? doc[name + '_cut_at'] : null;
      s.pre.replaceChildren();
      if (typeof cut === 'number' && cut >= 0 && cut <= bytes.length) {
        const dropped = (doc[name + '_bytes'] || 0) - bytes.length;
        appendText(s.pre, lenient.decode(bytes.subarray(0, cut)));
        appendText(s.pre, '\n[… ' + (dropped > 0 ? dropped + ' bytes' : 'output') + ' dropped here …]\n', 'cut');
        bytes = bytes.subarray(cut);
      }
      appendText(s.pre, lenient.decode(bytes));
      s.any = bytes.length > 0;
    }
    markEmpty(view);
  }

  function markEmpty(view) {
    for (const name of ['stdout', 'stderr']) {
      const s = view.out[name];
      if (!s.pre.textContent) s.pre.append(el('span', { class: 'empty', text: '(nothing)' }));
      if (s.binary && !s.pre.dataset.binaryNoted) {
        s.pre.dataset.binaryNoted = '1';
        s.pre.title = 'Not valid UTF-8: bytes that are not are shown as \uFFFD. GET /v1/jobs/{id}/output has the exact bytes.';
      }
    }
  }

  function clearOutput(view) {
    view.out = newOutput();
    for (const name of ['stdout', 'stderr']) {
      view.out[name].pre.replaceChildren();
      delete view.out[name].pre.dataset.binaryNoted;
      view.out[name].pre.removeAttribute('title');
    }
  }

  /* Reads a Server-Sent Events body and calls onEvent(name, data) per event. */
  async function readEvents(res, onEvent) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let name = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) onEvent(name || 'message', data.join('\n'));
          name = '';
          data = [];
          continue;
        }
        if (line[0] === ':') continue; // a keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (field === 'event') name = v;
        else if (field === 'data') data.push(v);
      }
    }
  }

  /* Follows the job through GET /v1/jobs/{id}/events until it ends;
   * reconnects (the output starts over) when the stream breaks first.
   * Resolves to 'done', or 'missing' when the server has no such endpoint. */
  async function followEvents(view, signal) {
    let delay = 500;
    for (;;) {
      let ended = false;
      try {
        const res = await fetch('/v1/jobs/' + encodeURIComponent(view.id) + '/events', {
          headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store',
          credentials: 'omit', signal,
        });
        if (!res.ok) {
          const err = await apiError(res);
          if (missingEndpoint(err)) return 'missing';
          if (res.status === 401) forgetToken('The server refused the token: ' + err.message);
          throw err;
        }
        $('job-output').dataset.transport = 'sse';
        setLive('streaming live');
        clearOutput(view);
        await readEvents(res, (name, data) => {
          let doc;
          try {
            doc = JSON.parse(data);
          } catch (e) {
            return;
          }
          if (name === 'state') {
            view.doc = doc;
            renderFields(doc);
            if (TERMINAL.has(doc.state)) {
              ended = true;
              outputFromDoc(view, doc);
            }
          } else if (name === 'output') {
            onOutput(view, doc);
          } else if (name === 'error') {
            ended = true;
            notice('The event stream ended: ' + ((doc.error && doc.error.message) || data), true);
          }
        });
        delay = 500;
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') return 'done';
        if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
          showJobError(e);
          return 'done';
        }
        setLive('reconnecting (' + describe(e) + ')');
      }
      if (ended || signal.aborted) {
        setLive('');
        markEmpty(view);
        return 'done';
      }
      setLive('reconnecting…');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
      if (signal.aborted) return 'done';
    }
  }

  /* The same without the events endpoint: the status and the output
   * polled, each look replacing the last. */
  async function pollJob(view, signal) {
    $('job-output').dataset.transport = 'poll';
    setLive('polling');
    const rawOutput = async (stream) => {
      const res = await fetch('/v1/jobs/' + encodeURIComponent(view.id) + '/output?stream=' + stream, {
        headers: authHeaders(), cache: 'no-store', credentials: 'omit', signal,
      });
      if (!res.ok) throw await apiError(res);
      return new Uint8Array(await res.arrayBuffer());
    };
    for (;;) {
      let doc;
      try {
        doc = await api('GET', '/v1/jobs/' + encodeURIComponent(view.id), undefined, signal);
        view.doc = doc;
        renderFields(doc);
        const [out, err] = await Promise.all([rawOutput('stdout'), rawOutput('stderr')]);
        clearOutput(view);
        appendText(view.out.stdout.pre, lenient.decode(out));
        appendText(view.out.stderr.pre, lenient.decode(err));
        markEmpty(view);
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
          showJobError(e);
          return;
        }
        setLive('polling (last look failed: ' + describe(e) + ')');
      }
      if (doc && TERMINAL.has(doc.state)) {
        setLive('');
        return;
      }
      await new Promise((r) => setTimeout(r, JOB_POLL_MS));
      if (signal.aborted) return;
    }
  }

  function showJobError(e) {
    $('job-state').textContent = e.status === 404 ? 'no such job' : describe(e);
    $('job-fields').replaceChildren();
    setLive('');
  }

  let jobView = null;

  function showJob(id, signal) {
    jobView = { id, doc: null, out: newOutput() };
    const view = jobView;
    $('job-id').textContent = id;
    $('job-state').textContent = '…';
    $('job-fields').replaceChildren();
    $('job-cancel').hidden = true;
    $('job-output').dataset.transport = '';
    clearOutput(view);
    show('job', 'Job ' + id.slice(0, 8) + '…', null);
    followEvents(view, signal).then((how) => {
      if (how === 'missing' && !signal.aborted) pollJob(view, signal);
    });
  }

  async function onCancel() {
    if (!jobView) return;
    const id = jobView.id;
    try {
      await api('DELETE', '/v1/jobs/' + encodeURIComponent(id));
      notice('Cancel requested for job ' + id + '.');
    } catch (e) {
      notice('Could not cancel: ' + describe(e), true);
    }
  }

  /* ------------------------------------------------- queues and workers */

  let queuesEndpoint = true; // until the API says it has no /v1/queues

  async function refreshCluster(signal) {
    const updated = $('cluster-updated');
    try {
      const [wdoc, history, qdoc] = await Promise.all([
        api('GET', '/v1/workers', undefined, signal).catch((e) => {
          if (missingEndpoint(e)) return { workers: null };
          throw e;
        }),
        api('GET', '/v1/jobs?limit=100', undefined, signal),
        queuesEndpoint ? api('GET', '/v1/queues', undefined, signal).catch((e) => {
          if (missingEndpoint(e)) {
            queuesEndpoint = false;
            return null;
          }
          throw e;
        }) : null,
      ]);
      const workers = wdoc.workers;
      const running = [];
      for (const w of workers || []) for (const j of w.jobs || []) running.push(j);
      const live = await Promise.all(running.map((id) => fetchStatus(id, signal)));
      if (signal.aborted) return;
      renderWorkers(workers);
      renderQueues(workers || [], (history && history.jobs) || [], live.filter(Boolean), qdoc);
      updated.textContent = 'Updated ' + new Date().toLocaleTimeString();
      updated.classList.remove('error');
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      updated.textContent = 'Could not refresh (' + new Date().toLocaleTimeString() + '): ' + describe(e);
      updated.classList.add('error');
    }
  }

  function renderWorkers(workers) {
    const body = $('workers-body');
    if (workers === null) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 7, text: 'This API does not list workers (no GET /v1/workers).' })));
      return;
    }
    if (!workers.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 7, text: 'No live workers.' })));
      return;
    }
    body.replaceChildren(...workers.map((w) => {
      const jobs = el('td');
      (w.jobs || []).forEach((id, i) => {
        if (i) jobs.append(' ');
        jobs.append(el('a', { href: '#/jobs/' + encodeURIComponent(id) }, el('code', { text: id.slice(0, 8) + '…', title: id })));
      });
      if (!(w.jobs || []).length) jobs.textContent = '–';
      const running = w.running !== undefined ? w.running : (w.jobs || []).length;
      return el('tr', { 'data-worker': w.id },
        el('td', {}, el('code', { text: w.id })),
        el('td', { text: w.host || '–' }),
        el('td', { class: 'num', text: w.pid !== undefined ? String(w.pid) : '–' }),
        el('td', { text: (w.queues || []).join(', ') || '–' }),
        el('td', { class: 'num', text: running + (w.concurrency ? ' of ' + w.concurrency : '') }),
        jobs,
        el('td', {}, w.last_seen ? timeEl(w.last_seen) : '–'));
    }));
  }

  /* Queues: the API's own depths when it reports them (GET /v1/queues,
   * {"queues": [{"name", "depth", "consumers"}]}); otherwise the queues
   * this page can see, in the jobs and in the workers' heartbeats. */
  function renderQueues(workers, history, live, qdoc) {
    const q = new Map();
    const get = (name) => {
      if (!q.has(name)) q.set(name, { name, depth: null, queued: 0, running: 0, workers: 0, succeeded: 0, failed: 0 });
      return q.get(name);
    };
    for (const w of workers) for (const name of w.queues || []) get(name).workers++;
    const seen = new Map();
    for (const doc of history) seen.set(doc.id, doc);
    for (const doc of known.values()) if (!seen.has(doc.id) || !TERMINAL.has(seen.get(doc.id).state)) seen.set(doc.id, doc);
    for (const doc of live) seen.set(doc.id, doc);
    for (const doc of seen.values()) {
      const e = get(doc.queue || 'default');
      if (doc.state === 'queued') e.queued++;
      else if (doc.state === 'running') e.running++;
      else if (doc.state === 'succeeded') e.succeeded++;
      else if (TERMINAL.has(doc.state)) e.failed++;
    }
    const fromApi = qdoc && Array.isArray(qdoc.queues);
    if (fromApi) {
      for (const x of qdoc.queues) {
        const e = get(x.name);
        e.depth = x.depth;
        if (typeof x.consumers === 'number') e.consumers = x.consumers;
      }
    }
    $('queues-note').textContent = fromApi
      ? 'Depth: messages waiting in RabbitMQ. Running, succeeded and failed: among the last 100 jobs and those running now.'
      : 'This API does not report queue depths (no GET /v1/queues): Depth counts the queued jobs this page has seen. ' +
        'Queues are those named by the workers and by the last 100 jobs.';
    const list = [...q.values()].sort((a, b) => a.name.localeCompare(b.name));
    const body = $('queues-body');
    if (!list.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 6, text: 'No queues seen yet.' })));
      return;
    }
    body.replaceChildren(...list.map((e) => el('tr', { 'data-queue': e.name },
      el('th', { scope: 'row' }, el('code', { text: e.name })),
      el('td', { class: 'num', text: String(e.depth !== null && e.depth !== undefined ? e.depth : e.queued) }),
      el('td', { class: 'num', text: String(e.running) }),
      el('td', { class: 'num', text: String(e.consumers !== undefined ? e.consumers : e.workers) }),
      el('td', { class: 'num', text: String(e.succeeded) }),
      el('td', { class: 'num', text: String(e.failed) }))));
  }

  /* ---------------------------------------------------------------- start */

  function start() {
    $('token-form').addEventListener('submit', onTokenSubmit);
    $('submit-form').addEventListener('submit', onSubmit);
    $('forget-token').addEventListener('click', () => forgetToken('Signed out.'));
    $('job-cancel').addEventListener('click', onCancel);
    $('filter-form').addEventListener('submit', (ev) => ev.preventDefault());
    $('filter-form').addEventListener('change', () => {
      if (stopView && !$('view-jobs').hidden) refreshJobs(stopView.signal);
    });
    // Ctrl+Enter in the command box submits, as in most consoles.
    $('submit-command').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('submit-form').requestSubmit();
    });
    window.addEventListener('hashchange', route);
    const healthStop = new AbortController();
    every(HEALTH_MS, refreshHealth, healthStop.signal);
    route();
  }

  start();
})();
