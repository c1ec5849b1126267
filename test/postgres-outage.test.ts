// Postgres down: logins answer 503 fast (fail closed), JWKS is still served,
// refresh answers 503 too (it re-reads the user, so a disabled user can never
// refresh on stale data), and service resumes without a restart. The service
// reaches Postgres through a TCP proxy this test cuts and restores; the shared
// Postgres itself is never touched. Every other route of both ports answers
// 503 with Retry-After, or stays up where it needs no database.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiRoutes } from '../src/api/index.ts';
import { adminToken, call, gatewayFor } from './support/admin.ts';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import { passwordLogin, refresh, sleep } from './support/security.ts';
import { databaseBehindProxy, type TcpProxy } from './support/tcp-proxy.ts';

let db: Awaited<ReturnType<typeof databaseBehindProxy>>;
let proxy: TcpProxy;
let svc: TestService;
before(async () => {
  db = await databaseBehindProxy();
  proxy = db.proxy;
  svc = await startTestService({ REGISTRATION_MODE: 'open' }, { databaseUrl: db.url });
});
const value = (text: string, series: string) =>
  Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? 0);

after(async () => {
  await svc.stop();
  await db.drop();
});

test('Postgres down → 503 for logins and refresh, JWKS served; back up → service resumes', async () => {
  const gw = await svc.client();
  const u = await svc.user();
  const ok = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(ok.status, 200, ok.text);

  await proxy.down();
  const login = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(login.status, 503, login.text);
  assert.equal(login.body.error, 'temporarily_unavailable');
  assert.equal(login.body.access_token, undefined);
  assert.ok(login.headers.get('retry-after'));
  assert.ok(login.ms < 3000, `took ${login.ms} ms`);

  const r = await refresh(svc, gw, ok.body.refresh_token as string);
  assert.equal(r.status, 503, r.text);
  assert.ok(r.ms < 3000, `took ${r.ms} ms`);
  assert.equal((await fetch(`${svc.config.issuer}/jwks`)).status, 200);
  assert.ok(!svc.logs.text.includes('"statusCode":500'), 'no 500 while the database is down');

  await proxy.up();
  let again = await passwordLogin(svc, gw, u.email, u.password);
  for (let i = 0; again.status !== 200 && i < 50; i++) {
    await sleep(200);
    again = await passwordLogin(svc, gw, u.email, u.password);
  }
  assert.equal(again.status, 200, again.text);
  // The refresh token refused during the outage was never consumed.
  assert.equal((await refresh(svc, gw, ok.body.refresh_token as string)).status, 200);
});

