// Revoke everything of a user (what password change, reset, disable and
// delete call): every grant, every refresh token, the grant and account
// indexes; other users untouched. Access tokens name their grant.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startTestService, type TestService } from './support/service.ts';
import { passwordLogin, refresh, type TestClient } from './support/security.ts';

let svc: TestService;
let gw: TestClient;
before(async () => {
  svc = await startTestService();
  gw = await svc.client();
});
after(() => svc.stop());

test('revokeAccount removes every grant, token and index of the account, and only of it', async () => {
  const alice = await svc.user();
  const bob = await svc.user();
  const a1 = await passwordLogin(svc, gw, alice.email, alice.password);
  const a2 = await passwordLogin(svc, gw, alice.email, alice.password);
  const a2next = await refresh(svc, gw, a2.body.refresh_token as string);
  const b1 = await passwordLogin(svc, gw, bob.email, bob.password);
  const grants = [a1, a2next].map((r) => decodeJwt(r.body.access_token as string).grant_id as string);
  assert.equal(new Set(grants).size, 2);

  const store = svc.tokenStore!;
  const redis = svc.stores.redis!;
  assert.equal(await store.revokeAccount(alice.id), 2);

  for (const r of [a1, a2next]) assert.equal((await refresh(svc, gw, r.body.refresh_token as string)).status, 400);
  assert.equal(await redis.exists(store.accountKey(alice.id)), 0);
  for (const g of grants) {
    assert.equal(await redis.exists(store.grantKey(g), store.key('Grant', g)), 0);
  }
  // Nothing of alice's is left anywhere under the prefix.
  for (const key of await redis.keys(`${svc.config.redisKeyPrefix}oidc:*`)) {
    const payload = (await redis.type(key)) === 'hash' ? await redis.hget(key, 'payload') : null;
    assert.ok(!payload?.includes(alice.id), `${key} still belongs to alice`);
  }
  assert.equal((await refresh(svc, gw, b1.body.refresh_token as string)).status, 200, "bob's login survives");
  assert.equal(await store.revokeAccount(alice.id), 0, 'idempotent');
});
