// The real `dashboard` binary over an SQLite file the browser tests write, as the orchestrator
// would, with the sqlite3 command-line shell.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { REPO, TARGET_DIR, freePort, startProcess, waitForHttp } from './processes.mjs';

export const DASHBOARD_BIN = process.env.DASHBOARD_BIN ?? path.join(TARGET_DIR, 'debug', 'dashboard');
export const SQLITE3 = process.env.SQLITE3 ?? 'sqlite3';

/** The dashboard on `port` (a free one when not given) over `dbPath`, stage logs under `logDir`. */
export async function startDashboard({ dbPath, logDir, port }) {
  const p = port ?? await freePort();
  const child = startProcess(DASHBOARD_BIN, [], {
    DOODLE_DASHBOARD__HOST: '127.0.0.1',
    DOODLE_DASHBOARD__PORT: String(p),
    DOODLE_DATABASE__URL: `sqlite://${dbPath}?mode=rwc`,
    DOODLE_TELEMETRY__LOG_DIR: logDir,
  });
  const url = `http://127.0.0.1:${p}`;
  await waitForHttp(`${url}/health`, child);
  return { url, port: p, child, stop: () => child.stop() };
}

/** Run SQL on the file (waiting up to 5 s for the dashboard's readers, WAL mode). */
export function sql(dbPath, text) {
  return execFileSync(SQLITE3, ['-batch', '-cmd', '.timeout 5000', dbPath], { input: text, encoding: 'utf8' });
}

/** The stored time format: fixed width, UTC, microseconds. */
export function ts(date) {
  return `${date.toISOString().slice(0, 23)}000Z`;
}

const q = (v) => (v === null || v === undefined ? 'NULL' : typeof v === 'number' || typeof v === 'boolean' ? String(Number(v)) : `'${String(v).replaceAll("'", "''")}'`);

/**
 * A run as the orchestrator leaves it. `stages`: up to 7 entries
 * `{ status, took?: seconds, message?, running?: true }`; missing ones are waiting.
 * Stages run back to back from `start`.
 */
export function insertRun(dbPath, { id, start, stages = [], output = {}, ended = true }) {
  const cols = { run_id: id, start_time: ts(start), trigger: 'schedule', host: 'ci', pid: 4242 };
  let t = start.getTime() + 200;
  for (let n = 1; n <= 7; n += 1) {
    const s = stages[n - 1] ?? { status: 'waiting' };
    cols[`stage_${n}_status`] = s.status;
    if (s.message) cols[`stage_${n}_message`] = s.message;
    if (s.status === 'complete' || s.status === 'failed') {
      if (!s.message?.startsWith('not run')) {
        cols[`stage_${n}_start`] = ts(new Date(t));
        t += (s.took ?? 1) * 1000;
      }
      cols[`stage_${n}_end`] = ts(new Date(t));
    } else if (s.status === 'running') {
      cols[`stage_${n}_start`] = ts(new Date(t));
    } else if (s.status === 'not_triggered') {
      cols[`stage_${n}_end`] = ts(new Date(t));
    }
  }
  if (ended && !stages.some((s) => s.status === 'running')) cols.end_time = ts(new Date(t));
  Object.assign(cols, output);
  const names = Object.keys(cols).map((k) => (k === 'trigger' ? '"trigger"' : k));
  sql(dbPath, `INSERT INTO pipeline_runs (${names.join(', ')}) VALUES (${Object.values(cols).map(q).join(', ')});\n`);
}

export function writeStageLog(logDir, run, stage, text) {
  const dir = path.join(logDir, 'runs', String(run));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `stage${stage}.log`), text);
}

const ok = (took) => ({ status: 'complete', took });
const notRun = (n) => ({ status: 'failed', message: `not run: stage ${n} failed` });
const few = (count) => ({ status: 'not_triggered', message: `${count} new drawings, fewer than the threshold of 20` });

export const DECODE_FAILURE = '3 of 40 drawings could not be decoded: cat/7.png is not a PNG';
export const BUDGET_FAILURE = 'training ran past its 60 min budget (pipeline.retrain_max_minutes)';

/**
 * Eight runs, newest first: 8 running (stage 5), 7 failed at stage 3, 6 complete and promoted,
 * 5 not triggered, 4 complete but refused by the gate, 3 not triggered, 2 failed at stage 5,
 * 1 complete and promoted. Times are relative to `now`.
 */
export function seedEveryStatus(dbPath, now = new Date()) {
  const ago = (min) => new Date(now.getTime() - min * 60_000);
  const data = (n) => ({ data_commit: `${n}e3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b`, data_hash: `9f8e7d6c5b4a${n}.dir` });
  const full = [ok(0.3), ok(2.1), ok(4.8), ok(6.2), ok(840), ok(100), ok(0.4)];
  insertRun(dbPath, { id: 1, start: ago(600), stages: full, output: { new_images: 64, ...data(1), model_version: '3', promoted: true } });
  insertRun(dbPath, {
    id: 2, start: ago(540),
    stages: [ok(0.3), ok(1.9), ok(4.1), ok(5.5), { status: 'failed', took: 3600, message: BUDGET_FAILURE }, notRun(5), notRun(5)],
    output: { new_images: 51, ...data(2) },
  });
  insertRun(dbPath, { id: 3, start: ago(480), stages: [ok(0.2), few(3), few(3), few(3), few(3), few(3), few(3)], output: { new_images: 3 } });
  insertRun(dbPath, { id: 4, start: ago(420), stages: full, output: { new_images: 45, ...data(4), model_version: '4', promoted: false } });
  insertRun(dbPath, { id: 5, start: ago(360), stages: [ok(0.2), few(7), few(7), few(7), few(7), few(7), few(7)], output: { new_images: 7 } });
  insertRun(dbPath, { id: 6, start: ago(300), stages: full, output: { new_images: 88, ...data(6), model_version: '5', promoted: true } });
  insertRun(dbPath, {
    id: 7, start: ago(240),
    stages: [ok(0.3), ok(2.4), { status: 'failed', took: 1.2, message: DECODE_FAILURE }, notRun(3), notRun(3), notRun(3), notRun(3)],
    output: { new_images: 40 },
  });
  // Running: stage 5 started 42 s before `now`.
  const start8 = new Date(now.getTime() - (0.2 + 0.3 + 2 + 5 + 6 + 42) * 1000);
  insertRun(dbPath, {
    id: 8, start: start8, ended: false,
    stages: [ok(0.3), ok(2), ok(5), ok(6), { status: 'running' }],
    output: { new_images: 31, ...data(8) },
  });
}

export { REPO };
