// The admin API and the user lifecycle, black-box: admin port with an admin
// Bearer token, public port for registration and the OAuth flows.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import * as oauth from 'openid-client';
import { adminConsoleFor, adminToken, call, gatewayFor, type Json } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;
let token: string;
let adminId: string;
const admin = (method: string, path: string, opts: Parameters<typeof call>[3] = {}) =>
  call(svc.adminUrl, method, `/admin${path}`, { token, ...opts });
const pub = (method: string, path: string, opts: Parameters<typeof call>[3] = {}) => call(svc.publicUrl, method, path, opts);

async function auditOf(type: string, subject?: string): Promise<Json[]> {
  const q = new URLSearchParams({ type, ...(subject ? { subject } : {}) });
  const res = await admin('GET', `/audit?${q}`);
  assert.equal(res.status, 200);
  return res.body.items;
}

before(async () => {
  svc = await startTestService({ REGISTRATION_MODE: 'approval' });
  gw = await gatewayFor(svc);
  const a = await adminToken(svc);
  token = a.token;
  adminId = a.admin.id;
});
after(() => svc.stop());

describe('lifecycle', () => {
  test('register (approval) → login refused → approve → login → disable → refresh fails', async () => {
    const password = 'a perfectly fine passphrase';
    const reg = await pub('POST', '/register', { body: { email: 'New.User@Example.COM', password } });
    assert.equal(reg.status, 202, JSON.stringify(reg.body));
    assert.deepEqual(reg.body, { status: 'accepted' });
    const listed = await admin('GET', '/users?email=new.user@example.com');
    assert.equal(listed.body.total, 1);
    const [created] = listed.body.items;
    assert.equal(created.status, 'pending');
    assert.deepEqual(created.roles, []);
    assert.equal(created.email, 'new.user@example.com');
    const id = created.id as string;

    await assert.rejects(gw.login('new.user@example.com', password), (e: any) => e.error === 'invalid_grant');

    const approved = await admin('POST', `/users/${id}/approve`);
    assert.equal(approved.status, 200);
    assert.equal(approved.body.status, 'active');
    assert.equal(approved.body.approved_by, adminId);
    assert.ok(Date.now() - Date.parse(approved.body.approved_at) < 60_000);
    assert.equal((await admin('POST', `/users/${id}/approve`)).status, 409);

    const tokens = await gw.login('NEW.USER@example.com', password);
    assert.ok(tokens.refresh_token);

    const disabled = await admin('PATCH', `/users/${id}`, { body: { status: 'disabled' } });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.status, 'disabled');
    await assert.rejects(gw.refresh(tokens.refresh_token!), (e: any) => e.error === 'invalid_grant');
    await assert.rejects(gw.login('new.user@example.com', password), (e: any) => e.error === 'invalid_grant');

    for (const type of ['user.registered', 'user.approved', 'user.disabled']) {
      const [event] = await auditOf(type, id);
      assert.ok(event, type);
      assert.ok(event.time && event.ip && event.request_id, JSON.stringify(event));
      if (type !== 'user.registered') assert.equal(event.actor, adminId);
    }
    const logins = await auditOf('login.failure', id);
    assert.ok(logins.some((e) => e.reason === 'account_pending'));
    assert.ok(logins.some((e) => e.reason === 'account_disabled'));
    const [success] = await auditOf('login.success', id);
    assert.equal(success?.client_id, gw.client.id);
  });

  test('registration never accepts a role or a status', async () => {
    for (const extra of [{ roles: ['admin'] }, { status: 'active' }, { role: 'admin' }]) {
      const res = await pub('POST', '/register', { body: { email: 'sneaky@example.com', password: 'another fine passphrase', ...extra } });
      assert.equal(res.status, 400);
      assert.equal(res.body.error, 'validation_failed');
      assert.equal(res.body.field, Object.keys(extra)[0]);
    }
  });

  test('registration modes: closed refuses, open activates at once', async () => {
    const closed = await startTestService({ REGISTRATION_MODE: 'closed' });
    const open = await startTestService({ REGISTRATION_MODE: 'open' });
    try {
      const body = { email: 'someone@example.com', password: 'yet another fine passphrase' };
      const refused = await call(closed.publicUrl, 'POST', '/register', { body });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error, 'forbidden');
      const accepted = await call(open.publicUrl, 'POST', '/register', { body });
      assert.equal(accepted.status, 202);
      const user = await open.stores.db.user.findUniqueOrThrow({ where: { email: 'someone@example.com' } });
      assert.equal(user.status, 'active');
      // The same answer for an address that is taken (test/self-service-abuse.test.ts: mails and timing).
      const dup = await call(open.publicUrl, 'POST', '/register', { body: { ...body, email: 'SomeOne@example.com' } });
      assert.equal(dup.status, 202);
      assert.deepEqual(dup.body, accepted.body);
      assert.equal(await open.stores.db.user.count({ where: { email: 'someone@example.com' } }), 1);
    } finally {
      await Promise.all([closed.stop(), open.stop()]);
    }
  });

  test('deleting a user revokes every grant at once', async () => {
    const u = await svc.user({ roles: ['viewer'] });
    const a = await gw.login(u.email, u.password);
    const b = await gw.login(u.email, u.password);
    const del = await admin('DELETE', `/users/${u.id}`);
    assert.equal(del.status, 204);
    for (const t of [a, b]) await assert.rejects(gw.refresh(t.refresh_token!), (e: any) => e.error === 'invalid_grant');
    assert.equal((await admin('GET', `/users/${u.id}`)).status, 404);
    assert.equal((await admin('DELETE', `/users/${u.id}`)).status, 404);
    assert.equal((await auditOf('user.deleted', u.id)).length, 1);
  });

  test('revoke sessions ends every refresh token of the user', async () => {
    const u = await svc.user({ roles: ['viewer'] });
    const t = await gw.login(u.email, u.password);
    const res = await admin('POST', `/users/${u.id}/revoke-sessions`);
    assert.equal(res.status, 200);
    assert.equal(res.body.revoked, 1);
    await assert.rejects(gw.refresh(t.refresh_token!), (e: any) => e.error === 'invalid_grant');
  });

  test('a role change shows in the access token at the next refresh', async () => {
    const u = await svc.user({ roles: ['viewer'] });
    const t = await gw.login(u.email, u.password);
    assert.deepEqual(decodeJwt(t.access_token).roles, ['viewer']);
    const res = await admin('PATCH', `/users/${u.id}`, { body: { roles: ['engineer', 'viewer'] } });
    assert.equal(res.status, 200);
    const next = await gw.refresh(t.refresh_token!);
    assert.deepEqual(decodeJwt(next.access_token).roles, ['engineer', 'viewer']);
    const [event] = await auditOf('user.roles_changed', u.id);
    assert.deepEqual(event?.details, { from: ['viewer'], to: ['engineer', 'viewer'] });
    const bad = await admin('PATCH', `/users/${u.id}`, { body: { roles: ['root'] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'roles');
  });
});

