// The pipeline dashboard: the newest runs from /pipeline_runs, refreshed every 5 s.
//
// No flicker: rows are kept by run id and a row's cells are rebuilt only when that run changed;
// the scroll position and an open log are never touched by a refresh. A running stage's
// elapsed time ticks every second between refreshes. When the API fails, the last table stays
// and a banner says so; the next answer removes it.
//
// For tests and benchmarks: body[data-ready] is "true" after the first answer (or failure),
// body[data-refreshes] counts refreshes, and window.dashboard.stats keeps each refresh's cost
// (fetch + JSON, then the DOM update).

const REFRESH_MS = 5000;
const TIMEOUT_MS = 4000;
const PAGE_SIZE = 50;
const STAGES = [1, 2, 3, 4, 5, 6, 7];
const STAGE_NAMES = ['scan', 'merge', 'convert', 'version', 'retrain', 'register', 'clean'];
const STATUS = {
  complete: { sym: '✓', text: 'complete' },
  failed: { sym: '✗', text: 'failed' },
  running: { sym: '▶', text: 'running' },
  waiting: { sym: '…', text: 'waiting' },
  not_triggered: { sym: '–', text: 'not triggered' },
};

const $ = (id) => document.getElementById(id);
const tbody = document.querySelector('#runs tbody');
const rows = new Map(); // run_id -> { tr, sig }
const state = { offset: 0, next: null, prev: null, lastOk: null, openLog: null, refreshes: 0 };
// `refresh` is here for the benchmark (scripts/bench-dashboard.sh), which times it back to back.
window.dashboard = { stats: [], state, refresh: () => refresh() };

// --- formatting ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === '') continue;
    node.append(child);
  }
  return node;
}

const pad = (n) => String(n).padStart(2, '0');

