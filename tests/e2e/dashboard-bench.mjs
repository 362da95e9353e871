// The dashboard page's refresh cost in headless Chromium (scripts/bench-dashboard.sh runs it
// against a dashboard over 100 000 runs). Not a test: prints one JSON object.
//
// usage: node dashboard-bench.mjs <dashboard url> [refreshes]
//
// Three cases, each `refreshes` times back to back through the page's own refresh():
//   unchanged  the same 50 rows again (the usual 5-s refresh: fetch, parse, compare, no DOM change)
//   replaced   offset 0 and 50 alternately, so all 50 rows are rebuilt each time (worst case)
// and the first load. Per refresh: the page's own timings (fetch + JSON parse, DOM update) and
// Chromium's main-thread time (script, style, layout) from the DevTools Performance domain.

import { launch } from './lib/browser.mjs';

const url = process.argv[2];
const n = Number(process.argv[3] ?? 40);
if (!url) {
  console.error('usage: node dashboard-bench.mjs <dashboard url> [refreshes]');
  process.exit(2);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const summary = (xs) => ({ p50: +pct(xs, 50).toFixed(2), p95: +pct(xs, 95).toFixed(2), max: +Math.max(...xs).toFixed(2) });

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send('Performance.enable');
const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));

const t0 = Date.now();
await page.goto(url);
await page.waitForFunction(() => document.querySelectorAll('#runs tbody tr').length === 50, null, { timeout: 30000 });
const firstLoadMs = Date.now() - t0;
const first = await page.evaluate(() => window.dashboard.stats[0]);

async function run(name, before) {
  await page.evaluate(() => { window.dashboard.stats.length = 0; });
  const m0 = await metrics();
  const wall0 = Date.now();
  for (let i = 0; i < n; i += 1) {
    await page.evaluate(before, i);
    await page.evaluate(() => window.dashboard.refresh());
  }
  const wallMs = (Date.now() - wall0) / n;
  const m1 = await metrics();
  const stats = await page.evaluate(() => window.dashboard.stats);
  const per = (key) => +(((m1[key] - m0[key]) * 1000) / n).toFixed(2);
  return {
    name,
    refreshes: stats.length,
    rows: stats[0]?.rows,
    rows_changed: summary(stats.map((s) => s.changed)).p50,
    fetch_and_parse_ms: summary(stats.map((s) => s.fetchMs)),
    dom_update_ms: summary(stats.map((s) => s.renderMs)),
    main_thread_ms_per_refresh: {
      script: per('ScriptDuration'), style: per('RecalcStyleDuration'), layout: per('LayoutDuration'), task: per('TaskDuration'),
    },
    wall_ms_per_refresh: +wallMs.toFixed(2),
  };
}

const unchanged = await run('unchanged', () => { window.dashboard.state.offset = 0; });
const replaced = await run('replaced', (i) => { window.dashboard.state.offset = (i % 2) * 50; });
const nodes = await page.evaluate(() => document.getElementsByTagName('*').length);
console.log(JSON.stringify({ url, first_load_ms: firstLoadMs, first_refresh: first, dom_nodes: nodes, cases: [unchanged, replaced] }, null, 2));
await browser.close();