test('Postgres down → every route of both ports answers 503 with Retry-After or stays up; counted as Postgres, never as Redis', async () => {
  const gateway = await gatewayFor(svc);
  const { token: adminBearer } = await adminToken(svc);
  const user = await svc.user();
  const userBearer = (await gateway.login(user.email, user.password)).access_token;
  const service = await svc.client({ grantTypes: ['client_credentials'] });
  const clientAuth = { authorization: basic(service.id, service.secret) };
  const id = user.id;
  const password = 'a long enough new password 1';
  const json = (body: unknown) => ({ body });
  // One request per declared route, with input that passes validation, so
  // that it reaches the database. A route added without a line here fails.
  const requests: Record<string, [string, string, string, { body?: unknown; raw?: string; type?: string; token?: string }]> = {
    listUsers: ['admin', 'GET', '/admin/users', {}],
    createUser: ['admin', 'POST', '/admin/users', json({ email: 'new@example.com', password })],
    importUsers: ['admin', 'POST', '/admin/users/import', { raw: '{"email":"imported@example.com"}\n', type: 'application/x-ndjson' }],
    userStats: ['admin', 'GET', '/admin/users/stats', {}],
    getUser: ['admin', 'GET', `/admin/users/${id}`, {}],
    updateUser: ['admin', 'PATCH', `/admin/users/${id}`, json({ status: 'disabled' })],
    deleteUser: ['admin', 'DELETE', `/admin/users/${id}`, {}],
    approveUser: ['admin', 'POST', `/admin/users/${id}/approve`, {}],
    revokeUserSessions: ['admin', 'POST', `/admin/users/${id}/revoke-sessions`, {}],
    forcePasswordReset: ['admin', 'POST', `/admin/users/${id}/reset-password`, {}],
    listClients: ['admin', 'GET', '/admin/clients', {}],
    createClient: ['admin', 'POST', '/admin/clients', json({ client_id: 'new-client', grant_types: ['client_credentials'] })],
    getClient: ['admin', 'GET', `/admin/clients/${service.id}`, {}],
    updateClient: ['admin', 'PATCH', `/admin/clients/${service.id}`, json({ scope: 'api:read' })],
    deleteClient: ['admin', 'DELETE', `/admin/clients/${service.id}`, {}],
    rotateClientSecret: ['admin', 'POST', `/admin/clients/${service.id}/rotate-secret`, {}],
    listAuditEvents: ['admin', 'GET', '/admin/audit', {}],
    register: ['public', 'POST', '/register', json({ email: 'someone@example.com', password })],
    requestPasswordReset: ['public', 'POST', '/password/forgot', json({ email: user.email })],
    completePasswordReset: ['public', 'POST', '/password/reset', json({ token: 'a-token-that-needs-a-lookup', password })],
    changePassword: ['public', 'POST', '/account/password', { ...json({ current_password: user.password, new_password: password }), token: userBearer }],
    mfaStatus: ['public', 'GET', '/account/mfa', { token: userBearer }],
    startTotpEnrollment: ['public', 'POST', '/account/mfa/totp', { token: userBearer }],
    confirmTotpEnrollment: ['public', 'POST', '/account/mfa/totp/confirm', { ...json({ code: '123456' }), token: userBearer }],
    disableMfa: ['public', 'POST', '/account/mfa/disable', { ...json({ password: user.password, code: '123456' }), token: userBearer }],
    resetUserMfa: ['admin', 'POST', `/admin/users/${id}/mfa/reset`, {}],
    setUserMfaRequired: ['admin', 'PUT', `/admin/users/${id}/mfa-required`, json({ required: true })],
  };
  const declared = (({ admin, selfService }) => [...admin, ...selfService].map((r) => r.operationId))(
    apiRoutes(svc.services),
  );
  assert.deepEqual(Object.keys(requests).sort(), declared.sort(), 'one request per declared route');

  const before = await (await fetch(`${svc.adminUrl}/metrics`)).text();
  await proxy.down();
  try {
    for (const [operation, [port, method, path, opts]] of Object.entries(requests)) {
      const base = port === 'admin' ? svc.adminUrl : svc.publicUrl;
      const res = await call(base, method, path, { token: port === 'admin' ? adminBearer : undefined, ...opts });
      assert.equal(res.status, 503, `${operation}: ${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'temporarily_unavailable', operation);
      assert.ok(Number(res.headers.get('retry-after')) >= 1, `${operation}: Retry-After`);
    }
    const oauth = [
      ['/token', { grant_type: 'client_credentials' }],
      ['/token/introspection', { token: 'x'.repeat(43) }],
      ['/token/revocation', { token: 'x'.repeat(43) }],
    ] as const;
    for (const [path, form] of oauth) {
      const res = await postForm(`${svc.config.issuer}${path}`, form, clientAuth);
      assert.equal(res.status, 503, `${path} → ${res.status} ${res.text}`);
      assert.equal(res.body.error, 'temporarily_unavailable', path);
      assert.ok(res.headers.get('retry-after'), `${path}: Retry-After`);
    }
    // What needs no database stays up.
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/jwks']) {
      assert.equal((await fetch(`${svc.config.issuer}${path}`)).status, 200, path);
    }
    assert.equal((await fetch(`${svc.adminUrl}/livez`)).status, 200);
    assert.equal((await fetch(`${svc.adminUrl}/admin/openapi.json`)).status, 200);
    assert.equal((await fetch(`${svc.adminUrl}/readyz`)).status, 503);
    const metrics = await fetch(`${svc.adminUrl}/metrics`);
    assert.equal(metrics.status, 200);
    const after = await metrics.text();
    const delta = (name: string) => value(after, name) - value(before, name);
    const expected = Object.keys(requests).length + oauth.length;
    assert.ok(delta('identity_postgres_errors_total{kind="request"}') >= expected, 'each outage answer counted as Postgres');
    assert.equal(delta('identity_redis_errors_total{kind="command"}'), 0, 'none counted as Redis');
    assert.ok(!svc.logs.text.includes('"statusCode":500'), 'no 500 while the database is down');
  } finally {
    await proxy.up();
  }
});
