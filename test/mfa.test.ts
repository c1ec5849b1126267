// The second factor on the password grant (Auth0-shaped: mfa_required +
// mfa_token, then the OTP or recovery-code grant), black-box against the real
// server, Postgres and Redis. Codes come from oathtool, not the service's
// TOTP library.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { call } from './support/admin.ts';
import { enroll, MFA_OTP, MFA_RECOVERY, otpGrant, recoveryGrant, tokenRequest, totp, wrongCode } from './support/mfa.ts';
import { passwordLogin, recordEvents, refresh, trustedGateway, type TestClient } from './support/security.ts';
import { startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gw: TestClient;
let events: Map<string, object[]>;
let ipN = 0;
/** A fresh end-user IP per scenario: throttling of one never leaks into another. */
const freshIp = () => ({ 'x-end-user-ip': `203.0.113.${++ipN}` });

before(async () => {
  svc = await startTestService({
    MFA_REQUIRED_ROLES: 'admin',
    LOGIN_FREE_FAILURES: '3',
    LOGIN_BLOCK_BASE_SECONDS: '600',
    LOGIN_USER_MAX_FAILURES: '100000',
  });
  gw = await trustedGateway(svc);
  events = recordEvents(svc);
});
after(() => svc.stop());

/** A user with a confirmed TOTP factor (enrolled with an access token from a login before it). */
async function enrolledUser(ip = freshIp()) {
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password, ip);
  assert.equal(login.status, 200, login.text);
  const factor = await enroll(svc, login.body.access_token as string);
  return { user, ...factor };
}

async function mfaToken(user: { email: string; password: string }, ip: Record<string, string>, client = gw): Promise<string> {
  const r = await passwordLogin(svc, client, user.email, user.password, ip);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error, 'mfa_required');
  assert.equal(typeof r.body.error_description, 'string');
  assert.match(r.body.mfa_token as string, /^[\w-]{43}$/);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  return r.body.mfa_token as string;
}

describe('enrollment', () => {
  test('start gives a secret and an otpauth URI; a wrong code does not confirm, and an unconfirmed enrollment does not trigger MFA', async () => {
    const user = await svc.user();
    const ip = freshIp();
    const login = await passwordLogin(svc, gw, user.email, user.password, ip);
    const token = login.body.access_token as string;
    const started = await call(svc.publicUrl, 'POST', '/account/mfa/totp', { token });
    assert.equal(started.status, 201);
    assert.match(started.body.secret, /^[A-Z2-7]{32}$/);
    const uri = new URL(started.body.otpauth_uri);
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.searchParams.get('secret'), started.body.secret);

    const wrong = await call(svc.publicUrl, 'POST', '/account/mfa/totp/confirm', { token, body: { code: await wrongCode(started.body.secret) } });
    assert.equal(wrong.status, 403);
    assert.equal((await call(svc.publicUrl, 'GET', '/account/mfa', { token })).body.pending, true);
    // Not confirmed: the password alone still logs in.
    const again = await passwordLogin(svc, gw, user.email, user.password, ip);
    assert.equal(again.status, 200, again.text);

    // The secret is stored sealed under the KEK, never in the clear.
    const row = await svc.stores.db.userTotp.findUniqueOrThrow({ where: { userId: user.id } });
    assert.ok(!row.secretEnc.includes(started.body.secret));
    assert.match(row.secretEnc, /^v1\./);
  });

  test('confirm gives 10 single-use recovery codes, stored only as hashes; a second enrollment is refused', async () => {
    const { user, recoveryCodes } = await enrolledUser();
    assert.equal(recoveryCodes.length, 10);
    assert.equal(new Set(recoveryCodes).size, 10);
    const row = await svc.stores.db.userTotp.findUniqueOrThrow({ where: { userId: user.id } });
    assert.equal(row.recoveryCodes.length, 10);
    for (const code of recoveryCodes) assert.ok(!row.recoveryCodes.some((h) => h.includes(code.replace(/-/g, ''))));
    const login = await passwordLogin(svc, gw, user.email, user.password, freshIp());
    assert.equal(login.body.error, 'mfa_required');
  });
});

