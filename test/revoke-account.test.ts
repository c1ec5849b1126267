// Clean-up after an account's sessions were revoked (what a password change,
// a reset, revoke-sessions, disable and delete run once Postgres committed):
// every login of the account leaves Redis, with its index entries, and only
// its own. Access tokens name their grant.
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

test('purgeAccount removes every login and index entry of the account, and only of it', async () => {
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
  assert.equal(await store.purgeAccount(alice.id), 2);

  for (const r of [a1, a2next]) assert.equal((await refresh(svc, gw, r.body.refresh_token as string)).status, 400);
  assert.equal(await redis.exists(store.accountKey(alice.id)), 0);
  for (const g of grants) assert.equal(await redis.exists(store.familyKey(g)), 0);
  const clientIndex = await redis.zrange(store.clientKey(gw.id), 0, -1);
  assert.deepEqual(clientIndex, [decodeJwt(b1.body.access_token as string).grant_id], "only bob's login is left in the client's index");
  // Nothing of alice's is left anywhere under the prefix.
  for (const key of await redis.keys(`${svc.config.redisKeyPrefix}oidc:*`)) {
    const dump = (await redis.type(key)) === 'string' ? (await redis.get(key))! : JSON.stringify(await redis.zrange(key, 0, -1));
    assert.ok(!dump.includes(alice.id), `${key} still belongs to alice`);
  }
  assert.equal((await refresh(svc, gw, b1.body.refresh_token as string)).status, 200, "bob's login survives");
  assert.equal(await store.purgeAccount(alice.id), 0, 'idempotent');
});
