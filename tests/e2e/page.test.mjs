// The page in headless Chromium against the real ui-server and a fake backend, which lets the
// tests make the backend slow, failing or gone. (real-stack.test.mjs runs the real backend.)

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';

import { launch, openPage, recordInvocations } from './lib/browser.mjs';
import {
  FLAT, HOUSE, RAINBOW, SMALL_OFF_CENTRE,
  ascii, drawWithMouse, drawWithTouch, inkBox, inkStats, percentile, readNpy,
} from './lib/drawings.mjs';
import { CATEGORIES, guessesAnswer, startFakeBackend } from './lib/fake-backend.mjs';
import { REPO, startUiServer } from './lib/processes.mjs';

const DATA_DIR = process.env.E2E_DATA_DIR ?? path.join(REPO, '..', 'shared', 'data', 'quickdraw', 'train');

let browser;
let fake;
let ui;
let defaultHandler;

before(async () => {
  fake = await startFakeBackend();
  defaultHandler = fake.handler;
  ui = await startUiServer(fake.url);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await ui?.stop();
  await fake?.stop();
});

beforeEach(() => {
  fake.handler = defaultHandler;
});

async function open(options) {
  const page = await openPage(browser, ui.url, options);
  return page;
}

/** Wait until the page has answered the latest drawing (no guess scheduled or in flight). */
async function waitForGuesses(page) {
  await page.waitForFunction(() => document.body.dataset.guess === 'idle'
    && document.querySelectorAll('#guesses li').length === 3);
}

async function previewBytes(page) {
  return Buffer.from(await page.evaluate(() => {
    const c = document.getElementById('preview');
    const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return Array.from(rgba.filter((_, i) => i % 4 === 0));
  }));
}

