// The pipeline dashboard's page in headless Chromium against the real `dashboard` binary and a
// real SQLite database this test writes (scripts/test-dashboard.sh builds the binary).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launch, openPage } from './lib/browser.mjs';
import {
  DECODE_FAILURE, insertRun, seedEveryStatus, sql, startDashboard, ts, writeStageLog,
} from './lib/dashboard.mjs';
import { tempDir } from './lib/processes.mjs';

const SCREENSHOT = process.env.DASHBOARD_SCREENSHOT;

let browser;
let dashboard;
let dir;
let dbPath;
let logDir;

before(async () => {
  dir = tempDir('doodle-dashboard-e2e-');
  dbPath = path.join(dir, 'runs.db');
  logDir = path.join(dir, 'logs');
  dashboard = await startDashboard({ dbPath, logDir });
  // The first query migrates the (new) database, as it would for an orchestrator's.
  const first = await fetch(`${dashboard.url}/pipeline_runs`);
  assert.equal(first.status, 200);
  assert.deepEqual(await first.json(), []);
  seedEveryStatus(dbPath);
  writeStageLog(logDir, 7, 3, `converting 40 drawings\ncat/7.png: not a PNG\nfailure: ${DECODE_FAILURE}\n`);
  writeStageLog(logDir, 8, 5, 'epoch 1/3: loss 0.912, val top-1 0.774\n');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dashboard?.stop();
});

/** The page, with its first table rendered. */
async function open(viewport = { width: 1600, height: 760 }) {
  const page = await openPage(browser, dashboard.url, { viewport });
  await page.waitForFunction(() => document.querySelectorAll('#runs tbody tr').length > 0);
  return page;
}

/** Each row as { id, cells: [text...] } (whitespace collapsed). */
function tableText(page) {
  return page.$$eval('#runs tbody tr', (trs) => trs.map((tr) => ({
    id: Number(tr.dataset.run),
    cells: [...tr.children].map((td) => td.textContent.replace(/\s+/g, ' ').trim()),
  })));
}

/** A stage cell's status words: without its symbol, its duration or "not run". */
const stageText = (row) => row.cells.slice(2, 9).map((c) => c.replace(/^\S+ /, '').replace(/ (not run|[\d.]+ (s|min|h).*)$/, ''));