describe('the password grant with a second factor', () => {
  test('mfa_required → OTP grant → tokens that verify through the JWKS and refresh; the mfa_token is single use', async () => {
    const ip = freshIp();
    const { user, secret, recoveryCodes } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    // The code of the confirmation step was used: refused inside its window.
    const next = await totp(secret, 1);
    const ok = await otpGrant(svc, gw, token, next, ip);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.token_type, 'Bearer');
    assert.equal(typeof ok.body.refresh_token, 'string');
    const meta = (await (await fetch(`${svc.config.issuer}/.well-known/oauth-authorization-server`)).json()) as { jwks_uri: string };
    const { payload } = await jwtVerify(ok.body.access_token as string, createRemoteJWKSet(new URL(meta.jwks_uri)), {
      issuer: svc.config.issuer,
      audience: svc.config.audience,
      typ: 'at+jwt',
    });
    assert.equal(payload.sub, user.id);
    const refreshed = await refresh(svc, gw, ok.body.refresh_token as string);
    assert.equal(refreshed.status, 200, refreshed.text);

    // Spent: even with another right second factor (a recovery code).
    const reused = await recoveryGrant(svc, gw, token, recoveryCodes[0]!, ip);
    assert.equal(reused.status, 400);
    assert.equal(reused.body.error, 'invalid_grant');
  });

  test('the same code twice: the second is refused (RFC 6238 §5.2), also when both race', async () => {
    const ip = freshIp();
    const { user, secret } = await enrolledUser(ip);
    const [a, b] = await Promise.all([mfaToken(user, ip), mfaToken(user, ip)]);
    const code = await totp(secret, 1);
    const answers = await Promise.all([otpGrant(svc, gw, a, code, ip), otpGrant(svc, gw, b, code, ip)]);
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 400], answers.map((r) => r.text).join(' | '));
    const refused = answers.find((r) => r.status === 400)!;
    assert.equal(refused.body.error, 'invalid_grant');
  });

  test('one mfa_token raced with two right second factors: exactly one set of tokens', async () => {
    const ip = freshIp();
    const { user, secret, recoveryCodes } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    // Both checks pass (a code and a recovery code); only one consumes the mfa_token.
    const answers = await Promise.all([otpGrant(svc, gw, token, await totp(secret, 1), ip), recoveryGrant(svc, gw, token, recoveryCodes[0]!, ip)]);
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 400], answers.map((r) => r.text).join(' | '));
  });

  test('a recovery code works once; the second use is refused', async () => {
    const ip = freshIp();
    const { user, recoveryCodes } = await enrolledUser(ip);
    const first = await recoveryGrant(svc, gw, await mfaToken(user, ip), recoveryCodes[0]!);
    assert.equal(first.status, 200, first.text);
    assert.equal(typeof first.body.refresh_token, 'string');
    const second = await recoveryGrant(svc, gw, await mfaToken(user, ip), recoveryCodes[0]!);
    assert.equal(second.status, 400);
    assert.equal(second.body.error, 'invalid_grant');
    // Another one still works, typed without dashes and in capitals.
    const third = await recoveryGrant(svc, gw, await mfaToken(user, ip), recoveryCodes[1]!.replace(/-/g, '').toUpperCase());
    assert.equal(third.status, 200, third.text);
    const row = await svc.stores.db.userTotp.findUniqueOrThrow({ where: { userId: user.id } });
    assert.equal(row.recoveryCodes.length, 8);
    const audit = await svc.stores.db.auditEvent.findMany({ where: { type: 'mfa.recovery_code_used', subject: user.id } });
    assert.equal(audit.length, 2);
  });

  test("an OTP for another user's mfa_token, and another client's mfa_token, fail", async () => {
    const ip = freshIp();
    const a = await enrolledUser(ip);
    const b = await enrolledUser(ip);
    const tokenA = await mfaToken(a.user, ip);
    const crossed = await otpGrant(svc, gw, tokenA, await totp(b.secret, 1), ip);
    assert.equal(crossed.status, 400);
    assert.equal(crossed.body.error, 'invalid_grant');

    const other = await trustedGateway(svc);
    const stolen = await otpGrant(svc, other, tokenA, await totp(a.secret, 1), ip);
    assert.equal(stolen.status, 400);
    assert.equal(stolen.body.error, 'invalid_grant');
    // The rightful client still can.
    const rightful = await otpGrant(svc, gw, tokenA, await totp(a.secret, 1), ip);
    assert.equal(rightful.status, 200, rightful.text);
  });

  test('the mfa_token is stored by its hash for at most 5 minutes; once expired it is refused', async () => {
    const ip = freshIp();
    const { user, secret } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    const redis = svc.stores.redis!;
    const key = `${svc.config.redisKeyPrefix}mfa:${createHash('sha256').update(token).digest('base64url')}`;
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0 && ttl <= 300, `TTL ${ttl}`);
    assert.ok(!(await redis.get(key))!.includes(token));
    assert.equal(await redis.exists(`${svc.config.redisKeyPrefix}mfa:${token}`), 0);
    await redis.pexpire(key, 1); // what 5 minutes do
    await new Promise((r) => setTimeout(r, 20));
    const expired = await otpGrant(svc, gw, token, await totp(secret, 1), ip);
    assert.equal(expired.status, 400);
    assert.equal(expired.body.error, 'invalid_grant');
  });

  test('bad input: malformed, unknown or missing mfa_token and codes are RFC 6749 errors, never 500', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ grant_type: MFA_OTP, mfa_token: 'x', otp: '123456' }, 'invalid_grant'],
      [{ grant_type: MFA_OTP, mfa_token: 'A'.repeat(43), otp: '123456' }, 'invalid_grant'],
      [{ grant_type: MFA_OTP, mfa_token: 'A'.repeat(43), otp: 'abcdef' }, 'invalid_grant'],
      [{ grant_type: MFA_OTP, otp: '123456' }, 'invalid_request'],
      [{ grant_type: MFA_OTP, mfa_token: 'A'.repeat(43) }, 'invalid_request'],
      [{ grant_type: MFA_RECOVERY, mfa_token: 'A'.repeat(43) }, 'invalid_request'],
      [{ grant_type: MFA_RECOVERY, mfa_token: 'A'.repeat(43), recovery_code: 'not-a-code' }, 'invalid_grant'],
      // Control characters are refused before any grant runs (src/http/input-hardening.ts).
      [{ grant_type: MFA_RECOVERY, mfa_token: 'A'.repeat(43), recovery_code: '\u0000'.repeat(10) }, 'invalid_request'],
    ];
    for (const [form, error] of cases) {
      const r = await tokenRequest(svc, gw, form);
      assert.equal(r.status, 400, `${JSON.stringify(form)}: ${r.text}`);
      assert.equal(r.body.error, error, JSON.stringify(form));
    }
  });

  test('a wrong password for an enrolled user is the byte-identical invalid_grant', async () => {
    const ip = freshIp();
    const { user } = await enrolledUser(ip);
    const wrong = await passwordLogin(svc, gw, user.email, 'not the password', freshIp());
    const unknown = await passwordLogin(svc, gw, 'nobody@example.com', 'not the password', freshIp());
    assert.equal(wrong.status, 400);
    assert.equal(wrong.text, unknown.text);
    assert.ok(!('mfa_token' in wrong.body));
  });
});

