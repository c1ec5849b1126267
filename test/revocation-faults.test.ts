// Revocation and rotation with a Redis that stalls: its own redis-server,
// hung with SIGSTOP (connections stay open, commands queue and run once it
// resumes), never the shared one.
//  - A password change or revoke-sessions while Redis hangs either completes
//    with every old session dead or answers 503 and changes nothing.
//  - Logins that keep refreshing through a 4 s hang, retrying after each 503,
//    never end with a revoked family (with and without the grace window).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oauth from 'openid-client';
import { adminToken, call } from './support/admin.ts';
import { passwordLogin, refresh, sleep, type TestClient } from './support/security.ts';
import { freePort, OwnRedis, startTestService, type TestService } from './support/service.ts';

let redis: OwnRedis;
before(async () => {
  redis = new OwnRedis(await freePort());
  await redis.start();
});
after(async () => {
  redis.resume();
  await redis.stop();
});

/** Hangs Redis for `ms` from now (resumes on its own, and in any case before the test ends). */
function hang(ms: number): Promise<void> {
  redis.pause();
  return sleep(ms)
    .finally(() => redis.resume())
    .then(() => undefined);
}

describe('a revocation while Redis hangs for 3 s', () => {
  let svc: TestService;
  let gw: TestClient;
  let root: string;
  before(async () => {
    svc = await startTestService({ REDIS_URL: redis.url });
    gw = await svc.client();
    root = (await adminToken(svc)).token;
  });
  after(() => svc.stop());

  const audits = async (type: string, subject: string) =>
    (await call(svc.adminUrl, 'GET', `/admin/audit?type=${type}&subject=${subject}&outcome=success`, { token: root })).body.items.length as number;

  for (const [name, delayMs] of [
    ['password change, Redis hung before the request', 0],
    ['password change, Redis hung while it runs', 15],
    ['admin revoke-sessions, Redis hung before the request', 0],
  ] as const) {
    test(`${name}: done with every old session dead, or 503 and nothing changed`, async () => {
      const u = await svc.user();
      const sessions = await Promise.all([0, 1, 2].map(() => passwordLogin(svc, gw, u.email, u.password)));
      for (const s of sessions) assert.equal(s.status, 200, s.text);
      const newPassword = `${u.password}-changed`;
      const revoking = name.startsWith('password')
        ? () =>
            call(svc.publicUrl, 'POST', '/account/password', {
              token: sessions[0]!.body.access_token as string,
              body: { current_password: u.password, new_password: newPassword },
            })
        : () => call(svc.adminUrl, 'POST', `/admin/users/${u.id}/revoke-sessions`, { token: root });

      let hung: Promise<void>;
      let res: Awaited<ReturnType<typeof call>>;
      if (delayMs === 0) {
        hung = hang(3000);
        res = await revoking();
      } else {
        const pending = revoking();
        await sleep(delayMs);
        hung = hang(3000);
        res = await pending;
      }
      await hung;

      const auditType = name.startsWith('password') ? 'password.changed' : 'user.sessions_revoked';
      assert.ok([200, 204, 503].includes(res.status), `${res.status} ${JSON.stringify(res.body)}`);
      if (res.status === 503) {
        assert.equal(res.body.error, 'temporarily_unavailable');
        assert.ok(res.headers.get('retry-after'));
        // Nothing happened: the old password and every session still work, no audit row.
        for (const s of sessions) assert.equal((await refresh(svc, gw, s.body.refresh_token as string)).status, 200);
        assert.equal((await passwordLogin(svc, gw, u.email, u.password)).status, 200);
        assert.equal(await audits(auditType, u.id), 0);
      } else {
        for (const s of sessions) {
          const r = await refresh(svc, gw, s.body.refresh_token as string);
          assert.equal(r.status, 400, `a session survived: ${r.text}`);
          assert.equal(r.body.error, 'invalid_grant');
        }
        if (name.startsWith('password')) {
          assert.equal((await passwordLogin(svc, gw, u.email, u.password)).status, 400, 'the old password still works');
          assert.equal((await passwordLogin(svc, gw, u.email, newPassword)).status, 200);
        }
        assert.equal(await audits(auditType, u.id), 1, 'the revocation is audited');
      }
      console.log(`${name}: ${res.status}`);
    });
  }
});

