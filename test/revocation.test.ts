// Revocation that holds, tried the way an attacker with a stolen password (or
// an admin token, or a client secret) would try to keep a session alive:
// logins in flight through every revocation, demoted and disabled admins,
// deleted and re-created clients, revoked signing keys. Black-box over HTTP
// against the real service on Postgres and Redis.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import * as oauth from 'openid-client';
import { sha256, randomToken } from '../src/lib/crypto.ts';
import { adminConsoleFor, adminToken, call, type Json } from './support/admin.ts';
import { passwordLogin, refresh, sleep, type TestClient } from './support/security.ts';
import { startTestService, type TestService } from './support/service.ts';
import { startExample } from './support/verify.ts';

const run = promisify(execFile);

type Session = { rt: string; at: string; startedAt: number; endedAt: number };
type Loop = { sessions: Session[]; refused: Session[]; statuses: Record<number, number>; stop(): Promise<void>; attemptsAfter(t: number): number };

/** `inFlight` workers logging in with `password` as fast as they can until stopped. */
function loginLoop(svc: TestService, client: TestClient, email: string, password: string, inFlight = 4): Loop {
  const sessions: Session[] = [];
  const refused: Session[] = [];
  const statuses: Record<number, number> = {};
  const started: number[] = [];
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const startedAt = performance.now();
      started.push(startedAt);
      const r = await passwordLogin(svc, client, email, password);
      const endedAt = performance.now();
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      const s = { rt: r.body.refresh_token as string, at: r.body.access_token as string, startedAt, endedAt };
      if (r.status === 200) sessions.push(s);
      else {
        assert.equal(r.body.error, 'invalid_grant', r.text);
        refused.push(s);
      }
    }
  };
  const workers = Array.from({ length: inFlight }, worker);
  return {
    sessions,
    refused,
    statuses,
    attemptsAfter: (t) => started.filter((s) => s > t).length,
    async stop() {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('logins in flight through a revocation', () => {
  let svc: TestService;
  let gw: TestClient;
  let adminBearer: string;
  before(async () => {
    // The whole file logs in from 127.0.0.1; the per-IP failure limit is not what this tests.
    svc = await startTestService({ LOGIN_IP_MAX_FAILURES: '1000000', LOGIN_USER_MAX_FAILURES: '1000000' });
    gw = await svc.client();
    adminBearer = (await adminToken(svc)).token;
  });
  after(() => svc.stop());

  const admin = (method: string, path: string, body?: unknown) => call(svc.adminUrl, method, `/admin${path}`, { token: adminBearer, body });

  // Each revocation, and what it takes: `old` stops working as a credential
  // for all but revoke-sessions (whose later logins are new sessions).
  const REVOCATIONS: Record<string, (u: { id: string; email: string; password: string }, firstAccessToken: string) => Promise<number>> = {
    'password change': async (u, at) =>
      (await call(svc.publicUrl, 'POST', '/account/password', { token: at, body: { current_password: u.password, new_password: `${u.password}-new` } }))
        .status,
    'password reset': async (u) => {
      const token = randomToken();
      await svc.stores.db.passwordResetToken.create({ data: { tokenHash: sha256(token), userId: u.id, expiresAt: new Date(Date.now() + 60_000) } });
      return (await call(svc.publicUrl, 'POST', '/password/reset', { body: { token, password: `${u.password}-reset` } })).status;
    },
    'admin revoke-sessions': async (u) => (await admin('POST', `/users/${u.id}/revoke-sessions`)).status,
    disable: async (u) => (await admin('PATCH', `/users/${u.id}`, { status: 'disabled' })).status,
  };
  const OK: Record<string, number> = { 'password change': 204, 'password reset': 204, 'admin revoke-sessions': 200, disable: 200 };
  const TRIALS = 5;

  for (const [name, revoke] of Object.entries(REVOCATIONS)) {
    test(`${name}, 4 logins in flight, ${TRIALS} trials: no session from before it can refresh, no second revoke needed`, async () => {
      let checked = 0;
      let overlapping = 0;
      for (let trial = 0; trial < TRIALS; trial++) {
        const u = await svc.user();
        const loop = loginLoop(svc, gw, u.email, u.password);
        await until('sessions before the revocation', () => loop.sessions.length >= 4);
        const revokeStarted = performance.now();
        const status = await revoke(u, loop.sessions[0]!.at);
        const revokeEnded = performance.now();
        assert.equal(status, OK[name], `${name} answered ${status}`);
        // Let every worker start two more logins after the revocation answered.
        await until('logins after the revocation', () => loop.attemptsAfter(revokeEnded) >= 8);
        await loop.stop();

        const generation = (await svc.stores.db.user.findUnique({ where: { id: u.id } }))?.sessionGeneration;
        for (const s of loop.sessions) {
          const r = await refresh(svc, gw, s.rt);
          const before = s.endedAt < revokeStarted;
          const afterwards = s.startedAt > revokeEnded;
          if (!before && !afterwards) overlapping++;
          if (name !== 'admin revoke-sessions') {
            // The old password (or an active status) was needed for every one of these logins.
            assert.equal(r.status, 400, `trial ${trial}: a session of ${name} still refreshes (${r.text})`);
            assert.ok(!afterwards, `trial ${trial}: a login with the old credentials succeeded after ${name}`);
          } else if (before) {
            assert.equal(r.status, 400, `trial ${trial}: a session from before the revocation still refreshes`);
          } else if (afterwards) {
            assert.equal(r.status, 200, `trial ${trial}: a login after the revocation does not refresh: ${r.text}`);
          } else {
            // In flight during the revocation: alive only if it authenticated after it.
            if (r.status === 200) assert.equal(decodeJwt(s.at).session_gen, generation, `trial ${trial}: an in-flight session from before survived`);
            else assert.equal(r.status, 400);
          }
          if (r.status === 400) assert.equal(r.body.error, 'invalid_grant');
          checked++;
        }
      }
      assert.ok(checked >= TRIALS * 4, `checked ${checked} sessions`);
      console.log(`${name}: ${checked} sessions checked over ${TRIALS} trials, ${overlapping} in flight during the revocation`);
    });
  }

  test('every revocation wrote its audit event', async () => {
    for (const type of ['password.changed', 'password.reset', 'user.sessions_revoked', 'user.disabled']) {
      const res = await admin('GET', `/audit?type=${type}`);
      assert.ok(res.body.items.length >= TRIALS, `${type}: ${res.body.items.length} events`);
    }
  });
});

describe('a login whose password check predates a revocation', () => {
  // A slow hash (≈ 1 s) holds the login between reading the account and saving
  // its grant: the revocation commits in between, and the login must not
  // answer with a session (it re-reads the generation after saving).
  let svc: TestService;
  let gw: TestClient;
  let adminBearer: string;
  before(async () => {
    svc = await startTestService({ ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '16', LOGIN_IP_MAX_FAILURES: '1000000' });
    gw = await svc.client();
    adminBearer = (await adminToken(svc)).token;
  });
  after(() => svc.stop());

  for (const revocation of ['revoke-sessions', 'disable'] as const) {
    test(`${revocation} during the hash: the login is refused`, async () => {
      const u = await svc.user();
      const login = passwordLogin(svc, gw, u.email, u.password).then((r) => ({ r, answeredAt: Date.now() }));
      await sleep(250); // the account row is read within milliseconds, the hash takes about a second
      const path = `/admin/users/${u.id}${revocation === 'revoke-sessions' ? '/revoke-sessions' : ''}`;
      const res = await call(svc.adminUrl, revocation === 'disable' ? 'PATCH' : 'POST', path, {
        token: adminBearer,
        body: revocation === 'disable' ? { status: 'disabled' } : undefined,
      });
      assert.equal(res.status, 200);
      const revokedAt = Date.now();
      const { r, answeredAt } = await login;
      assert.ok(answeredAt > revokedAt, 'the login was still hashing when the revocation committed');
      assert.equal(r.status, 400, `the login answered ${r.status}: ${r.text}`);
      assert.equal(r.body.error, 'invalid_grant');
    });
  }
});

describe('admins, clients and keys', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ KEY_SYNC_INTERVAL: '300', KEY_ROTATION_INTERVAL: '0' });
  });
  after(() => svc.stop());
  const adminCall = (token: string, method: string, path: string, body?: unknown) => call(svc.adminUrl, method, `/admin${path}`, { token, body });

  test('an admin demoted, then disabled: the very next call with the still-valid token is 403, then 401', async () => {
    const { admin: mallory, token: malloryToken, console, refreshToken } = await adminToken(svc);
    const { token: root } = await adminToken(svc);
    assert.equal((await adminCall(malloryToken, 'GET', '/users')).status, 200);

    assert.equal((await adminCall(root, 'PATCH', `/users/${mallory.id}`, { roles: ['viewer'] })).status, 200);
    for (const [method, path, body] of [
      ['GET', '/users', undefined],
      ['POST', '/users', { email: 'sneaky@example.com', password: 'a long enough password 1', roles: ['admin'] }],
      ['POST', '/clients', { client_id: 'sneaky', grant_types: ['client_credentials'] }],
      ['POST', `/clients/${console.client.id}/rotate-secret`, undefined],
    ] as const) {
      const res = await adminCall(malloryToken, method, path, body);
      assert.equal(res.status, 403, `${method} ${path} → ${res.status}`);
      assert.equal(res.body.error, 'insufficient_scope');
    }

    assert.equal((await adminCall(root, 'PATCH', `/users/${mallory.id}`, { status: 'disabled' })).status, 200);
    const res = await adminCall(malloryToken, 'GET', '/users');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    await assert.rejects(console.refresh(refreshToken!), (e: any) => e.error === 'invalid_grant');
    assert.equal((await svc.stores.db.user.count({ where: { email: 'sneaky@example.com' } })), 0);
  });

  test('revoke-sessions of an admin ends their admin token at once; a new login works', async () => {
    const { admin: a, token, console } = await adminToken(svc);
    const { token: root } = await adminToken(svc);
    assert.equal((await adminCall(root, 'POST', `/users/${a.id}/revoke-sessions`)).status, 200);
    assert.equal((await adminCall(token, 'GET', '/users')).status, 401);
    const fresh = (await console.login(a.email, a.password)).access_token;
    assert.equal((await adminCall(fresh, 'GET', '/users')).status, 200);
  });

  test("a revoked session's access token cannot change the password either", async () => {
    const { token: root } = await adminToken(svc);
    const u = await svc.user();
    const gateway = await svc.client();
    const t = await passwordLogin(svc, gateway, u.email, u.password);
    assert.equal((await adminCall(root, 'POST', `/users/${u.id}/revoke-sessions`)).status, 200);
    const res = await call(svc.publicUrl, 'POST', '/account/password', {
      token: t.body.access_token as string,
      body: { current_password: u.password, new_password: `${u.password}-stolen` },
    });
    assert.equal(res.status, 401);
    assert.equal((await passwordLogin(svc, gateway, u.email, u.password)).status, 200, 'the password is unchanged');
  });

  test('a password-grant token for the default audience is refused by the admin API, and a gateway cannot mint admin tokens', async () => {
    const a = await svc.user({ roles: ['admin'] });
    const gateway = await svc.client();
    const conf = await svc.oauth(gateway);
    const t = await oauth.genericGrantRequest(conf, 'password', { username: a.email, password: a.password });
    assert.equal(decodeJwt(t.access_token).aud, svc.config.audience);
    const res = await adminCall(t.access_token, 'GET', '/users');
    assert.equal(res.status, 401);
    await assert.rejects(
      oauth.genericGrantRequest(conf, 'password', { username: a.email, password: a.password, resource: svc.config.adminAudience }),
      (e: any) => e.error === 'invalid_target',
    );
    // Nor by refreshing a default-audience token into the admin audience.
    await assert.rejects(oauth.refreshTokenGrant(conf, t.refresh_token!, { resource: svc.config.adminAudience }), (e: any) =>
      ['invalid_target', 'invalid_grant'].includes(e.error),
    );
  });

  test('a client deleted with live refresh tokens, then re-created with the same id: the old tokens are invalid_grant', async () => {
    const { token: root } = await adminToken(svc);
    const id = `gw-${randomToken(4)}`;
    const created = await adminCall(root, 'POST', '/clients', { client_id: id, grant_types: ['password', 'refresh_token'], scope: 'api:read' });
    assert.equal(created.status, 201);
    const u = await svc.user();
    const first = { id, secret: created.body.client_secret as string };
    const sessions = await Promise.all([0, 1, 2].map(() => passwordLogin(svc, first, u.email, u.password)));
    const rotated = await refresh(svc, first, sessions[2]!.body.refresh_token as string);
    assert.equal(rotated.status, 200);

    assert.equal((await adminCall(root, 'DELETE', `/clients/${id}`)).status, 204);
    assert.equal((await refresh(svc, first, sessions[0]!.body.refresh_token as string)).status, 401, 'the client is gone');

    const again = await adminCall(root, 'POST', '/clients', { client_id: id, grant_types: ['password', 'refresh_token'], scope: 'api:read' });
    assert.equal(again.status, 201);
    const second = { id, secret: again.body.client_secret as string };
    for (const rt of [sessions[0]!, sessions[1]!, rotated].map((r) => r.body.refresh_token as string)) {
      const r = await refresh(svc, second, rt);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error, 'invalid_grant');
    }
    // The re-created client itself works.
    const fresh = await passwordLogin(svc, second, u.email, u.password);
    assert.equal((await refresh(svc, second, fresh.body.refresh_token as string)).status, 200);
    const audit = await adminCall(root, 'GET', `/audit?type=client.deleted&subject=${id}`);
    assert.equal(audit.body.items.length, 1);
  });

  test('rotate-secret keeps the sessions by default, and ends them with revoke_sessions', async () => {
    const { token: root } = await adminToken(svc);
    const client = await svc.client();
    const u = await svc.user();
    const kept = await passwordLogin(svc, client, u.email, u.password);
    const secret1 = (await adminCall(root, 'POST', `/clients/${client.id}/rotate-secret`)).body.client_secret as string;
    const next = await refresh(svc, { id: client.id, secret: secret1 }, kept.body.refresh_token as string);
    assert.equal(next.status, 200, 'kept by default');

    const res = await adminCall(root, 'POST', `/clients/${client.id}/rotate-secret`, { revoke_sessions: true });
    assert.equal(res.status, 200);
    const secret2 = res.body.client_secret as string;
    const r = await refresh(svc, { id: client.id, secret: secret2 }, next.body.refresh_token as string);
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'invalid_grant');
    const fresh = await passwordLogin(svc, { id: client.id, secret: secret2 }, u.email, u.password);
    assert.equal((await refresh(svc, { id: client.id, secret: secret2 }, fresh.body.refresh_token as string)).status, 200);
  });

  test('`identity keys revoke KID` (another process): a token signed by KID is refused by the admin API at once', async () => {
    const { token } = await adminToken(svc);
    assert.equal((await adminCall(token, 'GET', '/users')).status, 200);
    const kid = decodeProtectedHeader(token).kid!;
    const env = { ...process.env, DATABASE_URL: svc.config.databaseUrl!, KEY_ENCRYPTION_KEY: svc.stores.kek.toString('base64'), REDIS_URL: '' };
    await run(process.execPath, ['src/cli.ts', 'keys', 'revoke', kid], { env });
    // KEY_SYNC_INTERVAL is 300 s here: this replica has not seen the revocation in its own key set yet.
    assert.ok(svc.keys.publishedKids.includes(kid));
    const res = await adminCall(token, 'GET', '/users');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    // The replica learns it at its next sync, stops signing with KID and signs with the successor.
    await svc.keys.sync();
    assert.ok(!svc.keys.publishedKids.includes(kid));
    const fresh = await adminToken(svc);
    assert.notEqual(decodeProtectedHeader(fresh.token).kid, kid);
    assert.equal((await adminCall(fresh.token, 'GET', '/users')).status, 200);
  });

  test('a key revoked in process is gone from the admin API key set at once', async () => {
    const { token } = await adminToken(svc);
    const kid = decodeProtectedHeader(token).kid!;
    await svc.keys.revoke(kid, { actor: 'test' });
    assert.equal((await adminCall(token, 'GET', '/users')).status, 401);
  });
});