describe('admin API authorization', () => {
  test('no token → 401, viewer → 403, admin → 200; not on the public port', async () => {
    const none = await call(svc.adminUrl, 'GET', '/admin/users');
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);

    const garbage = await call(svc.adminUrl, 'GET', '/admin/users', { token: 'not.a.jwt' });
    assert.equal(garbage.status, 401);
    assert.match(garbage.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

    const console = await adminConsoleFor(svc);
    const viewer = await svc.user({ roles: ['viewer'] });
    const vt = (await console.login(viewer.email, viewer.password)).access_token;
    const forbidden = await call(svc.adminUrl, 'GET', '/admin/users', { token: vt });
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);

    // Only tokens for the admin API's own audience: an admin's token from an
    // end-user gateway (TOKEN_AUDIENCE) is refused, and the gateway cannot ask for the admin audience.
    const adminUser = await svc.user({ roles: ['admin'] });
    const gatewayToken = (await gw.login(adminUser.email, adminUser.password)).access_token;
    const wrongAudience = await call(svc.adminUrl, 'GET', '/admin/users', { token: gatewayToken });
    assert.equal(wrongAudience.status, 401);
    assert.match(wrongAudience.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    await assert.rejects(
      oauth.genericGrantRequest(gw.conf, 'password', { username: adminUser.email, password: adminUser.password, resource: svc.config.adminAudience }),
      (e: any) => e.error === 'invalid_target',
    );

    // A client_credentials token has no user behind it, whatever its audience.
    const cc = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'], resources: [svc.config.adminAudience] });
    const ccConf = await svc.oauth(cc);
    for (const resource of [undefined, svc.config.adminAudience]) {
      const ccToken = (await oauth.clientCredentialsGrant(ccConf, resource ? { resource } : {})).access_token;
      assert.equal((await call(svc.adminUrl, 'GET', '/admin/users', { token: ccToken })).status, 401, `client_credentials ${resource}`);
    }

    const ok = await admin('GET', '/users');
    assert.equal(ok.status, 200);
    assert.ok(ok.body.total >= 1);

    const viaPublic = await call(svc.publicUrl, 'GET', '/admin/users', { token });
    assert.notEqual(viaPublic.status, 200);
  });
});

