// The login throttle's arithmetic: the verdict from its counters and the
// progressive block, both pure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RateLimiterRes } from 'rate-limiter-flexible';
import { blockSeconds, verdict } from '../../src/security/throttle.ts';

const res = (consumedPoints: number, msBeforeNext = 30_000) => ({ consumedPoints, msBeforeNext }) as RateLimiterRes;
const limits = { ipMaxFailures: 200, userMaxFailures: 50, freeFailures: 5, blockBaseSeconds: 1, blockMaxSeconds: 900 };

test('no counters: ok', () => {
  assert.deepEqual(verdict(limits, { ip: null, pairBlock: null, account: null }), { kind: 'ok' });
});

test('the IP limit wins over everything and is a 429 with its own Retry-After', () => {
  assert.deepEqual(verdict(limits, { ip: res(200, 4500), pairBlock: res(2), account: res(50) }), { kind: 'rate_limited', retryAfterSeconds: 5 });
  assert.deepEqual(verdict(limits, { ip: res(199), pairBlock: null, account: null }), { kind: 'ok' });
});

test('a username+IP block in force throttles that pair; the per-username limit throttles everywhere', () => {
  assert.deepEqual(verdict(limits, { ip: res(3), pairBlock: res(2, 800), account: null }), {
    kind: 'throttled',
    scope: 'account_ip',
    retryAfterSeconds: 1,
  });
  assert.deepEqual(verdict(limits, { ip: null, pairBlock: res(1), account: null }), { kind: 'ok' }, 'one point is no block');
  assert.deepEqual(verdict(limits, { ip: null, pairBlock: null, account: res(50, 60_000) }), {
    kind: 'throttled',
    scope: 'account',
    retryAfterSeconds: 60,
  });
  assert.deepEqual(verdict(limits, { ip: null, pairBlock: null, account: res(49) }), { kind: 'ok' });
});

test('Retry-After is at least one second, rounded up', () => {
  assert.equal((verdict(limits, { ip: res(200, 1), pairBlock: null, account: null }) as { retryAfterSeconds: number }).retryAfterSeconds, 1);
  assert.equal((verdict(limits, { ip: res(200, 1001), pairBlock: null, account: null }) as { retryAfterSeconds: number }).retryAfterSeconds, 2);
});

test('blocks start after the free failures, double each time, and stop at the cap', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => blockSeconds(limits, n)), [0, 0, 0, 0, 0]);
  assert.deepEqual([6, 7, 8, 9, 10].map((n) => blockSeconds(limits, n)), [1, 2, 4, 8, 16]);
  assert.equal(blockSeconds(limits, 15), 512);
  assert.equal(blockSeconds(limits, 16), 900);
  assert.equal(blockSeconds(limits, 10_000), 900, 'no overflow for huge counts');
  assert.equal(blockSeconds({ ...limits, blockBaseSeconds: 3 }, 7), 6);
});
