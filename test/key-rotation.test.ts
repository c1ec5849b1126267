// Key rotation with tokens outstanding, emergency revocation, a replica
// following another replica's key change, and the JWKS endpoint. The schedule itself is unit-tested in test/unit/key-schedule.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.ts';
import type { SigningKeys } from '../src/keys/lifecycle.ts';
import { createLogger } from '../src/observability/log.ts';
import { domainServices, openStores } from '../src/service.ts';
import { passwordLogin, sleep, trustedGateway, type TestClient } from './support/security.ts';
import { startTestService, type TestService } from './support/service.ts';
import { databaseBehindProxy } from './support/tcp-proxy.ts';
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

describe('a replica whose key another replica changed, while it loads the new keys', () => {
  let s: TestService;
  let database: Awaited<ReturnType<typeof databaseBehindProxy>>;
  let other: { keys: SigningKeys; close(): Promise<void> };
  let client: TestClient;
  let user: { email: string; password: string };
  const kek = randomBytes(32).toString('base64');
  const windows = { JWKS_MAX_AGE: '3', KEY_SYNC_INTERVAL: '1', KEY_ROTATION_INTERVAL: '0', KEY_ENCRYPTION_KEY: kek };

  before(async () => {
    database = await databaseBehindProxy();
    s = await startTestService(windows, { databaseUrl: database.url });
    // "Another replica": the same keys table and KEK, reached directly (not through the proxy).
    const direct = new URL(database.url);
    direct.port = String(database.proxy.target.port);
    const config = loadConfig({ ...windows, DATABASE_URL: direct.toString() });
    const logger = createLogger('silent');
    const stores = await openStores(config, logger);
    other = { keys: domainServices(config, stores, logger, { purgeAccount: async () => 0, purgeClient: async () => 0 }).keys, close: () => stores.close() };
    client = await trustedGateway(s);
    user = await s.user();
  });
  after(async () => {
    database.proxy.tap = undefined;
    await other.close();
    await s.stop();
    await database.drop();
  });

  /**
   * Logs in from three loops while this replica's read of the private keys (its
   * reload) is held at the database for `holdMs`, until `done` says stop. Returns
   * each answer's status and kid, and which answers came while the reload was held.
   */
  async function loginsAcrossHeldReload(change: () => Promise<unknown>, done: (kid: string | undefined) => boolean, holdMs = 1500) {
    let held: { from: number; to: number } | undefined;
    database.proxy.tap = (chunk) => {
      if (held || !chunk.includes('private_jwk_enc')) return;
      held = { from: Date.now(), to: Date.now() + holdMs };
      return sleep(holdMs);
    };
    const answers: { status: number; kid: string | undefined; during: boolean; error?: string }[] = [];
    await change();
    const until = Date.now() + 20_000;
    let finished = false;
    await Promise.all(
      [0, 1, 2].map(async () => {
        while (!finished && Date.now() < until) {
          const sent = Date.now();
          const res = await passwordLogin(s, client, user.email, user.password);
          const token = res.body.access_token as string | undefined;
          const kid = token ? kidOf(token) : undefined;
          const during = !!held && sent >= held.from && Date.now() <= held.to;
          answers.push({ status: res.status, kid, during, ...(res.status === 200 ? {} : { error: res.text }) });
          if (res.status === 200 && !during && held && Date.now() > held.to && done(kid)) finished = true;
        }
      }),
    );
    database.proxy.tap = undefined;
    assert.ok(held, 'the reload was held');
    assert.ok(finished, 'the replica moved on within 20 s');
    return answers;
  }

  test('another replica promotes the successor: this one keeps signing with its (still published) key until the new one is loaded; never a 503', async () => {
    const old = s.keys.activeKid;
    const next = await other.keys.rotate({ actor: 'test' });
    await eventually(async () => s.keys.publishedKids.includes(next.kid), 10_000, 'the successor to be published here');
    // The promotion, as the replica whose sync comes first applies it once the pre-publication window has passed.
    const answers = await loginsAcrossHeldReload(
      () => other.keys.advance(new Date(Date.now() + 60_000)),
      (kid) => kid === next.kid,
    );
    const during = answers.filter((a) => a.during);
    assert.ok(during.length >= 3, `${during.length} logins answered while the reload was held`);
    assert.deepEqual(answers.filter((a) => a.status !== 200), [], 'every login succeeded');
    assert.ok(during.every((a) => a.kid === old), 'signed with the retiring key while the successor loaded');
    const kids = (await fetch(`${s.config.issuer}/jwks`).then((r) => r.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    assert.deepEqual(kids, [next.kid, old], 'the retiring key is still published');
  });

  test('another replica revokes the signing key: not one token more with it, 503 until the successor is loaded, then 200', async () => {
    const revoked = s.keys.activeKid;
    const answers = await loginsAcrossHeldReload(
      () => other.keys.revoke(revoked, { actor: 'test' }),
      (kid) => kid !== undefined && kid !== revoked,
    );
    assert.deepEqual(answers.filter((a) => a.status === 200 && a.kid === revoked && a.during), [], 'no token signed by the revoked key once this replica saw the revocation');
    const during = answers.filter((a) => a.during);
    assert.ok(during.length >= 3, `${during.length} logins answered while the reload was held`);
    assert.ok(during.every((a) => a.status === 503 && a.error!.includes('signing keys are not in sync')), JSON.stringify(during));
  });
});