/** `2026-12-01 10:00:05` (UTC). */
export function utc(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** `0.4 s`, `12 s`, `3 min 05 s`, `1 h 02 min`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '';
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(Math.floor(s % 60))} s`;
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

const logUrl = (run, n) => `/pipeline_runs/${run}/stages/${n}/log`;
const stageLabel = (n) => `Stage ${n} (${STAGE_NAMES[n - 1]})`;

// --- one row ---------------------------------------------------------------------------------

function stageCell(run, n) {
  const status = run[`stage_${n}_status`];
  const start = run[`stage_${n}_start`];
  const end = run[`stage_${n}_end`];
  const took = run[`stage_${n}_duration_s`];
  const message = run[`stage_${n}_message`];
  const look = STATUS[status] ?? { sym: '?', text: status };
  const title = [`${stageLabel(n)}: ${look.text}`];
  if (start) title.push(`started ${utc(start)} UTC`);
  if (end) title.push(`ended ${utc(end)} UTC`);
  if (took !== null && took !== undefined) title.push(`took ${duration(took)}`);
  if (message) title.push(message);

  const dur = el('span', { class: 'dur' });
  if (status === 'running' && start) {
    dur.dataset.since = start;
    dur.textContent = duration((Date.now() - Date.parse(start)) / 1000);
  } else if (took !== null && took !== undefined) {
    dur.textContent = duration(took);
  } else if (status === 'failed' && message?.startsWith('not run')) {
    dur.textContent = 'not run';
  }
  const content = [el('span', { class: 'sym', 'aria-hidden': 'true' }, look.sym), ` ${look.text}`];
  // A stage that started has a log: the badge links to it (opened below the table on click).
  const badge = start
    ? el('a', { class: `st st-${status}`, href: logUrl(run.run_id, n), dataset: { run: run.run_id, stage: n } }, ...content)
    : el('span', { class: `st st-${status}` }, ...content);
  const notRun = status === 'failed' && !start ? 'not-run' : null;
  return el('td', { class: ['stage', notRun].filter(Boolean).join(' '), title: title.join('\n'), dataset: { stage: n, status } }, badge, ' ', dur);
}

function modelCell(run) {
  if (!run.model_version) return el('td', { class: 'model muted' }, '—');
  const gate = run.promoted === true
    ? el('span', { class: 'gate-yes' }, '✓ promoted')
    : run.promoted === false
      ? el('span', { class: 'gate-no' }, '✗ not promoted')
      : el('span', { class: 'muted' }, 'gate pending');
  return el('td', { class: 'model' }, `v${run.model_version} `, gate);
}

function detailsCell(run) {
  const td = el('td', { class: 'details' });
  const failed = run.failed_stage;
  if (failed) {
    const reason = run[`stage_${failed}_message`] ?? 'no reason given';
    td.append(
      el('span', { class: 'reason' }, `${stageLabel(failed)} failed: ${reason} `),
      el('a', { href: logUrl(run.run_id, failed), class: 'log-link', dataset: { run: run.run_id, stage: failed } }, 'log'),
    );
    return td;
  }
  if (run.outcome === 'running') {
    const n = STAGES.find((s) => run[`stage_${s}_status`] === 'running');
    td.append(el('span', {}, n ? `${stageLabel(n)} running` : 'waiting to start'));
  } else if (run.outcome === 'not_triggered') {
    const n = STAGES.find((s) => run[`stage_${s}_status`] === 'not_triggered');
    td.append(el('span', { class: 'muted' }, run[`stage_${n}_message`] ?? 'not triggered'));
  }
  const facts = [];
  // A run that was not triggered says its count in its message already.
  if (run.outcome !== 'not_triggered' && run.new_images !== null && run.new_images !== undefined) facts.push(`${run.new_images} new drawings`);
  if (run.data_commit) facts.push(`data ${run.data_commit.slice(0, 8)}`);
  if (facts.length) {
    if (td.childNodes.length) td.append(el('br'));
    td.append(el('span', { class: 'muted' }, facts.join(' · ')));
  }
  return td;
}

function rowCells(run) {
  return [
    el('td', { class: 'id' }, String(run.run_id)),
    el('td', { class: 'time', title: new Date(run.start_time).toString() }, utc(run.start_time)),
    ...STAGES.map((n) => stageCell(run, n)),
    modelCell(run),
    detailsCell(run),
  ];
}

// --- the table -------------------------------------------------------------------------------

/** Bring the table to `runs` with as few DOM changes as possible; returns how many rows changed. */
function render(runs) {
  let changed = 0;
  const keep = new Set();
  runs.forEach((run, index) => {
    const sig = JSON.stringify(run);
    let row = rows.get(run.run_id);
    if (!row) {
      row = { tr: el('tr', { dataset: { run: run.run_id } }), sig: null };
      rows.set(run.run_id, row);
    }
    if (row.sig !== sig) {
      row.tr.replaceChildren(...rowCells(run));
      row.tr.dataset.outcome = run.outcome;
      row.sig = sig;
      changed += 1;
    }
    keep.add(run.run_id);
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] ?? null);
  });
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $('empty').hidden = runs.length > 0 || state.offset > 0;
  return changed;
}

/** `Link: </pipeline_runs?limit=50&offset=50>; rel="next", …` → { next: 50, … } (offsets). */
export function parseLink(header) {
  const out = {};
  for (const part of (header ?? '').split(',')) {
    const m = part.match(/<([^>]*)>\s*;\s*rel="?([a-z]+)"?/);
    if (!m) continue;
    const offset = new URL(m[1], location.origin).searchParams.get('offset');
    out[m[2]] = Number(offset ?? 0);
  }
  return out;
}

function showPager(runs) {
  $('newer').disabled = state.prev === null && state.offset === 0;
  $('older').disabled = state.next === null;
  $('page-info').textContent = runs.length
    ? `Runs ${state.offset + 1}–${state.offset + runs.length}${state.next !== null ? ' (older ones on the next pages)' : ''}`
    : '';
}

// --- refreshing ------------------------------------------------------------------------------

async function failureText(res) {
  try {
    const body = await res.json();
    if (body.detail) return `${res.status}: ${body.detail}`;
  } catch { /* not JSON */ }
  return `HTTP ${res.status}`;
}

function showBanner(why) {
  const since = state.lastOk ? ` Showing the runs as of ${state.lastOk.toLocaleTimeString()}.` : '';
  $('banner').textContent = `The dashboard API is not answering (${why}).${since} Retrying every ${REFRESH_MS / 1000} s.`;
  $('banner').hidden = false;
}

let timer = null;
let inFlight = null;

async function refresh() {
  clearTimeout(timer);
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  const timeout = setTimeout(() => controller.abort(new Error('timed out')), TIMEOUT_MS);
  const t0 = performance.now();
  try {
    const res = await fetch(`/pipeline_runs?limit=${PAGE_SIZE}&offset=${state.offset}`, {
      cache: 'no-store', signal: controller.signal, headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(await failureText(res));
    const runs = await res.json();
    const t1 = performance.now();
    const links = parseLink(res.headers.get('link'));
    state.next = links.next ?? null;
    state.prev = links.prev ?? null;
    const changed = render(runs);
    showPager(runs);
    const t2 = performance.now();
    state.lastOk = new Date();
    $('banner').hidden = true;
    $('updated').textContent = `Updated ${state.lastOk.toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
    window.dashboard.stats.push({ fetchMs: t1 - t0, renderMs: t2 - t1, rows: runs.length, changed });
    if (window.dashboard.stats.length > 1000) window.dashboard.stats.shift();
    if (state.openLog) await loadLog(false);
  } catch (err) {
    if (controller.signal.aborted && inFlight !== controller) return; // superseded by a newer refresh
    showBanner(err?.message ?? String(err));
  } finally {
    clearTimeout(timeout);
    if (inFlight === controller) {
      inFlight = null;
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      document.body.dataset.ready = 'true';
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }
}

