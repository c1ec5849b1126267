// Trickle migration against a real legacy identity provider: a second
// instance of this service, started here, is the legacy IdP (its password
// grant). Between the two sits a small HTTP relay this test controls, so
// that the legacy side can also be slow, answer garbage, redirect, or be
// gone. Users known only to the legacy side log in here and stay here; a
// wrong password is the same invalid_grant; an outage is 503 for users not
// yet migrated and nothing for those already here; the breaker stops the
// calls; `trickle-end` stops them for good.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { call, gatewayAndAdmin, gatewayFor } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';

type RelayMode = 'forward' | 'slow' | 'garbage' | 'redirect' | 'down';

/** Relays POSTs to `target` (the legacy token endpoint), or misbehaves as told; counts requests. */
async function relay(target: URL) {
  const state = { mode: 'forward' as RelayMode, requests: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    switch (state.mode) {
      case 'slow':
        return void setTimeout(() => res.end('{}'), 5000).unref();
      case 'garbage':
        return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
      case 'redirect':
        return void res.writeHead(302, { location: target.href }).end();
      case 'down':
        return void req.socket.destroy();
      case 'forward': {
        const upstream = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
          res.writeHead(up.statusCode!, up.headers);
          up.pipe(res);
        });
        upstream.on('error', () => req.socket.destroy());
        req.pipe(upstream);
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return { state, url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let legacy: TestService;
let svc: TestService;
let proxy: Awaited<ReturnType<typeof relay>>;
let gw: Awaited<ReturnType<typeof gatewayFor>>;
let token: string;

const legacyUsers: Record<string, string> = {};
async function legacyUser(name: string, roles: string[] = ['viewer']) {
  const u = await legacy.user({ email: `${name}@legacy.example`, roles });
  legacyUsers[u.email] = u.password;
  return u;
}

/**
 * The raw token response for a password grant here: status, Retry-After and
 * body text. A new connection each time (the waits in these tests outlast
 * the server's keep-alive timeout, and a reused socket would race its close).
 */
function rawLogin(username: string, password: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  const body = new URLSearchParams({ grant_type: 'password', username, password }).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL('/token', svc.issuer),
      {
        method: 'POST',
        agent: false,
        headers: {
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(gw.client.id)}:${encodeURIComponent(gw.client.secret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const row = (email: string) => svc.stores.db.user.findUnique({ where: { email } });

before(async () => {
  legacy = await startTestService();
  const legacyClient = await legacy.client({ grantTypes: ['password'], scopes: ['api:read'] });
  const discovery = (await (await fetch(new URL('/.well-known/openid-configuration', legacy.issuer))).json()) as { token_endpoint: string };
  proxy = await relay(new URL(discovery.token_endpoint));
  svc = await startTestService({
    LEGACY_IDP_MODE: 'password_grant',
    LEGACY_IDP_TOKEN_URL: proxy.url,
    LEGACY_IDP_CLIENT_ID: legacyClient.id,
    LEGACY_IDP_CLIENT_SECRET: legacyClient.secret,
    LEGACY_IDP_TIMEOUT_MS: '800',
    LEGACY_IDP_BREAKER_FAILURES: '3',
    LEGACY_IDP_BREAKER_OPEN_SECONDS: '2',
    ROLES: 'admin engineer viewer',
  });
  ({ gw, token } = await gatewayAndAdmin(svc));
});
after(async () => {
  await svc?.stop();
  await legacy?.stop().catch(() => {});
  await proxy?.close();
});

describe('trickle migration', () => {
  test('a user known only to the legacy IdP logs in here and is created with argon2id and the mapped roles', async () => {
    const ann = await legacyUser('ann', ['viewer', 'engineer']);
    assert.equal(await row(ann.email), null);
    const before = proxy.state.requests;
    const tokens = await gw.login(ann.email, ann.password);
    assert.ok(tokens.access_token);
    assert.equal(proxy.state.requests, before + 1);
    const here = await row(ann.email);
    assert.match(here!.passwordHash!, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    assert.deepEqual([here!.importSource, [...here!.roles].sort()], ['legacy-idp', ['engineer', 'viewer']]);
    // From now on this service answers alone.
    assert.ok((await gw.login(ann.email, ann.password)).access_token);
    assert.equal(proxy.state.requests, before + 1, 'no second legacy call');
    const stats = (await call(svc.adminUrl, 'GET', '/admin/users/stats', { token })).body;
    assert.deepEqual(stats.by_source['legacy-idp'], { migrated: 1, pending: 0 });
  });

  test('a wrong password is the same invalid_grant, byte for byte, as for a local user; nothing is created', async () => {
    const bob = await legacyUser('bob');
    const local = await svc.user({ email: 'local@example.com' });
    const calls = proxy.state.requests;
    const wrongLegacy = await rawLogin(bob.email, `${bob.password}x`);
    const wrongLocal = await rawLogin(local.email, `${local.password}x`);
    assert.equal(proxy.state.requests, calls + 1, 'a user known here never reaches the legacy IdP');
    const unknownEverywhere = await rawLogin('nobody@legacy.example', 'whatever it is 1');
    const notAnAddress = await rawLogin('nobody', 'whatever it is 2');
    assert.equal(proxy.state.requests, calls + 3, 'every unknown name costs the same one legacy call');
    assert.equal(notAnAddress.body, wrongLocal.body);
    assert.equal(wrongLegacy.status, 400);
    assert.equal(wrongLegacy.body, wrongLocal.body);
    assert.equal(unknownEverywhere.body, wrongLocal.body);
    assert.match(wrongLegacy.body, /"error":"invalid_grant"/);
    assert.equal(await row(bob.email), null);
    assert.equal(await row('nobody@legacy.example'), null);
  });

  test('a user imported without a hash gets it from the legacy IdP at the first login', async () => {
    const cat = await legacyUser('cat');
    const res = await call(svc.adminUrl, 'POST', '/admin/users/import', { token, raw: JSON.stringify({ email: cat.email, roles: ['viewer'] }), type: 'application/x-ndjson' });
    assert.equal(res.body.created, 1);
    assert.equal((await row(cat.email))!.passwordHash, null);
    assert.ok((await gw.login(cat.email, cat.password)).access_token);
    assert.match((await row(cat.email))!.passwordHash!, /^\$argon2id\$/);
    assert.equal((await row(cat.email))!.importSource, 'ndjson', 'still counted under its import');
  });

  for (const mode of ['slow', 'garbage', 'redirect', 'down'] as const) {
    test(`a legacy IdP that is ${mode}: 503 temporarily_unavailable with Retry-After, no user created; migrated users unaffected`, async () => {
      const dan = await legacyUser(`dan-${mode}`);
      proxy.state.mode = mode;
      try {
        const res = await rawLogin(dan.email, dan.password);
        assert.equal(res.status, 503, res.body);
        assert.match(res.body, /"error":"temporarily_unavailable"/);
        assert.ok(Number(res.retryAfter) >= 1);
        assert.equal(await row(dan.email), null);
        const ann = Object.keys(legacyUsers).find((e) => e.startsWith('ann@'))!;
        assert.ok((await gw.login(ann, legacyUsers[ann]!)).access_token, 'a migrated user logs in during the outage');
      } finally {
        proxy.state.mode = 'forward';
      }
      // The breaker (3 outages in a row) may be open now: wait it out, then the user migrates.
      await new Promise((r) => setTimeout(r, 2100));
      assert.ok((await gw.login(dan.email, dan.password)).access_token);
    });
  }

  test('the circuit breaker: after 3 outages in a row, logins of unmigrated users are 503 without calling the legacy IdP', async () => {
    const eve = await legacyUser('eve');
    proxy.state.mode = 'garbage';
    for (let i = 0; i < 3; i++) assert.equal((await rawLogin(eve.email, eve.password)).status, 503);
    const calls = proxy.state.requests;
    proxy.state.mode = 'forward';
    assert.equal((await rawLogin(eve.email, eve.password)).status, 503);
    assert.equal(proxy.state.requests, calls, 'breaker open: no call');
    await new Promise((r) => setTimeout(r, 2100));
    assert.ok((await gw.login(eve.email, eve.password)).access_token, 'half-open: the next call goes through');
    assert.equal(proxy.state.requests, calls + 1);
  });

  test('the throttle comes before the legacy call: once a name is throttled, even its right password costs no legacy call', async () => {
    const gus = await legacyUser('gus');
    const start = proxy.state.requests;
    const statuses: number[] = [];
    // LOGIN_FREE_FAILURES (5) free failures, then the 6th claims the block's slot, is checked and starts the block.
    for (let i = 0; i < 6; i++) statuses.push((await rawLogin(gus.email, `wrong guess ${i}`)).status);
    assert.deepEqual(statuses, [400, 400, 400, 400, 400, 400]);
    assert.equal(proxy.state.requests, start + 6);
    const throttled = await rawLogin(gus.email, gus.password);
    assert.equal(throttled.status, 400);
    assert.match(throttled.body, /"error":"invalid_grant"/);
    assert.equal(proxy.state.requests, start + 6, 'throttled: the legacy IdP is not asked');
    assert.equal(await row(gus.email), null);
  });

  test('the hash gate comes before the legacy call: beyond MAX_CONCURRENT_HASHES (8) in flight, no more legacy calls', async () => {
    const users = await Promise.all(Array.from({ length: 12 }, (_, i) => legacyUser(`gate${i}`)));
    proxy.state.mode = 'slow';
    const start = proxy.state.requests;
    try {
      const answers = await Promise.all(users.map((u) => rawLogin(u.email, u.password)));
      assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([503]));
      assert.ok(proxy.state.requests - start <= 8, `${proxy.state.requests - start} legacy calls for 12 logins`);
    } finally {
      proxy.state.mode = 'forward';
    }
    await new Promise((r) => setTimeout(r, 2100)); // the breaker opened: let it close
  });

  test('passwords never reach a log', () => {
    for (const password of Object.values(legacyUsers)) assert.ok(!svc.logs.text.includes(password) && !legacy.logs.text.includes(password));
    assert.match(svc.logs.text, /legacy_idp\.checked/);
  });

  test('with the legacy instance stopped: migrated users log in, unmigrated ones get 503; after trickle-end, invalid_grant without a call', async () => {
    const fay = await legacyUser('fay');
    const ann = Object.keys(legacyUsers).find((e) => e.startsWith('ann@'))!;
    await legacy.stop();
    assert.equal((await rawLogin(ann, legacyUsers[ann]!)).status, 200);
    const res = await rawLogin(fay.email, fay.password);
    assert.equal(res.status, 503);

    await new Promise((r) => setTimeout(r, 2100)); // let the breaker close, so that no open breaker explains what follows
    const cli = spawnSync(process.execPath, [new URL('../src/cli.ts', import.meta.url).pathname, 'users', 'trickle-end'], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: svc.config.databaseUrl,
        REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        REDIS_KEY_PREFIX: svc.config.redisKeyPrefix,
        KEY_ENCRYPTION_KEY: svc.config.keyEncryptionKey!.toString('base64'),
        LOG_LEVEL: 'warn',
      },
      encoding: 'utf8',
    });
    assert.equal(cli.status, 0, cli.stderr);
    const { ended, pending } = JSON.parse(cli.stdout);
    assert.equal(ended, true);
    assert.equal(pending['legacy-idp'], 0);
    const calls = proxy.state.requests;
    const after = await rawLogin(fay.email, fay.password);
    assert.equal(after.status, 400);
    assert.match(after.body, /"error":"invalid_grant"/);
    assert.equal(proxy.state.requests, calls, 'the phase is over: no call');
  });
});
