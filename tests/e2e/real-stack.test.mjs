// The page against the real stack: ui-server → backend → model server with a small trained
// model. scripts/test-ui.sh trains the model (once, cached), starts the three servers and passes
// their addresses in E2E_* variables. Run without them, these tests are skipped with the reason
// (never passed): the runner prints which prerequisites are missing.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launch, openPage, recordInvocations } from './lib/browser.mjs';
import { HOUSE, RAINBOW, ascii, drawWithMouse, inkBox } from './lib/drawings.mjs';
import { decodeGrayPng } from './lib/png.mjs';

const env = process.env;
const skip = env.E2E_UI_URL
  ? false
  : `real stack not started: ${env.E2E_REAL_STACK_MISSING
    ?? 'run these tests through scripts/test-ui.sh, which starts ui-server, backend and model-server'}`;

let browser;

async function waitForGuesses(page) {
  await page.waitForFunction(() => document.body.dataset.guess === 'idle'
    && document.querySelectorAll('#guesses li').length === 3, null, { timeout: 20000 });
}

async function shownGuesses(page) {
  return page.locator('#guesses li').evaluateAll((lis) => lis.map((li) => ({
    label: li.querySelector('.guess-label').dataset.label,
    score: li.querySelector('.score').textContent,
  })));
}

describe('real stack: ui-server + backend + model server', { skip }, () => {
  before(async () => {
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
  });

  for (const [category, strokes] of [['house', HOUSE], ['rainbow', RAINBOW]]) {
    test(`a ${category} drawn with the mouse has "${category}" in the model's top-3`, async (t) => {
      const page = await openPage(browser, env.E2E_UI_URL);
      const sent = recordInvocations(page);
      await drawWithMouse(page, strokes);
      await waitForGuesses(page);
      const guesses = await shownGuesses(page);
      t.diagnostic(`${category}: ${guesses.map((g) => `${g.label} ${g.score}`).join(', ')}`);
      const bytes = sent.at(-1);
      assert.equal(bytes.length, 784);
      const box = inkBox(bytes);
      assert.ok(Math.abs(box.centreX - 13.5) <= 1 && Math.abs(box.centreY - 13.5) <= 1, JSON.stringify(box));
      assert.ok(guesses.some((g) => g.label === category),
        `${category} not in the top-3 ${JSON.stringify(guesses)} for\n${ascii(bytes)}`);
      assert.deepEqual(page.problems, []);
      if (category === 'house' && env.E2E_SCREENSHOT) {
        // `E2E_SCREENSHOT=docs/ui.png scripts/test-ui.sh` refreshes the README's picture.
        await page.getByLabel("It's a").fill('house');
        await page.screenshot({ path: path.resolve(env.E2E_REPO ?? '.', env.E2E_SCREENSHOT) });
      }
      await page.context().close();
    });
  }

  test('the teaching field offers the model\'s categories', async () => {
    const page = await openPage(browser, env.E2E_UI_URL);
    await page.waitForFunction(() => document.querySelectorAll('#categories option').length > 0);
    const offered = await page.locator('#categories option').evaluateAll((o) => o.map((x) => x.value));
    const expected = readFileSync(env.E2E_CATEGORIES_FILE, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
    assert.deepEqual(offered, expected);
    await page.context().close();
  });

  test('save → a PNG in the category folder that decodes to the bytes sent', async () => {
    const page = await openPage(browser, env.E2E_UI_URL);
    const sent = recordInvocations(page);
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    const folder = path.join(env.E2E_IMG_DIR, 'house');
    const list = () => {
      try { return readdirSync(folder).filter((f) => f.endsWith('.png')); } catch { return []; }
    };
    const before = new Set(list());
    await page.getByLabel("It's a").fill('house');
    await page.getByRole('button', { name: 'Save drawing' }).click();
    await page.locator('#save-status', { hasText: 'Saved as' }).waitFor();
    const added = list().filter((f) => !before.has(f));
    assert.equal(added.length, 1, `one new PNG in ${folder}: ${added}`);
    const png = decodeGrayPng(readFileSync(path.join(folder, added[0])));
    assert.equal(png.width, 28);
    assert.equal(png.height, 28);
    assert.deepEqual(png.pixels, sent.at(-1), 'the saved PNG holds exactly the bytes sent');
    assert.match(await page.locator('#save-status').textContent(), new RegExp(added[0]));
    await page.context().close();
  });

  // Last: it stops the backend.
  test('backend stopped → the error message is shown', async () => {
    const page = await openPage(browser, env.E2E_UI_URL);
    await drawWithMouse(page, RAINBOW);
    await waitForGuesses(page);
    process.kill(Number(env.E2E_BACKEND_PID), 'SIGTERM');
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        await fetch(`${env.E2E_BACKEND_URL}/health`, { signal: AbortSignal.timeout(500) });
      } catch {
        break; // gone
      }
      if (Date.now() > deadline) throw new Error('the backend did not stop');
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.getByRole('button', { name: 'Guess' }).click();
    const banner = page.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /Cannot reach the backend at http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(await page.locator('#guesses li').count(), 0);
    await page.context().close();
  });
});
