// The import's progress reporter: a bar redrawn in place on a terminal, JSON
// lines (at most one a second, and always the last) otherwise.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressReporter } from '../../src/lib/progress.ts';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns: 100, write: (t: string) => writes.push(t) } };
}

test('on a terminal: one line redrawn with count, total, rate and errors; a newline at the end', () => {
  let now = 0;
  const { writes, out } = sink(true);
  const progress = progressReporter('users', out, () => now);
  now = 2000;
  progress({ done: 5000, total: 20000, failed: 3 });
  now = 4000;
  progress({ done: 20000, total: 20000, failed: 4 });
  progress.end();
  assert.equal(writes.length, 3);
  assert.ok(writes.every((w) => w.startsWith('\r')));
  assert.match(writes[0]!, /^\r█{10}░{30} 5,000\/20,000 users {2}2,500\/s {2}errors 3$/);
  assert.match(writes[2]!, /█{40} 20,000\/20,000 users {2}5,000\/s {2}errors 4\n$/);
});

test('without a terminal: JSON lines, at most one a second, the last always, marked finished', () => {
  let now = 0;
  const { writes, out } = sink(false);
  const progress = progressReporter('users', out, () => now);
  now = 1000;
  progress({ done: 1000, total: 3000, failed: 0 });
  now = 1500;
  progress({ done: 2000, total: 3000, failed: 1 }); // within the second: not written
  now = 3000;
  progress({ done: 3000, total: 3000, failed: 1 });
  progress.end();
  const lines = writes.map((w) => JSON.parse(w));
  assert.deepEqual(lines, [
    { progress: 'users', done: 1000, total: 3000, rate_per_s: 1000, errors: 0 },
    { progress: 'users', done: 3000, total: 3000, rate_per_s: 1000, errors: 1 },
    { progress: 'users', done: 3000, total: 3000, rate_per_s: 1000, errors: 1, finished: true },
  ]);
});
