// The login throttle's arithmetic: the verdict from its reserved counts and
// the progressive block, both pure (per-source keys: test/unit/ip-key.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockSeconds, verdict } from '../../src/security/throttle.ts';

const n = (count: number, retryAfterSeconds = 30) => ({ count, retryAfterSeconds });
const limits = { ipMaxFailures: 200, userMaxFailures: 50, freeFailures: 5, blockBaseSeconds: 1, blockMaxSeconds: 900 };
const none = { blocked: null, slot: undefined, account: undefined };

test('counts within every limit: ok (each count includes the attempt being reserved)', () => {
  assert.deepEqual(verdict(limits, { ip: n(200), blocked: null, slot: n(1), account: n(50) }), { kind: 'ok' });
});

test('the source limit wins over everything and is a 429 with its own Retry-After', () => {
  assert.deepEqual(verdict(limits, { ip: n(201, 5), blocked: n(2), slot: n(3), account: n(51) }), { kind: 'rate_limited', retryAfterSeconds: 5 });
  assert.deepEqual(verdict(limits, { ip: n(200), ...none }), { kind: 'ok' });
});

test('a pair block in force, or a block slot another attempt holds, throttles the pair', () => {
  assert.deepEqual(verdict(limits, { ip: n(3), ...none, blocked: n(1, 7) }), { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: 7 });
  assert.deepEqual(verdict(limits, { ip: n(3), ...none, slot: n(2, 4) }), { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: 4 });
  assert.deepEqual(verdict(limits, { ip: n(3), ...none, slot: n(1) }), { kind: 'ok' }, 'the attempt that claimed the slot goes on');
});

test('the per-username limit throttles strangers beyond it; familiar sources reserve nothing there', () => {
  assert.deepEqual(verdict(limits, { ip: n(1), ...none, account: n(51, 60) }), { kind: 'throttled', scope: 'account', retryAfterSeconds: 60 });
  assert.deepEqual(verdict(limits, { ip: n(1), ...none, account: n(50) }), { kind: 'ok' });
  assert.deepEqual(verdict(limits, { ip: n(1), ...none, account: undefined }), { kind: 'ok' });
});

test('blocks start after the free failures, double each time, and stop at the cap', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map((k) => blockSeconds(limits, k)), [0, 0, 0, 0, 0]);
  assert.deepEqual([6, 7, 8, 9, 10].map((k) => blockSeconds(limits, k)), [1, 2, 4, 8, 16]);
  assert.equal(blockSeconds(limits, 15), 512);
  assert.equal(blockSeconds(limits, 16), 900);
  assert.equal(blockSeconds(limits, 10_000), 900, 'no overflow for huge counts');
  assert.equal(blockSeconds({ ...limits, blockBaseSeconds: 3 }, 7), 6);
});
