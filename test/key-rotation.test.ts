// Key rotation with tokens outstanding, emergency revocation, and the JWKS
// endpoint. The schedule itself is unit-tested in test/unit/key-schedule.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestService, type TestService } from './support/service.ts';
import { activePrivateKey, call, eventually, kidOf, passwordToken, signedBy, startExample, type Example } from './support/verify.ts';

describe('rotation with tokens outstanding', () => {
  let s: TestService;
  let example: Example;
  let client: { id: string; secret: string };
  let user: { email: string; password: string };
  const token = () => passwordToken(`${s.config.issuer}/token`, client, user);
  const jwksKids = async () =>
    ((await fetch(`${s.config.issuer}/jwks`).then((r) => r.json())) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

  before(async () => {
    // Small windows: pre-publication 3 + 1 s, post-publication 10 + 1 + 5 s.
    s = await startTestService({ JWKS_MAX_AGE: '3', KEY_SYNC_INTERVAL: '1', ACCESS_TOKEN_TTL: '10', KEY_ROTATION_INTERVAL: '0' });
    example = await startExample({ issuer: s.config.issuer, audience: s.config.audience, cooldownDuration: 500, cacheMaxAge: 1000 });
    client = await s.client();
    user = await s.user();
  });
  after(async () => {
    await example.close();
    await s.stop();
  });

  test('tokens from before, during and after a rotation all verify until they expire; then the old key is gone', async () => {
    const before = await token();
    const kid1 = kidOf(before)!;
    // The old key's private part (erased once it retires), to sign a token that has not expired later.
    const oldSigner = await activePrivateKey(s);
    assert.equal(oldSigner.kid, kid1);
    assert.equal((await call(`${example.url}/me`, before)).status, 200);

    const next = await s.keys.rotate({ actor: 'test' });
    assert.equal(next.status, 'next');
    assert.deepEqual(await jwksKids(), [kid1, next.kid], 'the successor is published at once, after the signing key');
    const during = await token();
    assert.equal(kidOf(during), kid1, 'the successor does not sign before its window has passed');

    const afterwards = await eventually(async () => {
      const t = await token();
      return kidOf(t) === next.kid && t;
    }, 30_000, 'the successor to sign');
    assert.deepEqual(await jwksKids(), [next.kid, kid1], 'the old key stays published while its tokens live');
    for (const t of [before, during, afterwards]) assert.equal((await call(`${example.url}/me`, t)).status, 200);

    await eventually(async () => !(await jwksKids()).includes(kid1), 40_000, 'the old key to retire');
    const old = await s.stores.db.signingKey.findUniqueOrThrow({ where: { kid: kid1 } });
    assert.equal(old.status, 'retired');
    assert.equal(old.privateJwkEnc, '', 'a retired private key is erased');
    // A token the old key signs now, valid for five more minutes, no longer
    // verifies (its key left the JWKS), while one the current key signs does:
    // only the key differs.
    const unexpired = await signedBy(s, oldSigner);
    const res = await call(`${example.url}/me`, unexpired);
    assert.equal(res.status, 401);
    assert.match(res.challenge, /not signed by a key of the issuer/);
    assert.equal((await call(`${example.url}/me`, await signedBy(s, await activePrivateKey(s)))).status, 200);
    assert.equal((await call(`${example.url}/me`, await token())).status, 200);
  });

  test('revoking the signing key removes it at once and a successor signs immediately', async () => {
    const victim = await token();
    const kid = kidOf(victim)!;
    assert.equal((await call(`${example.url}/me`, victim)).status, 200);
    await s.keys.revoke(kid, { actor: 'test' });
    assert.ok(!(await jwksKids()).includes(kid));
    const fresh = await token();
    assert.notEqual(kidOf(fresh), kid);
    // Once the verifier's JWKS cache (1 s here) expires, the revoked key's tokens fail.
    await eventually(async () => (await call(`${example.url}/me`, victim)).status === 401, 10_000, 'the revoked token to fail');
    assert.equal((await call(`${example.url}/me`, fresh)).status, 200);
    const row = await s.stores.db.signingKey.findUniqueOrThrow({ where: { kid } });
    assert.equal(row.status, 'revoked');
    await assert.rejects(s.keys.revoke(kid, { actor: 'test' }), /already revoked/);
  });
});

describe('GET /jwks', () => {
  let s: TestService;
  before(async () => {
    s = await startTestService({ JWKS_MAX_AGE: '120' });
  });
  after(() => s.stop());

  test('is cacheable for JWKS_MAX_AGE with a strong ETag, answers 304, and holds public members only', async () => {
    const discovery = (await fetch(`${s.config.issuer}/.well-known/openid-configuration`).then((r) => r.json())) as { jwks_uri: string };
    assert.equal(discovery.jwks_uri, `${s.config.issuer}/jwks`);
    const res = await fetch(discovery.jwks_uri);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=120');
    assert.match(res.headers.get('content-type')!, /^application\/jwk-set\+json/);
    const etag = res.headers.get('etag')!;
    assert.match(etag, /^"[A-Za-z0-9_-]{43}"$/, 'strong ETag');
    const body = (await res.json()) as { keys: Record<string, unknown>[] };
    assert.equal(body.keys.length, 1);
    for (const k of body.keys) assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);

    const again = await fetch(discovery.jwks_uri, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
    const other = await fetch(discovery.jwks_uri, { headers: { 'if-none-match': '"something-else"' } });
    assert.equal(other.status, 200);
    await other.arrayBuffer();

    await s.keys.rotate({ actor: 'test' });
    const changed = await fetch(discovery.jwks_uri, { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200, 'a key change changes the ETag');
    assert.notEqual(changed.headers.get('etag'), etag);
    assert.equal(((await changed.json()) as { keys: unknown[] }).keys.length, 2);
  });
});