describe('the table', () => {
  test('every run, newest first, each status in words with its colour, reasons, models and gate decisions', async () => {
    const page = await open();
    const rows = await tableText(page);
    assert.deepEqual(rows.map((r) => r.id), [8, 7, 6, 5, 4, 3, 2, 1]);
    const byId = Object.fromEntries(rows.map((r) => [r.id, r]));

    assert.deepEqual(stageText(byId[8]), ['complete', 'complete', 'complete', 'complete', 'running', 'waiting', 'waiting']);
    assert.deepEqual(stageText(byId[7]), ['complete', 'complete', 'failed', 'failed', 'failed', 'failed', 'failed']);
    assert.deepEqual(stageText(byId[6]), Array(7).fill('complete'));
    assert.deepEqual(stageText(byId[5]), ['complete', ...Array(6).fill('not triggered')]);

    assert.match(byId[7].cells[10], new RegExp(`Stage 3 \\(convert\\) failed: ${DECODE_FAILURE} log`));
    assert.match(byId[2].cells[10], /Stage 5 \(retrain\) failed: training ran past/);
    assert.match(byId[5].cells[10], /7 new drawings, fewer than the threshold of 20/);
    assert.match(byId[8].cells[10], /Stage 5 \(retrain\) running/);
    assert.equal(byId[6].cells[9], 'v5 ✓ promoted');
    assert.equal(byId[4].cells[9], 'v4 ✗ not promoted');
    assert.equal(byId[7].cells[9], '—');
    assert.match(byId[1].cells[1], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);

    // Colour and text: the class that colours it and the words agree for every stage cell.
    const cells = await page.$$eval('#runs td.stage', (tds) => tds.map((td) => ({
      status: td.dataset.status,
      cls: td.firstElementChild.className,
      text: td.textContent,
      colour: getComputedStyle(td.firstElementChild).borderTopColor,
    })));
    const colours = {};
    for (const c of cells) {
      assert.ok(c.cls.includes(`st-${c.status}`), JSON.stringify(c));
      assert.ok(c.text.includes(c.status.replace('_', ' ')), JSON.stringify(c));
      colours[c.status] ??= c.colour;
      assert.equal(c.colour, colours[c.status], `one colour per status: ${JSON.stringify(c)}`);
    }
    assert.equal(new Set(Object.values(colours)).size, Object.keys(colours).length, `distinct colours: ${JSON.stringify(colours)}`);

    // Durations on hover.
    const title = await page.getAttribute('#runs tr[data-run="1"] td.stage[data-stage="5"]', 'title');
    assert.match(title, /Stage 5 \(retrain\): complete\nstarted .* UTC\nended .* UTC\ntook 14 min 00 s/);
    // The running stage ticks: its elapsed time grows without a refresh.
    const elapsed = () => page.textContent('#runs tr[data-run="8"] td.stage[data-stage="5"] .dur');
    const before = await elapsed();
    await page.waitForFunction((b) => document.querySelector('#runs tr[data-run="8"] td.stage[data-stage="5"] .dur').textContent !== b, before, { timeout: 3000 });
    assert.match(await elapsed(), /^\d+ s$/);

    assert.match(await page.textContent('#updated'), /^Updated /);
    assert.equal(await page.isVisible('#banner'), false);
    if (SCREENSHOT) {
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert.deepEqual([...readFileSync(SCREENSHOT).subarray(1, 4)].map((b) => String.fromCharCode(b)).join(''), 'PNG');
    }
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("a failed stage's log opens below the table, and links to the raw text", async () => {
    const page = await open();
    await page.click('#runs tr[data-run="7"] td.details a');
    await page.waitForFunction(() => document.getElementById('log-text').textContent.includes('failure:'));
    assert.equal(await page.textContent('#log-title'), 'Run 7 · Stage 3 (convert)');
    assert.match(await page.textContent('#log-text'), /cat\/7\.png: not a PNG/);
    assert.equal(await page.getAttribute('#log-raw', 'href'), '/pipeline_runs/7/stages/3/log');
    // A stage that never ran has no link.
    assert.equal(await page.$('#runs tr[data-run="7"] td.stage[data-stage="4"] a'), null);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('live', () => {
  test('a status changed in the database appears within 6 s, in place: scroll, the open log and other rows untouched', async () => {
    const page = await open({ width: 1600, height: 420 });
    await page.click('#runs tr[data-run="8"] td.stage[data-stage="5"] a');
    await page.waitForFunction(() => document.getElementById('log-text').textContent.includes('epoch 1/3'));
    await page.evaluate(() => window.scrollTo(0, 120));
    const scrollBefore = await page.evaluate(() => window.scrollY);
    assert.ok(scrollBefore > 0, 'the page scrolls at this height');
    await page.evaluate(() => {
      document.querySelector('#runs tr[data-run="8"]').marked = true;
      document.querySelector('#runs tr[data-run="7"] td.details').marked = true;
    });
    const refreshesBefore = Number(await page.getAttribute('body', 'data-refreshes'));

    // Stage 5 completes, stage 6 starts; the log grows; a new run starts.
    const now = new Date();
    sql(dbPath, `UPDATE pipeline_runs SET stage_5_status = 'complete', stage_5_end = '${ts(now)}',
      stage_6_status = 'running', stage_6_start = '${ts(now)}', model_version = '6' WHERE run_id = 8;\n`);
    writeStageLog(logDir, 8, 5, 'epoch 1/3: loss 0.912, val top-1 0.774\nepoch 2/3: loss 0.655, val top-1 0.801\n');
    insertRun(dbPath, { id: 9, start: now, ended: false, stages: [{ status: 'running' }] });
    const changedAt = Date.now();
    await page.waitForFunction(() => {
      const cell = (s) => document.querySelector(`#runs tr[data-run="8"] td.stage[data-stage="${s}"]`)?.dataset.status;
      return cell(5) === 'complete' && cell(6) === 'running'
        && document.querySelector('#runs tbody tr')?.dataset.run === '9';
    }, null, { timeout: 6000, polling: 50 });
    const took = Date.now() - changedAt;
    assert.ok(took <= 6000, `shown after ${took} ms`);

    const rows = await tableText(page);
    assert.deepEqual(rows.map((r) => r.id), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
    assert.deepEqual(stageText(rows[1]), ['complete', 'complete', 'complete', 'complete', 'complete', 'running', 'waiting']);
    assert.match(rows[1].cells[9], /^v6 gate pending$/);
    const kept = await page.evaluate(() => ({
      row: document.querySelector('#runs tr[data-run="8"]').marked === true,
      other: document.querySelector('#runs tr[data-run="7"] td.details').marked === true,
      scroll: window.scrollY,
      log: !document.getElementById('log').hidden && document.getElementById('log-title').textContent,
    }));
    assert.deepEqual(kept, { row: true, other: true, scroll: scrollBefore, log: 'Run 8 · Stage 5 (retrain)' });
    // The open log follows its file.
    await page.waitForFunction(() => document.getElementById('log-text').textContent.includes('epoch 2/3'), null, { timeout: 6000 });
    assert.ok(Number(await page.getAttribute('body', 'data-refreshes')) > refreshesBefore);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a banner while the API is down, gone once it is back; the table stays', async () => {
    const page = await open();
    const rowsBefore = (await tableText(page)).map((r) => r.id);
    await dashboard.stop();
    await page.waitForSelector('#banner', { state: 'visible', timeout: 11000 });
    assert.match(await page.textContent('#banner'), /The dashboard API is not answering .* Retrying every 5 s\./);
    assert.deepEqual((await tableText(page)).map((r) => r.id), rowsBefore, 'the last table stays');

    dashboard = await startDashboard({ dbPath, logDir, port: dashboard.port });
    await page.waitForSelector('#banner', { state: 'hidden', timeout: 11000 });
    assert.match(await page.textContent('#updated'), /^Updated /);
    assert.deepEqual((await tableText(page)).map((r) => r.id), rowsBefore);
    await page.context().close();
  });
});
