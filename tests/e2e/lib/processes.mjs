// Starting and stopping the real binaries the browser tests run against.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target');
export const UI_SERVER_BIN = process.env.UI_SERVER_BIN ?? path.join(TARGET_DIR, 'debug', 'ui-server');

/** A port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'doodle-e2e-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Poll `url` until it answers 2xx, the process exits, or `timeoutMs` passes. */
export async function waitForHttp(url, child, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`${url}: the process exited with ${child.exitCode} before answering\n${child.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (${last})\n${child?.output() ?? ''}`);
}

/** Spawn a binary, keeping the tail of its output for error messages. */
export function startProcess(bin, args, env) {
  const child = spawn(bin, args, {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.output = () => output;
  child.stop = () => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
  return child;
}

/** The real ui-server on a free port, pointed at `backendUrl`. */
export async function startUiServer(backendUrl) {
  const port = await freePort();
  const logs = tempDir('doodle-ui-logs-');
  const child = startProcess(UI_SERVER_BIN, [], {
    DOODLE_UI__PORT: String(port),
    DOODLE_UI__HOST: '127.0.0.1',
    DOODLE_UI__STATIC_DIR: path.join(REPO, 'ui'),
    DOODLE_UI__BACKEND_URL: backendUrl,
    DOODLE_TELEMETRY__LOG_DIR: logs,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/health`, child);
  return { url, child, stop: () => child.stop() };
}