/** Running stages' elapsed time, every second, without waiting for a refresh. */
function tick() {
  for (const span of document.querySelectorAll('.dur[data-since]')) {
    span.textContent = duration((Date.now() - Date.parse(span.dataset.since)) / 1000);
  }
}

// --- the log panel ---------------------------------------------------------------------------

async function loadLog(opening) {
  const { run, stage } = state.openLog;
  const pre = $('log-text');
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  let text;
  let meta = '';
  try {
    const res = await fetch(logUrl(run, stage), { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) {
      text = (await failureText(res)).replace(/^\d+: /, '');
    } else {
      text = await res.text();
      const size = Number(res.headers.get('x-log-size') ?? 0);
      meta = res.headers.get('x-log-truncated') === 'true'
        ? `the last ${text.length} characters of ${size} bytes`
        : `${size} bytes`;
    }
  } catch (err) {
    if (!opening) return; // keep what is shown; the banner speaks for the API
    text = `Could not load the log: ${err.message}`;
  }
  if (state.openLog?.run !== run || state.openLog?.stage !== stage) return; // another log opened meanwhile
  if (pre.textContent !== text) {
    const scroll = pre.scrollTop;
    pre.textContent = text;
    pre.scrollTop = opening || atBottom ? pre.scrollHeight : scroll;
  }
  $('log-meta').textContent = meta;
}

function openLog(run, stage) {
  state.openLog = { run, stage };
  $('log-title').textContent = `Run ${run} · ${stageLabel(stage)}`;
  $('log-raw').href = logUrl(run, stage);
  $('log-text').textContent = 'Loading…';
  $('log').hidden = false;
  $('log').dataset.run = String(run);
  $('log').dataset.stage = String(stage);
  loadLog(true);
}

function closeLog() {
  state.openLog = null;
  $('log').hidden = true;
}

// --- start -----------------------------------------------------------------------------------

function start() {
  tbody.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-run][data-stage]');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    openLog(Number(link.dataset.run), Number(link.dataset.stage));
  });
  $('log-close').addEventListener('click', closeLog);
  $('older').addEventListener('click', () => {
    if (state.next === null) return;
    state.offset = state.next;
    refresh();
  });
  $('newer').addEventListener('click', () => {
    state.offset = state.prev ?? 0;
    refresh();
  });
  setInterval(tick, 1000);
  refresh();
}

if (typeof document !== 'undefined' && document.getElementById('runs')) start();
