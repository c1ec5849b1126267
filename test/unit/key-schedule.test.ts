// The signing-key schedule: a pure function of the key rows, the policy and
// the clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyPolicy, plan } from '../../src/keys/lifecycle.ts';

describe('the schedule (injected clock)', () => {
  const policy = keyPolicy({ signingAlg: 'ES256', keyRotationInterval: 1000, jwksMaxAge: 60, keySyncInterval: 5, accessTokenTtl: 300 });
  const t0 = new Date('2026-01-01T00:00:00Z');
  const at = (s: number) => new Date(t0.getTime() + s * 1000);
  const row = (kid: string, status: 'next' | 'active' | 'retiring', since: number, alg = 'ES256') => ({
    kid,
    alg,
    status,
    createdAt: at(since),
    activatedAt: status === 'active' ? at(since) : null,
    deactivatedAt: status === 'retiring' ? at(since) : null,
    retiredAt: null,
  });

  test('windows: published JWKS_MAX_AGE + sync before signing, ACCESS_TOKEN_TTL + sync + skew after', () => {
    assert.equal(policy.prePublish, 65);
    assert.equal(policy.postPublish, 310);
  });

  test('an empty table gets an active key at once', () => {
    assert.deepEqual(plan([], policy, t0), [{ type: 'create-active', alg: 'ES256' }]);
  });

  test('a successor is published one pre-publication window before the interval ends', () => {
    const active = row('a', 'active', 0);
    assert.deepEqual(plan([active], policy, at(1000 - 65 - 1)), []);
    assert.deepEqual(plan([active], policy, at(1000 - 65)), [{ type: 'create-next', alg: 'ES256' }]);
  });

  test('a next key signs only once its pre-publication window has passed', () => {
    const rows = [row('a', 'active', 0), row('b', 'next', 500)];
    assert.deepEqual(plan(rows, policy, at(564)), []);
    assert.deepEqual(plan(rows, policy, at(565)), [{ type: 'promote', kid: 'b' }]);
  });

  test('a retiring key leaves the JWKS only after the longest token lifetime', () => {
    const rows = [row('b', 'active', 600), row('a', 'retiring', 600)];
    assert.deepEqual(plan(rows, policy, at(909)), []);
    assert.deepEqual(plan(rows, policy, at(910)), [{ type: 'retire', kid: 'a' }]);
  });

  test('the key table decides the algorithm: a replica with another SIGNING_ALG creates nothing and keeps the active key', () => {
    const eddsa = { ...policy, alg: 'EdDSA' as const };
    assert.deepEqual(plan([row('a', 'active', 0)], eddsa, at(10)), []);
    // Its successor keeps the active key's algorithm...
    assert.deepEqual(plan([row('a', 'active', 0)], eddsa, at(1000 - 65)), [{ type: 'create-next', alg: 'ES256' }]);
    // ...and a waiting key of another algorithm (keys set-alg) is promoted on schedule, not retired.
    const rows = [row('a', 'active', 0), row('b', 'next', 500, 'EdDSA')];
    assert.deepEqual(plan(rows, policy, at(564)), []);
    assert.deepEqual(plan(rows, policy, at(565)), [{ type: 'promote', kid: 'b' }]);
  });

  test('no automatic rotation when KEY_ROTATION_INTERVAL=0', () => {
    const manual = { ...policy, rotationInterval: 0 };
    assert.deepEqual(plan([row('a', 'active', 0)], manual, at(10 ** 9)), []);
  });
});
