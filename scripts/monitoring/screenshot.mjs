// Prometheus's own graph page with the backend's request rate and p95 latency, as a PNG.
// Usage: node scripts/monitoring/screenshot.mjs PROMETHEUS_URL OUT.png
// playwright-core comes from tests/e2e/node_modules (scripts/setup-test-tools.sh).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../tests/e2e/package.json'));
const { chromium } = require('playwright-core');

const [prom, out] = process.argv.slice(2);
const graphs = [
  'sum by (route) (rate(doodle_http_requests_total{job="backend"}[1m]))',
  'histogram_quantile(0.95, sum by (le, route) (rate(doodle_http_request_duration_seconds_bucket{job="backend",route=~"/invocations/?|/save-image/?"}[1m])))',
];
const params = new URLSearchParams();
graphs.forEach((expr, i) => {
  params.set(`g${i}.expr`, expr);
  params.set(`g${i}.tab`, '0');
  params.set(`g${i}.range_input`, '1m');
  params.set(`g${i}.stacked`, '0');
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1250 } });
  await page.goto(`${prom}/graph?${params}`, { waitUntil: 'networkidle' });
  // Both graphs drawn, each with its legend (one entry per series), before the picture.
  const drawn = () => page.evaluate(() => ({
    legends: document.body.innerText.split('{route="/invocations/"}').length - 1,
    empty: document.body.innerText.includes('no datapoints found'),
  }));
  let state = await drawn();
  for (let i = 0; i < 60 && (state.legends < 2 || state.empty); i += 1) {
    await page.waitForTimeout(500);
    state = await drawn();
  }
  await page.waitForTimeout(500);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot: ${out} ${JSON.stringify(state)}`);
  if (state.legends < 2 || state.empty) throw new Error(`the graphs were not drawn: ${JSON.stringify(state)}`);
} finally {
  await browser.close();
}