describe('the same defences as passwords', () => {
  test('wrong codes count like wrong passwords: after LOGIN_FREE_FAILURES the right code is refused identically, and so is the password', async () => {
    const ip = freshIp();
    const { user, secret } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    const wrong: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await otpGrant(svc, gw, token, await wrongCode(secret), ip);
      assert.equal(r.status, 400);
      wrong.push(r.text);
    }
    const throttled = await otpGrant(svc, gw, token, await totp(secret, 1), ip);
    assert.equal(throttled.status, 400);
    assert.equal(throttled.text, wrong[0], 'throttled answers like a wrong code');
    assert.ok((events.get('login.throttled') ?? []).some((e) => (e as { via: string }).via === 'mfa'));
    // The same counters as the password: a right password from that source is throttled too.
    const password = await passwordLogin(svc, gw, user.email, user.password, ip);
    assert.equal(password.status, 400);
    assert.equal(password.body.error, 'invalid_grant');
    // From another source, the owner still gets through.
    const elsewhere = freshIp();
    const fresh = await otpGrant(svc, gw, await mfaToken(user, elsewhere), await totp(secret, 1), elsewhere);
    assert.equal(fresh.status, 200, fresh.text);
  });

  test('one mfa_token allows 5 attempts, then it is gone', async () => {
    const { user, secret } = await enrolledUser();
    const token = await mfaToken(user, freshIp());
    for (let i = 0; i < 5; i++) {
      // A new source each time: the per-user-and-source limit stays out of it.
      const r = await otpGrant(svc, gw, token, await wrongCode(secret), freshIp());
      assert.equal(r.body.error, 'invalid_grant');
    }
    // The right code, from a fresh source, on the sixth attempt: the mfa_token is gone.
    const sixth = await otpGrant(svc, gw, token, await totp(secret, 1), freshIp());
    assert.equal(sixth.status, 400);
    assert.equal(sixth.body.error, 'invalid_grant');
    // A new login gets a new one, and that works.
    const ip = freshIp();
    const fresh = await otpGrant(svc, gw, await mfaToken(user, ip), await totp(secret, 1), ip);
    assert.equal(fresh.status, 200, fresh.text);
  });

  test('audit rows and security events, with no secret in them or in the logs', async () => {
    const ip = freshIp();
    const { user, secret, recoveryCodes } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    await otpGrant(svc, gw, token, await wrongCode(secret), ip);
    await otpGrant(svc, gw, token, await totp(secret, 1), ip);
    const rows = await svc.stores.db.auditEvent.findMany({ where: { subject: user.id, type: { startsWith: 'mfa.' } } });
    const types = rows.map((r) => r.type);
    for (const t of ['mfa.enrolled', 'mfa.challenge_failed', 'mfa.challenge_passed']) assert.ok(types.includes(t), `${t} in ${types}`);
    for (const name of ['mfa.enrolled', 'mfa.challenge_failed', 'mfa.challenge_passed']) assert.ok(events.get(name)?.length, name);
    const everything = JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v)) + svc.logs.text;
    for (const s of [secret, token, ...recoveryCodes]) assert.ok(!everything.includes(s), 'a secret reached the audit table or the logs');
  });

  test('discovery advertises the grant types', async () => {
    const meta = (await (await fetch(`${svc.config.issuer}/.well-known/oauth-authorization-server`)).json()) as { grant_types_supported: string[] };
    assert.ok(meta.grant_types_supported.includes(MFA_OTP));
    assert.ok(meta.grant_types_supported.includes(MFA_RECOVERY));
  });
});