async function waitUntil(check, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('drawing → the 28×28 image sent', () => {
  for (const [name, strokes] of Object.entries({ HOUSE, RAINBOW, SMALL_OFF_CENTRE, FLAT })) {
    test(`${name}: 784 bytes, shown in the preview, centred, longer side 26 px like the dataset`, async () => {
      const page = await open();
      const sent = recordInvocations(page);
      await drawWithMouse(page, strokes);
      await waitForGuesses(page);
      const bytes = sent.at(-1);
      assert.equal(bytes.length, 784, 'the request body decodes to exactly 784 bytes');
      assert.deepEqual(await previewBytes(page), bytes, 'the preview shows exactly what was sent');
      const box = inkBox(bytes);
      const art = `\n${ascii(bytes)}`;
      assert.ok(Math.abs(box.centreX - 13.5) <= 1, `ink centred horizontally: ${JSON.stringify(box)}${art}`);
      assert.ok(Math.abs(box.centreY - 13.5) <= 1, `ink centred vertically: ${JSON.stringify(box)}${art}`);
      // Every Quick, Draw! training drawing's ink box is 26 px on its longer side (1 px margin).
      const longer = Math.max(box.width, box.height);
      assert.ok(longer >= 25 && longer <= 26, `longer side ${longer} px, expected 26 ± 1${art}`);
      assert.ok(Math.max(...bytes) === 255, 'strokes reach full ink');
      assert.ok(bytes.some((v) => v > 0 && v < 255), 'edges are anti-aliased');
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }

  test('strokes look like the training data: ink share and ink level within the dataset\'s 5–95 % range', async (t) => {
    for (const [category, strokes] of [['house', HOUSE], ['rainbow', RAINBOW]]) {
      const file = path.join(DATA_DIR, `${category}.npy`);
      assert.ok(existsSync(file), `training data missing: ${file} (set E2E_DATA_DIR)`);
      const stats = readNpy(file).map(inkStats);
      const page = await open();
      const sent = recordInvocations(page);
      await drawWithMouse(page, strokes);
      await waitForGuesses(page);
      const mine = inkStats(sent.at(-1));
      for (const key of ['inkShare', 'meanInk']) {
        const lo = percentile(stats.map((s) => s[key]), 5);
        const hi = percentile(stats.map((s) => s[key]), 95);
        t.diagnostic(`${category} ${key}: page ${mine[key].toFixed(3)}, dataset 5–95 % ${lo.toFixed(3)}–${hi.toFixed(3)}`);
        assert.ok(mine[key] >= lo && mine[key] <= hi,
          `${category} ${key} ${mine[key]} outside the dataset's ${lo}–${hi}\n${ascii(sent.at(-1))}`);
      }
      await page.context().close();
    }
  });

  test('a finger on a phone-sized screen draws through touch pointer events', async () => {
    const page = await open({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 3 });
    const types = [];
    await page.exposeFunction('recordPointerType', (t) => types.push(t));
    await page.evaluate(() => document.getElementById('pad')
      .addEventListener('pointerdown', (e) => window.recordPointerType(e.pointerType)));
    const sent = recordInvocations(page);
    await drawWithTouch(page, HOUSE);
    await waitForGuesses(page);
    assert.deepEqual(types, ['touch', 'touch']);
    assert.equal(sent.at(-1).length, 784);
    const box = inkBox(sent.at(-1));
    assert.ok(Math.abs(box.centreX - 13.5) <= 1 && Math.abs(box.centreY - 13.5) <= 1, JSON.stringify(box));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 390, `no sideways scrolling on a phone (page is ${overflow}px wide)`);
    const padBox = await page.locator('#pad').boundingBox();
    assert.ok(padBox.width >= 300, `the pad uses the phone's width (${padBox.width}px)`);
    await page.context().close();
  });

  test('undo removes the last stroke and clear empties the pad', async () => {
    const page = await open();
    const sent = recordInvocations(page);
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    const before = sent.length;
    const house = sent.at(-1);
    await page.getByRole('button', { name: 'Undo' }).click();
    await waitUntil(() => sent.length > before, 'a new guess after undo');
    const walls = sent.at(-1);
    assert.notDeepEqual(walls, house);
    // Only the walls are left: wider (0.5) than tall (0.4), where the house was taller than wide.
    const box = inkBox(walls);
    assert.ok(box.width === 26 && box.height >= 20 && box.height <= 23, JSON.stringify(box));
    assert.ok(inkBox(house).height === 26, JSON.stringify(inkBox(house)));
    await page.getByRole('button', { name: 'Clear' }).click();
    assert.deepEqual(await previewBytes(page), Buffer.alloc(784));
    assert.equal(await page.locator('#guesses li').count(), 0);
    for (const name of ['Undo', 'Clear', 'Guess']) {
      assert.ok(await page.getByRole('button', { name }).isDisabled(), `${name} disabled on an empty pad`);
    }
    await page.context().close();
  });
});

describe('guessing', () => {
  test('top-3 guesses appear with confidence bars after a stroke, without pressing anything', async () => {
    const page = await open();
    await drawWithMouse(page, [HOUSE[0]]);
    await waitForGuesses(page);
    const rows = await page.locator('#guesses li').evaluateAll((lis) => lis.map((li) => ({
      label: li.querySelector('.guess-label').dataset.label,
      pct: li.querySelector('.score').textContent,
      width: li.querySelector('.fill').style.width,
    })));
    assert.deepEqual(rows, [
      { label: 'house', pct: '70%', width: '70%' },
      { label: 'rainbow', pct: '20%', width: '20%' },
      { label: 'cat', pct: '6%', width: '6%' },
    ]);
    assert.match(await page.locator('#guess-status').textContent(), /house/);
    assert.equal(fake.of('invocations').length >= 1, true);
    await page.context().close();
  });

  test('quick strokes are debounced into one request; the Guess button asks again', async () => {
    const page = await open();
    const sent = recordInvocations(page);
    // Three strokes in one go (pointer events dispatched in the page, so no timing depends on
    // how fast the test machine is): one request, after the last stroke.
    await page.evaluate(() => {
      const pad = document.getElementById('pad');
      const r = pad.getBoundingClientRect();
      const fire = (type, x, y) => pad.dispatchEvent(new PointerEvent(type, {
        bubbles: true, cancelable: true, pointerId: 7, pointerType: 'mouse', isPrimary: true, button: 0,
        clientX: r.left + x * r.width, clientY: r.top + y * r.height,
      }));
      for (const y of [0.2, 0.4, 0.6]) {
        fire('pointerdown', 0.2, y);
        fire('pointermove', 0.5, y);
        fire('pointermove', 0.8, y);
        fire('pointerup', 0.8, y);
      }
    });
    await waitForGuesses(page);
    const box = inkBox(sent[0]);
    assert.ok(box.width === 26 && box.height >= 14, `all three strokes were sent: ${JSON.stringify(box)}`);
    assert.equal(sent.length, 1, `${sent.length} requests for 3 quick strokes`);
    const n = sent.length;
    await page.getByRole('button', { name: 'Guess' }).click();
    await waitUntil(() => sent.length === n + 1, 'the Guess button request');
    assert.deepEqual(sent.at(-1), sent.at(-2), 'the same drawing gives the same bytes');
    await page.context().close();
  });

  test('a late answer never overwrites a newer one', async () => {
    const page = await open();
    const start = fake.of('invocations').length;
    fake.handler = (kind, body, n) => {
      if (kind !== 'invocations') return defaultHandler(kind, body, n);
      if (n === start + 1) {
        // Answer the first drawing only after the second one has been answered.
        return waitUntil(() => fake.of('invocations').length >= start + 2, 'the second request', 20000)
          .then(() => ({ status: 200, json: guessesAnswer(['cat', 'dog', 'fish']), delayMs: 500 }));
      }
      return { status: 200, json: guessesAnswer(['house', 'book', 'eye']) };
    };
    await drawWithMouse(page, [HOUSE[0]]);
    await waitUntil(() => fake.of('invocations').length === start + 1, 'the first (slow) request');
    await drawWithMouse(page, [HOUSE[1]]);
    await page.waitForFunction(() => document.querySelector('#guesses li .guess-label')?.dataset.label === 'house');
    await page.waitForTimeout(1000); // the slow answer's time has come and gone
    const labels = await page.locator('#guesses .guess-label').evaluateAll((b) => b.map((x) => x.dataset.label));
    assert.deepEqual(labels, ['house', 'book', 'eye']);
    await page.context().close();
  });

  test('the Guess button is disabled while a guess is in flight', async () => {
    const page = await open();
    const start = fake.of('invocations').length;
    fake.handler = (kind, body, n) => ({ ...defaultHandler(kind, body, n), delayMs: kind === 'invocations' ? 1000 : 0 });
    await drawWithMouse(page, [HOUSE[0]]);
    await waitUntil(() => fake.of('invocations').length === start + 1, 'the request');
    const guess = page.getByRole('button', { name: 'Guess' });
    assert.ok(await guess.isDisabled(), 'disabled in flight');
    assert.equal(await guess.getAttribute('aria-busy'), 'true');
    await waitForGuesses(page);
    assert.ok(await guess.isEnabled(), 'enabled again after the answer');
    await page.context().close();
  });
});

describe('failures are visible', () => {
  const cases = [
    ['400 with the backend\'s detail', { status: 400, json: { detail: 'Image must be 28x28 pixels (784 values)' } },
      /refused the request \(400\): Image must be 28x28 pixels \(784 values\)/],
    ['422 with a FastAPI-style list', { status: 422, json: { detail: [{ loc: ['body', 'inputs'], msg: 'field required' }] } },
      /\(422\): field required/],
    ['500', { status: 500, json: { detail: 'Internal server error' } }, /The backend failed \(500\): Internal server error/],
    ['503 (model server down)', { status: 503, json: { detail: 'model server unavailable' } },
      /The model is not available right now \(503\): model server unavailable/],
    ['a body that is not JSON', { status: 502, raw: '<html>Bad Gateway</html>', contentType: 'text/html' },
      /The backend failed \(502\): <html>Bad Gateway<\/html>/],
  ];
  for (const [name, answer, expected] of cases) {
    test(`guess: ${name} → a readable message`, async () => {
      const page = await open();
      fake.handler = (kind, body, n) => (kind === 'invocations' ? answer : defaultHandler(kind, body, n));
      await drawWithMouse(page, [HOUSE[0]]);
      const banner = page.getByRole('alert').filter({ hasText: /\(\d{3}\)/ });
      await banner.waitFor();
      assert.match(await banner.textContent(), expected);
      assert.equal(await page.locator('#guesses li').count(), 0);
      assert.ok(await page.getByRole('button', { name: 'Guess' }).isEnabled(), 'can try again');
      // The next success clears the message.
      fake.handler = defaultHandler;
      await page.getByRole('button', { name: 'Guess' }).click();
      await waitForGuesses(page);
      assert.ok(await page.locator('#error').isHidden());
      await page.context().close();
    });
  }

  test('save: a refused category is shown with the backend\'s detail', async () => {
    const page = await open();
    fake.handler = (kind, body, n) => (kind === 'save'
      ? { status: 400, json: { detail: 'category must not be empty' } }
      : defaultHandler(kind, body, n));
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    await page.getByLabel("It's a").fill('house');
    await page.getByRole('button', { name: 'Save drawing' }).click();
    await page.locator('#error:not([hidden])').waitFor();
    assert.match(await page.locator('#error').textContent(), /\(400\): category must not be empty/);
    assert.equal(await page.locator('#save-status').textContent(), 'Not saved.');
    await page.context().close();
  });
});

describe('teaching', () => {
  test('offers the model\'s categories, refuses bad names on the page, saves exactly the bytes sent', async () => {
    const page = await open();
    const sent = recordInvocations(page);
    await page.waitForFunction((n) => document.querySelectorAll('#categories option').length === n, CATEGORIES.length);
    const offered = await page.locator('#categories option').evaluateAll((o) => o.map((x) => x.value));
    assert.deepEqual(offered, CATEGORIES);
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);

    const input = page.getByLabel("It's a");
    const save = page.getByRole('button', { name: 'Save drawing' });
    const saves = fake.of('save').length;
    for (const [bad, message] of [['../etc', /not allowed/], [' cat', /No space/], ['a/b', /not allowed/]]) {
      await input.fill(bad);
      assert.match(await page.locator('#category-error').textContent(), message, bad);
      assert.equal(await input.getAttribute('aria-invalid'), 'true');
      assert.ok(await save.isDisabled(), `save disabled for ${JSON.stringify(bad)}`);
      await input.press('Enter');
    }
    assert.equal(fake.of('save').length, saves, 'no invalid name reaches the backend');

    // Picking a guess fills the field.
    await page.locator('#guesses .guess-label').first().click();
    assert.equal(await input.inputValue(), 'house');
    fake.handler = (kind, body, n) => ({ ...defaultHandler(kind, body, n), delayMs: kind === 'save' ? 600 : 0 });
    await save.click();
    assert.ok(await save.isDisabled(), 'disabled while saving');
    await page.locator('#save-status', { hasText: 'Saved as' }).waitFor();
    const body = fake.of('save').at(-1).body;
    assert.equal(body.category, 'house');
    assert.deepEqual(Buffer.from(body.image, 'base64'), sent.at(-1), 'saved bytes are the bytes guessed on');
    assert.match(await page.locator('#save-status').textContent(), /Saved as “house”/);
    await page.context().close();
  });

  test('a new category can be typed and is saved as typed', async () => {
    const page = await open();
    await drawWithMouse(page, RAINBOW);
    await page.getByLabel("It's a").fill('T-Rex 2');
    await page.getByLabel("It's a").press('Enter');
    await page.locator('#save-status', { hasText: 'Saved as' }).waitFor();
    assert.equal(fake.of('save').at(-1).body.category, 'T-Rex 2');
    await page.context().close();
  });
});

describe('accessibility', () => {
  test('every control has a name and is reachable with the keyboard; Ctrl+Z undoes', async () => {
    const page = await open();
    for (const name of ['Undo', 'Clear', 'Guess', 'Save drawing']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 1, name);
    }
    assert.equal(await page.getByLabel("It's a").count(), 1);
    assert.equal(await page.getByRole('img', { name: /Drawing area/ }).count(), 1);
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    const order = [];
    await page.locator('body').focus();
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.className));
    }
    for (const id of ['undo', 'clear', 'guess', 'category']) assert.ok(order.includes(id), `${id} in ${order}`);
    const sent = recordInvocations(page);
    await page.locator('body').focus();
    await page.keyboard.press('Control+z');
    await waitUntil(() => sent.length === 1, 'a guess after Ctrl+Z');
    const box = inkBox(sent[0]);
    assert.ok(box.width === 26 && box.height <= 23, `only the walls are left: ${JSON.stringify(box)}`);
    await page.context().close();
  });
});

