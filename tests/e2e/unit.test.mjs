// The page's pure modules, in node: the category rule (the same cases as doodle_core's tests),
// "only the newest answer counts", and reading the model server's answer.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { topGuesses } from '../../ui/js/api.js';
import { categoryProblem } from '../../ui/js/category.js';
import { Latest } from '../../ui/js/latest.js';
import { normalize, simplify } from '../../ui/js/preprocess.js';

test('category rule accepts what the backend accepts', () => {
  for (const ok of ['cat', 'alarm_clock', 'alarm clock', 'T-Rex 2', 'a', 'x'.repeat(64)]) {
    assert.equal(categoryProblem(ok), null, ok);
  }
});

test('category rule refuses what the backend refuses, saying why', () => {
  const cases = [
    ['', /Type a category/],
    ['.', /"\." is not allowed/],
    ['..', /not allowed/],
    ['../etc', /not allowed/],
    ['a/b', /"\/" is not allowed/],
    ['a\\b', /not allowed/],
    ['nul\0', /not allowed/],
    ['new\nline', /not allowed/],
    ['café', /"é" is not allowed/],
    [' cat', /No space at the start or the end/],
    ['cat ', /No space at the start or the end/],
    ['x'.repeat(65), /65 characters long; at most 64/],
    ['a"b', /not allowed/],
  ];
  for (const [name, expected] of cases) {
    assert.match(categoryProblem(name) ?? 'accepted', expected, JSON.stringify(name));
  }
});

test('latest: a newer request aborts the older one and makes it stale', () => {
  const latest = new Latest();
  const first = latest.start();
  assert.ok(latest.inFlight);
  const second = latest.start();
  assert.ok(first.signal.aborted);
  assert.equal(first.isCurrent(), false);
  assert.equal(second.isCurrent(), true);
  first.done(); // a stale request finishing does not end the newer one
  assert.ok(latest.inFlight);
  second.done();
  assert.equal(latest.inFlight, false);
});

test('latest: cancel makes the request in flight stale', () => {
  const latest = new Latest();
  const r = latest.start();
  latest.cancel();
  assert.ok(r.signal.aborted);
  assert.equal(r.isCurrent(), false);
  assert.equal(latest.inFlight, false);
});

test('topGuesses reads top_k best first, or the single label', () => {
  const answer = {
    predictions: [{
      label: 'cat',
      score: 0.5,
      top_k: [{ label: 'dog', score: 0.2 }, { label: 'cat', score: 0.5 }, { label: 'eye', score: 0.1 }],
    }],
  };
  assert.deepEqual(topGuesses(answer).map((g) => g.label), ['cat', 'dog', 'eye']);
  assert.deepEqual(topGuesses({ predictions: [{ label: 'fish', score: 0.9 }] }), [{ label: 'fish', score: 0.9 }]);
  assert.throws(() => topGuesses({ predictions: [] }), /no prediction/);
  assert.throws(() => topGuesses({}), /no prediction/);
});

test('normalize scales the longer side to 0..255 and centres the drawing in the 256 frame', () => {
  const strokes = normalize([[{ x: 10, y: 10 }, { x: 110, y: 60 }]]);
  const [a, b] = strokes[0];
  const near = (x, y) => Math.abs(x - y) < 1e-9;
  assert.ok(near(a.x, 0.5) && near(b.x, 255.5), `${a.x} ${b.x}`);
  assert.ok(near((a.y + b.y) / 2, 128), `${a.y} ${b.y}`);
  assert.ok(near(b.y - a.y, 127.5), `${a.y} ${b.y}`);
});

test('simplify drops points closer than 2 units to the line, keeps corners', () => {
  const line = [{ x: 0, y: 0 }, { x: 50, y: 1 }, { x: 100, y: 0 }];
  assert.equal(simplify(line).length, 2);
  const corner = [{ x: 0, y: 0 }, { x: 100, y: 0 }, { x: 100, y: 100 }];
  assert.equal(simplify(corner).length, 3);
});
