// The signing key: sealed at rest, created exactly once, shared by replicas.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import * as oauth from 'openid-client';
import { unseal } from '../src/lib/crypto.ts';
import { freshDatabase, startTestService, type TestService } from './support/service.ts';

let db: Awaited<ReturnType<typeof freshDatabase>>;
let a: TestService;
let b: TestService;

before(async () => {
  db = await freshDatabase();
  const shared = { KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'), REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:` };
  // Two replicas booting at the same moment on an empty database.
  [a, b] = await Promise.all([
    startTestService(shared, { databaseUrl: db.url }),
    startTestService(shared, { databaseUrl: db.url }),
  ]);
});
after(async () => {
  await Promise.all([a.close(), b.close()]);
  await db.drop();
});

test('two replicas starting together create exactly one key and publish the same JWKS', async () => {
  const rows = await a.stores.db.signingKey.findMany();
  assert.equal(rows.length, 1);
  const [ja, jb] = await Promise.all([a, b].map((s) => fetch(`${s.config.issuer}/jwks`).then((r) => r.json())));
  assert.deepEqual(ja, jb);
  assert.equal((ja as { keys: { kid: string }[] }).keys[0]!.kid, rows[0]!.kid);
});

test('a token issued by one replica refreshes on the other', async () => {
  const client = await a.client();
  const user = await a.user();
  const tokens = await oauth.genericGrantRequest(await a.oauth(client), 'password', { username: user.email, password: user.password });
  const refreshed = await oauth.refreshTokenGrant(await b.oauth(client), tokens.refresh_token!);
  assert.ok(refreshed.access_token);
});

test('the database holds no private key material in plaintext', async () => {
  const row = (await a.stores.db.signingKey.findMany())[0]!;
  const privateJwk = JSON.parse(unseal(a.stores.kek, row.privateJwkEnc, row.kid)) as { d: string };
  assert.ok(privateJwk.d);
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const dump = JSON.stringify((await c.query('SELECT * FROM signing_keys')).rows);
  await c.end();
  assert.ok(!dump.includes(privateJwk.d));
  assert.ok(!('d' in (row.publicJwk as object)));
  const jwks = (await fetch(`${a.config.issuer}/jwks`).then((r) => r.json())) as { keys: Record<string, unknown>[] };
  assert.ok(jwks.keys.every((k) => !('d' in k)));
});

test('the same key is used after a restart', async () => {
  const kid = (await a.stores.db.signingKey.findMany())[0]!.kid;
  const again = await startTestService({ KEY_ENCRYPTION_KEY: a.stores.kek.toString('base64') }, { databaseUrl: db.url });
  try {
    const jwks = (await fetch(`${again.config.issuer}/jwks`).then((r) => r.json())) as { keys: { kid: string }[] };
    assert.deepEqual(jwks.keys.map((k) => k.kid), [kid]);
  } finally {
    await again.close();
  }
});

for (const alg of ['EdDSA', 'PS256'] as const) {
  test(`SIGNING_ALG=${alg} signs access tokens with ${alg}`, async () => {
    const s = await startTestService({ SIGNING_ALG: alg });
    try {
      const client = await s.client();
      const user = await s.user();
      const tokens = await oauth.genericGrantRequest(await s.oauth(client), 'password', { username: user.email, password: user.password });
      const { jwtVerify, createRemoteJWKSet } = await import('jose');
      const { protectedHeader } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${s.config.issuer}/jwks`)), {
        issuer: s.config.issuer,
        audience: 'api://default',
        typ: 'at+jwt',
      });
      assert.equal(protectedHeader.alg, alg === 'EdDSA' ? 'EdDSA' : alg);
    } finally {
      await s.stop();
    }
  });
}