describe('users API', () => {
  test('create, list with filter and paging, get, bad input', async () => {
    const created = await admin('POST', '/users', {
      body: { email: 'Carol@Example.com', password: 'carol has a long password', roles: ['engineer'] },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.email, 'carol@example.com');
    assert.equal(created.body.password_hash, undefined);
    const [event] = await auditOf('user.created', created.body.id);
    assert.equal(event?.actor, adminId);

    const dup = await admin('POST', '/users', { body: { email: 'CAROL@example.com', password: 'carol has a long password' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error, 'conflict');

    const filtered = await admin('GET', '/users?role=engineer&email=carol');
    assert.equal(filtered.status, 200);
    assert.deepEqual(filtered.body.items.map((u: Json) => u.email), ['carol@example.com']);

    const page1 = await admin('GET', '/users?limit=1&offset=0');
    const page2 = await admin('GET', '/users?limit=1&offset=1');
    assert.equal(page1.body.items.length, 1);
    assert.notEqual(page1.body.items[0].id, page2.body.items[0].id);

    assert.equal((await admin('GET', `/users/${created.body.id}`)).body.email, 'carol@example.com');
    assert.equal((await admin('GET', '/users/00000000-0000-4000-8000-000000000000')).status, 404);

    const cases: [string, string, Json | string, string][] = [
      ['POST', '/users', { email: 'not-an-email', password: 'x'.repeat(20) }, 'email'],
      ['POST', '/users', { email: 'd@example.com', password: 'short' }, 'password'],
      ['POST', '/users', { email: 'd@example.com', roles: 'admin' }, 'roles'],
      ['POST', '/users', { email: 'd@example.com', status: 'superuser' }, 'status'],
      ['POST', '/users', '{"email": ', 'body'],
      ['GET', '/users?limit=0', '', 'limit'],
      ['GET', '/users?status=weird', '', 'status'],
      ['GET', '/users/not-a-uuid', '', 'id'],
      ['PATCH', `/users/${created.body.id}`, {}, 'body'],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await admin(method, path, typeof body === 'string' ? (body ? { raw: body } : {}) : { body });
      assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)} → ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'validation_failed');
      if (field !== 'body') assert.equal(res.body.field, field, JSON.stringify(res.body));
    }
    const huge = await admin('POST', '/users', { raw: JSON.stringify({ email: 'e@example.com', password: 'x'.repeat(100_000) }) });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error, 'payload_too_large');
  });

  test('stats count statuses and legacy hashes', async () => {
    const res = await admin('GET', '/users/stats');
    assert.equal(res.status, 200);
    assert.equal(typeof res.body.legacy_hashes, 'number');
    assert.ok(res.body.by_status.active >= 1);
  });
});

