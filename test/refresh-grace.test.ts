// Refresh-token replay: within REFRESH_REUSE_GRACE_SECONDS the immediate
// previous token, presented again by the same client, gets the same successor
// refresh token back (never a second one); a token that is not the immediate
// predecessor, or one presented after the window, revokes the family. Every
// reuse is an event.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startTestService, type TestService } from './support/service.ts';
import { passwordLogin, recordEvents, refresh, sleep, type TestClient } from './support/security.ts';

let svc: TestService;
let gw: TestClient;
let events: Map<string, object[]>;
before(async () => {
  svc = await startTestService({ REFRESH_REUSE_GRACE_SECONDS: '2' });
  gw = await svc.client();
  events = recordEvents(svc);
});
after(() => svc.stop());

async function login() {
  const u = await svc.user();
  const r = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(r.status, 200, r.text);
  return r.body.refresh_token as string;
}

test('the previous token again within the window: the same successor, the family lives on', async () => {
  const rt1 = await login();
  const first = await refresh(svc, gw, rt1);
  assert.equal(first.status, 200);
  const again = await refresh(svc, gw, rt1);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.refresh_token, first.body.refresh_token, 'the same successor, not a fork');
  assert.equal(decodeJwt(again.body.access_token as string).grant_id, decodeJwt(first.body.access_token as string).grant_id);
  assert.equal(again.headers.get('cache-control'), 'no-store');
  assert.equal(events.get('refresh.grace_replay')?.length, 1);
  const next = await refresh(svc, gw, first.body.refresh_token as string);
  assert.equal(next.status, 200, 'the replayed refresh token is the live one');
});

test('not the immediate predecessor: the family is revoked even within the window', async () => {
  const rt1 = await login();
  const r2 = await refresh(svc, gw, rt1);
  const r3 = await refresh(svc, gw, r2.body.refresh_token as string);
  const before = events.get('refresh.reuse')?.length ?? 0;
  const replay = await refresh(svc, gw, rt1);
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'invalid_grant');
  assert.equal((await refresh(svc, gw, r3.body.refresh_token as string)).status, 400, 'newest token revoked');
  assert.equal(events.get('refresh.reuse')?.length, before + 1);
  assert.ok(svc.logs.lines.some((l) => l.includes('"outcome":"refresh.reuse"')));
});

test('after the window: the family is revoked', async () => {
  const rt1 = await login();
  const r2 = await refresh(svc, gw, rt1);
  await sleep(3200);
  assert.equal((await refresh(svc, gw, rt1)).status, 400);
  assert.equal((await refresh(svc, gw, r2.body.refresh_token as string)).status, 400);
});

test('another client presenting the token gets nothing and does not kill the family', async () => {
  const other = await svc.client();
  const rt1 = await login();
  const r2 = await refresh(svc, gw, rt1);
  assert.equal((await refresh(svc, other, rt1)).status, 400);
  assert.equal((await refresh(svc, gw, r2.body.refresh_token as string)).status, 200);
});

test('parallel presentations of one token within the window all get the one rotation', async () => {
  const rt1 = await login();
  const results = await Promise.all(Array.from({ length: 10 }, () => refresh(svc, gw, rt1)));
  assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
  assert.equal(new Set(results.map((r) => r.body.refresh_token)).size, 1);
  assert.equal((await refresh(svc, gw, results[0]!.body.refresh_token as string)).status, 200);
});

test('the remembered successor is encrypted: Redis holds no token of it in plaintext', async () => {
  const rt1 = await login();
  const r2 = await refresh(svc, gw, rt1);
  const redis = svc.stores.redis!;
  const record = await svc.tokenStore!.readLogin(decodeJwt(r2.body.access_token as string).grant_id as string);
  assert.ok(record?.grace, 'the grace record is there');
  // A refresh token's secret part is its first 43 characters (the rest is its grant id).
  const secrets = [rt1.slice(0, 43), (r2.body.refresh_token as string).slice(0, 43), r2.body.access_token as string];
  for (const key of await redis.keys(`${svc.config.redisKeyPrefix}*`)) {
    const type = await redis.type(key);
    const dump = type === 'string' ? (await redis.get(key))! : type === 'zset' ? JSON.stringify(await redis.zrange(key, 0, -1)) : '';
    for (const s of secrets) assert.ok(!key.includes(s) && !dump.includes(s), `${key} holds a token`);
  }
  // The access token names its grant, so a gateway can drop it when the grant is revoked.
  assert.ok(decodeJwt(r2.body.access_token as string).grant_id);
});