describe('policy and administration', () => {
  /** An admin console client (ADMIN_AUDIENCE) and the login of an admin, who must have MFA (MFA_REQUIRED_ROLES=admin). */
  async function adminConsole() {
    const console = await trustedGatewayWithAdmin();
    const admin = await svc.user({ roles: ['admin'] });
    return { console, admin };
  }
  async function trustedGatewayWithAdmin(): Promise<TestClient> {
    const c = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read'], resources: [svc.config.adminAudience] });
    return c;
  }
  const adminLogin = (client: TestClient, user: { email: string; password: string }, ip: Record<string, string>) =>
    tokenRequest(svc, client, { grant_type: 'password', username: user.email, password: user.password, resource: svc.config.adminAudience }, ip);

  test('MFA_REQUIRED_ROLES=admin: an admin without MFA gets no admin token, only an mfa_token that enrolls', async () => {
    const { console, admin } = await adminConsole();
    const first = await adminLogin(console, admin, {});
    assert.equal(first.status, 400, first.text);
    assert.equal(first.body.error, 'mfa_required');
    assert.ok(!('access_token' in first.body));
    const mfaToken = first.body.mfa_token as string;
    // The mfa_token is no access token.
    assert.equal((await call(svc.adminUrl, 'GET', '/admin/users', { token: mfaToken })).status, 401);
    assert.equal((await call(svc.publicUrl, 'GET', '/account/mfa', { token: mfaToken })).status, 401);
    // Before enrolling, the OTP grant has nothing to check.
    const early = await otpGrant(svc, console, mfaToken, '123456');
    assert.equal(early.body.error, 'invalid_grant');
    // It enrolls, then finishes the login with a later code.
    const { secret } = await enroll(svc, mfaToken);
    const done = await otpGrant(svc, console, mfaToken, await totp(secret, 1));
    assert.equal(done.status, 200, done.text);
    const users = await call(svc.adminUrl, 'GET', '/admin/users', { token: done.body.access_token as string });
    assert.equal(users.status, 200);
  });

  test('an enroll-only mfa_token dies with a revocation since its password step: it cannot register a factor', async () => {
    // Whoever knew the old password must not plant their own authenticator
    // after the owner changed it (or an admin revoked the sessions).
    const { console, admin } = await adminConsole();
    const first = await adminLogin(console, admin, {});
    assert.equal(first.body.error, 'mfa_required', first.text);
    const mfaToken = first.body.mfa_token as string;
    await svc.services.accounts.revokeSessions(admin.id, { actor: 'test' });
    const start = await call(svc.publicUrl, 'POST', '/account/mfa/totp', { token: mfaToken });
    assert.equal(start.status, 401, JSON.stringify(start.body));
    assert.equal(start.body.error, 'invalid_token');
    assert.equal((await call(svc.publicUrl, 'POST', '/account/mfa/totp/confirm', { token: mfaToken, body: { code: '123456' } })).status, 401);
    // A fresh password step enrolls as before.
    const again = await adminLogin(console, admin, {});
    assert.equal(again.body.error, 'mfa_required', again.text);
    await enroll(svc, again.body.mfa_token as string);
  });

  test('an mfa_token of an enrolled account cannot re-enroll', async () => {
    const ip = freshIp();
    const { user } = await enrolledUser(ip);
    const token = await mfaToken(user, ip);
    assert.equal((await call(svc.publicUrl, 'POST', '/account/mfa/totp', { token })).status, 401);
  });

  test('admin: per-user flag, and a reset that is audited and ends the sessions', async () => {
    const { console, admin } = await adminConsole();
    const enrollToken = (await adminLogin(console, admin, {})).body.mfa_token as string;
    const { secret } = await enroll(svc, enrollToken);
    const adminToken = (await otpGrant(svc, console, enrollToken, await totp(secret, 1))).body.access_token as string;

    const user = await svc.user();
    const ip = freshIp();
    assert.equal((await passwordLogin(svc, gw, user.email, user.password, ip)).status, 200);
    const flag = await call(svc.adminUrl, 'PUT', `/admin/users/${user.id}/mfa-required`, { token: adminToken, body: { required: true } });
    assert.equal(flag.status, 200);
    const required = await passwordLogin(svc, gw, user.email, user.password, ip);
    assert.equal(required.body.error, 'mfa_required');
    const { secret: userSecret } = await enroll(svc, required.body.mfa_token as string);
    const session = await otpGrant(svc, gw, required.body.mfa_token as string, await totp(userSecret, 1), ip);
    assert.equal(session.status, 200, session.text);

    const reset = await call(svc.adminUrl, 'POST', `/admin/users/${user.id}/mfa/reset`, { token: adminToken });
    assert.equal(reset.status, 204);
    assert.equal((await svc.stores.db.userTotp.count({ where: { userId: user.id } })), 0);
    // The durable truth (a new session generation in Postgres), not only the Redis clean-up: the access token is dead too.
    assert.equal((await call(svc.publicUrl, 'GET', '/account/mfa', { token: session.body.access_token as string })).status, 401);
    const dead = await refresh(svc, gw, session.body.refresh_token as string);
    assert.equal(dead.status, 400);
    assert.equal(dead.body.error, 'invalid_grant');
    const audit = await svc.stores.db.auditEvent.findMany({ where: { type: 'mfa.reset', subject: user.id } });
    assert.equal(audit.length, 1);
    assert.ok(events.get('mfa.reset')?.length);
  });

  test('disable needs the current password and a code', async () => {
    const ip = freshIp();
    const { user, secret, recoveryCodes } = await enrolledUser(ip);
    const login = await otpGrant(svc, gw, await mfaToken(user, ip), await totp(secret, 1), ip);
    const token = login.body.access_token as string;
    const wrongPassword = await call(svc.publicUrl, 'POST', '/account/mfa/disable', {
      token,
      body: { password: 'nope', code: await wrongCode(secret) },
      headers: ip,
    });
    assert.equal(wrongPassword.status, 403);
    const wrongCodeAnswer = await call(svc.publicUrl, 'POST', '/account/mfa/disable', {
      token,
      body: { password: user.password, code: await wrongCode(secret) },
    });
    assert.equal(wrongCodeAnswer.status, 403);
    assert.equal(await svc.stores.db.userTotp.count({ where: { userId: user.id } }), 1);
    // The login used the next step's code: disable with a recovery code.
    const disabled = await call(svc.publicUrl, 'POST', '/account/mfa/disable', { token, body: { password: user.password, recovery_code: recoveryCodes[0]! } });
    assert.equal(disabled.status, 204);
    assert.equal(await svc.stores.db.userTotp.count({ where: { userId: user.id } }), 0);
    const rows = await svc.stores.db.auditEvent.findMany({ where: { type: 'mfa.disabled', subject: user.id }, orderBy: { id: 'asc' } });
    // The wrong password is recorded under the action it refused; then the success.
    assert.deepEqual(rows.map((r) => [r.outcome, r.reason]), [['failure', 'bad_password'], ['success', null]]);
    assert.equal((await passwordLogin(svc, gw, user.email, user.password, ip)).status, 200);
  });
});