describe('clients API', () => {
  test('create (secret once), list, rotate, update, delete, with audit', async () => {
    const created = await admin('POST', '/clients', {
      body: { client_id: 'svc-a', grant_types: ['client_credentials'], scope: 'api:read' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const secret = created.body.client_secret as string;
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    const first = await oauth.clientCredentialsGrant(await svc.oauth({ id: 'svc-a', secret }));
    assert.ok(first.access_token);

    assert.equal((await admin('POST', '/clients', { body: { client_id: 'svc-a', grant_types: ['password'] } })).status, 409);
    const badScope = await admin('POST', '/clients', { body: { client_id: 'svc-b', grant_types: ['password'], scope: 'nope' } });
    assert.equal(badScope.status, 400);
    assert.equal(badScope.body.field, 'scope');
    const badGrant = await admin('POST', '/clients', { body: { client_id: 'svc-b', grant_types: ['implicit'] } });
    assert.equal(badGrant.body.field, 'grant_types.0');

    const list = await admin('GET', '/clients');
    const listed = list.body.items.find((c: Json) => c.client_id === 'svc-a');
    assert.ok(listed);
    assert.equal(listed.client_secret, undefined);

    const rotated = await admin('POST', '/clients/svc-a/rotate-secret');
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.client_secret, secret);
    await assert.rejects(oauth.clientCredentialsGrant(await svc.oauth({ id: 'svc-a', secret })));
    assert.ok((await oauth.clientCredentialsGrant(await svc.oauth({ id: 'svc-a', secret: rotated.body.client_secret }))).access_token);

    const updated = await admin('PATCH', '/clients/svc-a', { body: { scope: 'api:read api:write' } });
    assert.equal(updated.body.scope, 'api:read api:write');
    assert.equal((await admin('PATCH', '/clients/nope', { body: { scope: 'api:read' } })).status, 404);

    assert.equal((await admin('DELETE', '/clients/svc-a')).status, 204);
    assert.equal((await admin('GET', '/clients/svc-a')).status, 404);

    for (const type of ['client.created', 'client.secret_rotated', 'client.updated', 'client.deleted']) {
      const [event] = await auditOf(type, 'svc-a');
      assert.ok(event, type);
      assert.equal(event.actor, adminId);
      assert.doesNotMatch(JSON.stringify(event), new RegExp(secret));
    }
  });
});

describe('audit', () => {
  test('login failures carry a reason code and never the password; filters work', async () => {
    const u = await svc.user({ roles: ['viewer'] });
    await assert.rejects(gw.login(u.email, 'wrong-password-123456'));
    await assert.rejects(gw.login('nobody@example.com', 'wrong-password-123456'));
    const failures = await auditOf('login.failure');
    const mine = failures.find((e) => e.subject === u.id)!;
    assert.equal(mine.reason, 'bad_password');
    assert.equal(mine.outcome, 'failure');
    assert.equal(mine.client_id, gw.client.id);
    // An unknown name is kept only as a keyed hash (test/login-guard.test.ts checks the hash).
    assert.ok(failures.some((e) => e.reason === 'unknown_user' && typeof e.details.username_hmac === 'string'));
    assert.equal(mine.details.username, u.email, 'a name that matches an account is that account’s address');
    const all = await admin('GET', '/audit?limit=500');
    assert.doesNotMatch(JSON.stringify(all.body), /wrong-password-123456/);

    const page = await admin('GET', '/audit?limit=2');
    assert.equal(page.body.items.length, 2);
    const next = await admin('GET', `/audit?limit=2&before=${page.body.next}`);
    assert.ok(BigInt(next.body.items[0].id) < BigInt(page.body.items[1].id));
    assert.equal((await admin('GET', '/audit?type=nope')).body.field, 'type');
    assert.equal((await admin('GET', '/audit?since=yesterday')).body.field, 'since');
  });

  test('refresh token reuse is recorded', async () => {
    const u = await svc.user({ roles: ['viewer'] });
    const t = await gw.login(u.email, u.password);
    await gw.refresh(t.refresh_token!);
    await assert.rejects(gw.refresh(t.refresh_token!));
    // Recorded from an event handler, just after the response: wait a little.
    let events: Json[] = [];
    for (let i = 0; i < 50 && !events.length; i++) {
      events = await auditOf('refresh.reuse_detected', u.id);
      if (!events.length) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(events.length, 1);
    assert.equal(events[0]!.client_id, gw.client.id);
  });
});

test('without Redis (development) revoking sessions still ends every refresh token', async () => {
  const dev = await startTestService({ REDIS_URL: '' });
  try {
    assert.equal(dev.tokenStore, undefined);
    const g = await gatewayFor(dev);
    const t = (await adminToken(dev)).token;
    const u = await dev.user({ roles: ['viewer'] });
    const a = await g.login(u.email, u.password);
    const b = await g.login(u.email, u.password);
    const res = await call(dev.adminUrl, 'POST', `/admin/users/${u.id}/revoke-sessions`, { token: t });
    assert.equal(res.status, 200);
    assert.equal(res.body.revoked, 2);
    for (const s of [a, b]) await assert.rejects(g.refresh(s.refresh_token!), (e: any) => e.error === 'invalid_grant');
    assert.ok((await g.login(u.email, u.password)).refresh_token);
  } finally {
    await dev.stop();
  }
});
