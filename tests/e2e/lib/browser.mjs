// Debian's chromium, driven by playwright-core.

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A fresh page on `url`, ready once the page has read its configuration. */
export async function openPage(browser, url, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ...options });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  page.problems = problems;
  return page;
}

/** Every `{"inputs": ...}` body the page sends to /invocations/, decoded. */
export function recordInvocations(page) {
  const sent = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().includes('/invocations')) {
      const body = JSON.parse(req.postData());
      sent.push(Buffer.from(body.inputs, 'base64'));
    }
  });
  return sent;
}
