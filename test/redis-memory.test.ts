// Redis memory is bounded by live logins: one key per login holding its
// grant, its live refresh token and small tombstones of the consumed ones
// (dropped once they would have expired anyway); indexes that hold only live
// logins; a login without a refresh token kept only as long as its access
// token. MEMORY USAGE is read-only, so the shared Redis is fine here.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import * as oauth from 'openid-client';
import { formatLogin, MAX_TOMBSTONES } from '../src/tokens/login-record.ts';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import { passwordLogin, refresh, sleep } from './support/security.ts';

let svc: TestService;
before(async () => {
  svc = await startTestService();
});
after(() => svc.stop());

const grantOf = (r: { body: Record<string, unknown> }) => decodeJwt(r.body.access_token as string).grant_id as string;

async function bytesUnder(s: TestService, pattern: string): Promise<{ bytes: number; keys: string[] }> {
  const redis = s.stores.redis!;
  const keys = await redis.keys(`${s.config.redisKeyPrefix}${pattern}`);
  let bytes = 0;
  for (const k of keys) bytes += Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
  return { bytes, keys };
}

test('20 rotations of one login leave at most 2 KB in Redis for it, indexes included', async () => {
  const client = await svc.client();
  const u = await svc.user();
  let r = await passwordLogin(svc, client, u.email, u.password);
  const first = await bytesUnder(svc, 'oidc:*');
  for (let i = 0; i < 20; i++) {
    r = await refresh(svc, client, r.body.refresh_token as string);
    assert.equal(r.status, 200, r.text);
  }
  // This test's prefix holds exactly this login: its key, its account's and its client's index.
  const { bytes, keys } = await bytesUnder(svc, 'oidc:*');
  console.log(`one login: ${first.bytes} bytes after the login, ${bytes} bytes after 20 rotations (${keys.length} keys)`);
  assert.ok(bytes <= 2048, `${bytes} bytes`);
  assert.deepEqual(
    keys.sort(),
    [svc.tokenStore!.accountKey(u.id), svc.tokenStore!.clientKey(client.id), svc.tokenStore!.familyKey(grantOf(r))].sort(),
  );
  assert.equal((await svc.tokenStore!.readLogin(grantOf(r)))!.tombstones.length, 20 * 26, '20 tombstones');
});

test("tombstones leave with the consumed token's own lifetime; the login's key lives as long as its live token", async () => {
  const s = await startTestService({ REFRESH_TOKEN_IDLE_TTL: '2', REFRESH_TOKEN_ABSOLUTE_TTL: '600' });
  try {
    const client = await s.client();
    const u = await s.user();
    let r = await passwordLogin(s, client, u.email, u.password);
    const grantId = grantOf(r);
    for (let i = 0; i < 10; i++) {
      await sleep(400);
      r = await refresh(s, client, r.body.refresh_token as string);
      assert.equal(r.status, 200, r.text);
    }
    // 10 rotations over 4 s; tokens live 2 s: only the tombstones of tokens issued in the last ~2 s are left.
    const tombstones = (await s.tokenStore!.readLogin(grantId))!.tombstones.length / 26;
    assert.ok(tombstones <= 6, `${tombstones} tombstones`);
    const ttl = await s.stores.redis!.pttl(s.tokenStore!.familyKey(grantId));
    assert.ok(ttl > 0 && ttl <= 2000, `login hash ttl ${ttl} ms`);
  } finally {
    await s.stop();
  }
});

test('the account and client indexes hold only live logins', async () => {
  const client = await svc.client();
  const conf = await svc.oauth(client);
  const u = await svc.user();
  const logins = [];
  for (let i = 0; i < 5; i++) logins.push(await passwordLogin(svc, client, u.email, u.password));
  const [revokedByEndpoint, reused, kept1, kept2, expired] = logins;
  await oauth.tokenRevocation(conf, revokedByEndpoint!.body.refresh_token as string);
  const next = await refresh(svc, client, reused!.body.refresh_token as string);
  assert.equal((await refresh(svc, client, reused!.body.refresh_token as string)).status, 400, 'reuse');
  // A login whose refresh token expired, as the clock would leave it: its
  // key gone, its index entries scored in the past.
  const gone = grantOf(expired!);
  await svc.stores.redis!.del(svc.tokenStore!.familyKey(gone));
  await svc.stores.redis!.zadd(svc.tokenStore!.accountKey(u.id), 'XX', 1, gone);
  await svc.stores.redis!.zadd(svc.tokenStore!.clientKey(client.id), 'XX', 1, gone);
  const later = await passwordLogin(svc, client, u.email, u.password); // a new login trims both indexes

  const members = await svc.stores.redis!.zrange(svc.tokenStore!.accountKey(u.id), 0, -1);
  const live = [kept1!, kept2!, later].map(grantOf);
  assert.deepEqual(members.sort(), live.sort());
  assert.ok(!members.includes(grantOf(next)), 'the reused family left the index');
  const byClient = await svc.stores.redis!.zrange(svc.tokenStore!.clientKey(client.id), 0, -1);
  assert.deepEqual(byClient.sort(), members.sort());

  // Revoking the account's sessions empties its index.
  await svc.services.accounts.revokeSessions(u.id, { actor: 'test' });
  assert.equal(await svc.stores.redis!.exists(svc.tokenStore!.accountKey(u.id)), 0);
  assert.equal(await svc.stores.redis!.zcard(svc.tokenStore!.clientKey(client.id)), 0);
});

test('a login without a refresh token is kept no longer than its access token', async () => {
  const client = await svc.client({ grantTypes: ['password'] });
  const u = await svc.user();
  const r = await postForm(
    `${svc.config.issuer}/token`,
    { grant_type: 'password', username: u.email, password: u.password },
    { authorization: basic(client.id, client.secret) },
  );
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.refresh_token, undefined);
  const ttl = await svc.stores.redis!.ttl(svc.tokenStore!.familyKey(grantOf(r)));
  assert.ok(ttl > 0 && ttl <= svc.config.accessTokenTtl, `kept ${ttl} s`);
  const login = await svc.tokenStore!.readLogin(grantOf(r));
  assert.equal(login?.liveHash, '', 'no refresh token');
});

test('a login rotated more than MAX_TOMBSTONES times keeps only the newest tombstones', async () => {
  // The rotation script itself, on a login that already holds the maximum (built directly: 1024 real rotations take long).
  const store = svc.tokenStore!;
  const grantId = 'G'.repeat(43);
  const future = Math.floor(Date.now() / 1000) + 3600;
  const tombstones = Array.from({ length: MAX_TOMBSTONES }, (_, i) => `${String(i).padStart(16, '0')}${future}`).join('');
  const grant = JSON.stringify({ accountId: 'a', clientId: 'c' });
  await svc.stores.redis!.set(store.familyKey(grantId), formatLogin({ liveHash: 'h'.repeat(43), grace: '', tombstones, live: '{}', grant }), 'EX', 60);
  const [outcome] = await store.rotate(
    { grantId, presented: 'x', hash: 'h'.repeat(43), stored: '{}', exp: future },
    { hash: 'n'.repeat(43), payload: { exp: future }, sealed: '' },
  );
  assert.equal(outcome, 'ok');
  const after = (await store.readLogin(grantId))!;
  assert.equal(after.tombstones.length, MAX_TOMBSTONES * 26);
  assert.ok(!after.tombstones.startsWith('0'.repeat(16)), 'the oldest went first');
  assert.ok(after.tombstones.endsWith(`${'h'.repeat(16)}${future}`), 'the newest is kept');
});