describe('contrast', () => {
  test('text meets WCAG AA contrast (4.5:1) against its background', async () => {
    const page = await open();
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    await page.getByLabel("It's a").fill('a/b');
    const ratios = await page.evaluate(() => {
      const rgb = (s) => s.match(/[\d.]+/g).map(Number);
      const lum = ([r, g, b]) => {
        const f = (c) => { const v = c / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = rgb(getComputedStyle(e).backgroundColor);
          if (c.length < 4 || c[3] > 0) return c;
        }
        return [255, 255, 255];
      };
      const selectors = ['h1', '.top p', 'h2', '#guess-status', '.guess-label', '.score', '#undo', '#guess',
        '.hint', '#category-error', 'label[for="category"]', '.preview figcaption', '.foot p'];
      return selectors.map((sel) => {
        const el = document.querySelector(sel);
        const a = lum(rgb(getComputedStyle(el).color));
        const b = lum(background(el));
        return { sel, ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
      });
    });
    for (const { sel, ratio } of ratios) assert.ok(ratio >= 4.5, `${sel}: contrast ${ratio.toFixed(2)}:1`);
    await page.context().close();
  });
});

describe('backend gone', () => {
  test('backend stopped → the error message is shown', async () => {
    const page = await open();
    await drawWithMouse(page, HOUSE);
    await waitForGuesses(page);
    await fake.stop();
    await page.getByRole('button', { name: 'Guess' }).click();
    const banner = page.locator('#error');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), new RegExp(`Cannot reach the backend at ${fake.url}`));
    assert.equal(await banner.getAttribute('role'), 'alert');
    await page.getByLabel("It's a").fill('house');
    await page.getByRole('button', { name: 'Save drawing' }).click();
    await page.locator('#save-status', { hasText: 'Not saved.' }).waitFor();
    assert.match(await banner.textContent(), /Cannot reach the backend/);
    await page.context().close();
  });

  test('a page whose backend is gone from the start says so, and still lets you draw', async () => {
    // (the fake is stopped by the test above; the page loads its categories from it)
    const page = await open();
    await page.locator('#category-help', { hasText: 'Could not load' }).waitFor();
    await drawWithMouse(page, HOUSE);
    await page.locator('#error:not([hidden])').waitFor();
    assert.match(await page.locator('#error').textContent(), /Cannot reach the backend/);
    await page.context().close();
  });
});