describe('the same truth for introspection and the verifier hook', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.stop());

  test('a revoked session introspects inactive, and isRevoked refuses its access token', async () => {
    const client = await svc.client();
    const conf = await svc.oauth(client);
    const u = await svc.user();
    const t = await oauth.genericGrantRequest(conf, 'password', { username: u.email, password: u.password });
    const example = await startExample({
      issuer: svc.config.issuer,
      audience: svc.config.audience,
      isRevoked: (auth) => svc.sessions.isRevoked(auth.claims),
    });
    try {
      assert.equal((await oauth.tokenIntrospection(conf, t.refresh_token!)).active, true);
      const me = await fetch(`${example.url}/me`, { headers: { authorization: `Bearer ${t.access_token}` } });
      assert.equal(me.status, 200);

      // Revoked in Postgres only: Redis still holds the login (no clean-up ran).
      await svc.stores.db.user.update({ where: { id: u.id }, data: { sessionGeneration: { increment: 1 } } });
      assert.equal((await oauth.tokenIntrospection(conf, t.refresh_token!)).active, false);
      const revoked = await fetch(`${example.url}/me`, { headers: { authorization: `Bearer ${t.access_token}` } });
      assert.equal(revoked.status, 401);
      assert.match(revoked.headers.get('www-authenticate') ?? '', /revoked/);
      await assert.rejects(oauth.refreshTokenGrant(conf, t.refresh_token!), (e: any) => e.error === 'invalid_grant');
    } finally {
      await example.close();
    }
  });

  test('an admin console session ends with its client, or with its permission for the admin audience', async () => {
    const a = await svc.user({ roles: ['admin'] });
    const users = (token: string) => call(svc.adminUrl, 'GET', '/admin/users', { token });
    const deleted = await adminConsoleFor(svc);
    const t1 = (await deleted.login(a.email, a.password)).access_token;
    assert.equal((await users(t1)).status, 200);
    await svc.services.clients.delete(deleted.client.id, { actor: 'test' });
    assert.equal((await users(t1)).status, 401);

    const withdrawn = await adminConsoleFor(svc);
    const t2 = await withdrawn.login(a.email, a.password);
    assert.equal((await users(t2.access_token)).status, 200);
    await svc.services.clients.update(withdrawn.client.id, { resources: [] }, { actor: 'test' });
    assert.equal((await users(t2.access_token)).status, 401);
    await assert.rejects(withdrawn.refresh(t2.refresh_token!), (e: any) => e.error === 'invalid_target');
  });
});
