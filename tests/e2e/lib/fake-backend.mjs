// A stand-in backend for fault injection: it answers like the real one (CORS included), records
// what it was sent, and can be told to be slow, fail, or stop.

import { createServer } from 'node:http';

export const CATEGORIES = ['airplane', 'alarm_clock', 'apple', 'house', 'rainbow', 'cat'];

export function guessesAnswer(labels) {
  const top = labels.map((label, i) => ({ label, score: [0.7, 0.2, 0.06, 0.03, 0.01][i] ?? 0.001 }));
  return { predictions: [{ label: top[0].label, score: top[0].score, top_k: top }] };
}

/**
 * `handler(kind, body, n)` decides each answer: {status, json, delayMs}. `kind` is
 * 'invocations' | 'save' | 'categories'; n counts that kind's requests from 1.
 */
export async function startFakeBackend() {
  const requests = [];
  const counts = { invocations: 0, save: 0, categories: 0 };
  const fake = {
    requests,
    handler: (kind) => {
      if (kind === 'invocations') return { status: 200, json: guessesAnswer(['house', 'rainbow', 'cat']) };
      if (kind === 'save') return { status: 200, json: { message: 'Image saved successfully', filepath: 'x/1.png' } };
      return { status: 200, json: { name: 'doodle-classifier', version: 1, categories: CATEGORIES } };
    },
  };
  const sockets = new Set();
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', 'content-type');
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', async () => {
      const url = new URL(req.url, 'http://x');
      const kind = url.pathname.startsWith('/invocations') ? 'invocations'
        : url.pathname.startsWith('/save-image') ? 'save'
          : url.pathname === '/categories' ? 'categories' : null;
      if (!kind) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
        return;
      }
      counts[kind] += 1;
      const body = raw ? JSON.parse(raw) : undefined;
      const entry = { kind, body, n: counts[kind], at: Date.now() };
      requests.push(entry);
      const answer = await fake.handler(kind, body, counts[kind]);
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      if (res.destroyed) return;
      res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json' });
      res.end(answer.raw ?? JSON.stringify(answer.json));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${server.address().port}`;
  fake.of = (kind) => requests.filter((r) => r.kind === kind);
  fake.stop = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return fake;
}