describe('a client deleted while Redis hangs', () => {
  test('re-created with the same id afterwards: its old refresh tokens are invalid_grant', async () => {
    const svc = await startTestService({ REDIS_URL: redis.url });
    try {
      const { token: root } = await adminToken(svc);
      const body = { client_id: 'gateway-x', grant_types: ['password', 'refresh_token'], scope: 'api:read' };
      const created = await call(svc.adminUrl, 'POST', '/admin/clients', { token: root, body });
      const u = await svc.user();
      const old = { id: 'gateway-x', secret: created.body.client_secret as string };
      const sessions = [await passwordLogin(svc, old, u.email, u.password), await passwordLogin(svc, old, u.email, u.password)];

      const hung = hang(3000);
      const deleted = await call(svc.adminUrl, 'DELETE', '/admin/clients/gateway-x', { token: root });
      await hung;
      assert.equal(deleted.status, 204, 'deleted (Postgres); the Redis clean-up failed meanwhile');
      assert.ok(await svc.stores.redis!.exists(svc.tokenStore!.clientKey('gateway-x')), 'the logins are still in Redis');

      const again = await call(svc.adminUrl, 'POST', '/admin/clients', { token: root, body });
      assert.equal(again.status, 201);
      const renewed = { id: 'gateway-x', secret: again.body.client_secret as string };
      for (const s of sessions) {
        const r = await refresh(svc, renewed, s.body.refresh_token as string);
        assert.equal(r.status, 400, `an old session works for the new client: ${r.text}`);
        assert.equal(r.body.error, 'invalid_grant');
      }
    } finally {
      await svc.stop();
    }
  });
});

describe('refreshing through a 4 s hang', () => {
  const services: TestService[] = [];
  before(async () => {
    // One Redis, two services: without and with a grace window.
    services.push(await startTestService({ REDIS_URL: redis.url, REFRESH_REUSE_GRACE_SECONDS: '0' }));
    services.push(await startTestService({ REDIS_URL: redis.url, REFRESH_REUSE_GRACE_SECONDS: '30' }));
  });
  after(() => Promise.all(services.map((s) => s.stop())));

  test('6 logins per service keep refreshing and retry after each 503: 0 families revoked', async () => {
    type Family = { svc: TestService; client: TestClient; tokens: string[]; revoked: string | undefined; okAfter: number; unavailable: number };
    const families: Family[] = [];
    for (const svc of services) {
      const client = await svc.client();
      const u = await svc.user();
      for (let i = 0; i < 6; i++) {
        const r = await passwordLogin(svc, client, u.email, u.password);
        assert.equal(r.status, 200, r.text);
        families.push({ svc, client, tokens: [r.body.refresh_token as string], revoked: undefined, okAfter: 0, unavailable: 0 });
      }
    }
    let resumed = false;
    const deadline = Date.now() + 60_000;
    const loop = async (f: Family) => {
      while (Date.now() < deadline && !(resumed && f.okAfter >= 3)) {
        const r = await refresh(f.svc, f.client, f.tokens.at(-1)!);
        if (r.status === 200) {
          f.tokens.push(r.body.refresh_token as string);
          if (resumed) f.okAfter++;
        } else if (r.status === 503) {
          f.unavailable++;
          await sleep(100); // a client backing off, then retrying with the same token
        } else {
          f.revoked = `${r.status} ${r.text}`;
          return;
        }
      }
    };
    const loops = Promise.all(families.map(loop));
    while (families.some((f) => f.tokens.length < 3)) await sleep(20);
    await hang(4000);
    resumed = true;
    await loops;

    const revoked = families.filter((f) => f.revoked);
    assert.deepEqual(
      revoked.map((f) => f.revoked),
      [],
      `${revoked.length} of ${families.length} families revoked`,
    );
    assert.ok(families.every((f) => f.okAfter >= 3), 'every family refreshed again after the hang');
    assert.ok(families.every((f) => f.unavailable >= 1), 'every family met the hang (503)');
    // And still exactly one live refresh token per family: the newest.
    for (const f of families) {
      const conf = await f.svc.oauth(f.client);
      const live = [];
      for (const t of f.tokens.slice(-4)) if ((await oauth.tokenIntrospection(conf, t)).active) live.push(t);
      assert.deepEqual(live, [f.tokens.at(-1)]);
    }
    console.log(
      'refresh through a 4 s hang:',
      families.map((f) => `${f.tokens.length - 1} rotations, ${f.unavailable}×503`),
    );
  });
});
