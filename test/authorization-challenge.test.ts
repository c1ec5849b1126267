// The Authorization Challenge Endpoint (draft-ietf-oauth-first-party-apps-04),
// black-box: username + password (+ PKCE) → authorization_code, or 403
// insufficient_authorization with an auth_session → OTP (oathtool) → code →
// POST /token (oidc-provider's authorization_code grant) with the verifier.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { enroll, otpGrant, recoveryGrant, totp, wrongCode } from './support/mfa.ts';
import { passwordLogin, refresh, trustedGateway, type TestClient } from './support/security.ts';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let app: TestClient;
let gw: TestClient;
let ipN = 0;
const freshIp = () => ({ 'x-end-user-ip': `198.18.0.${++ipN}` });

before(async () => {
  svc = await startTestService({ LOGIN_FREE_FAILURES: '3', LOGIN_BLOCK_BASE_SECONDS: '600', LOGIN_USER_MAX_FAILURES: '100000' });
  app = await svc.client({ grantTypes: ['refresh_token'], scopes: ['api:read'], firstParty: true });
  gw = await trustedGateway(svc);
});
after(() => svc.stop());

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

const challenge = (client: TestClient, form: Record<string, string>, headers: Record<string, string> = {}) =>
  postForm(`${svc.config.issuer}/authorize-challenge`, form, { authorization: basic(client.id, client.secret), ...headers });

const start = (client: TestClient, username: string, password: string, codeChallenge: string, headers: Record<string, string> = {}) =>
  challenge(client, { response_type: 'code', username, password, code_challenge: codeChallenge, code_challenge_method: 'S256' }, headers);

const exchange = (client: TestClient, code: string, verifier: string) =>
  postForm(`${svc.config.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier }, { authorization: basic(client.id, client.secret) });

/** A user with TOTP enrolled (through a password-grant login before it). */
async function enrolledUser() {
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password, freshIp());
  return { user, ...(await enroll(svc, login.body.access_token as string)) };
}

describe('authorization challenge endpoint', () => {
  test('advertised in the authorization server metadata', async () => {
    const meta = (await (await fetch(`${svc.config.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(meta.authorization_challenge_endpoint, `${svc.config.issuer}/authorize-challenge`);
    assert.ok((meta.grant_types_supported as string[]).includes('authorization_code'));
  });

  test('no second factor: username + password + PKCE → authorization_code → tokens; the code is single use, the verifier must match', async () => {
    const user = await svc.user();
    const p = pkce();
    const r = await start(app, user.email, user.password, p.challenge, freshIp());
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const code = r.body.authorization_code as string;
    assert.equal(typeof code, 'string');

    const wrongVerifier = await exchange(app, code, pkce().verifier);
    assert.equal(wrongVerifier.status, 400);
    assert.equal(wrongVerifier.body.error, 'invalid_grant');

    // A wrong verifier does not burn the code in oidc-provider (it checks PKCE before consuming): a fresh code for the real test.
    const p2 = pkce();
    const code2 = (await start(app, user.email, user.password, p2.challenge, freshIp())).body.authorization_code as string;
    const tokens = await exchange(app, code2, p2.verifier);
    assert.equal(tokens.status, 200, tokens.text);
    assert.equal(typeof tokens.body.refresh_token, 'string');
    const { payload } = await jwtVerify(tokens.body.access_token as string, createRemoteJWKSet(new URL(`${svc.config.issuer}/jwks`)), {
      issuer: svc.config.issuer,
      audience: svc.config.audience,
      typ: 'at+jwt',
    });
    assert.equal(payload.sub, user.id);
    assert.equal(payload.client_id, app.id);
    assert.equal((await refresh(svc, app, tokens.body.refresh_token as string)).status, 200);

    const reused = await exchange(app, code2, p2.verifier);
    assert.equal(reused.status, 400);
    assert.equal(reused.body.error, 'invalid_grant');
  });

  test('the same code exchanged three times at once, 8 rounds: never two sets of tokens', async () => {
    const user = await svc.user();
    for (let round = 0; round < 8; round++) {
      const p = pkce();
      const code = (await start(app, user.email, user.password, p.challenge, freshIp())).body.authorization_code as string;
      const answers = await Promise.all([0, 1, 2].map(() => exchange(app, code, p.verifier)));
      const texts = answers.map((r) => r.text).join(' | ');
      // One wins the atomic consume and the others are refused; a loser that
      // reads the code already consumed also makes oidc-provider revoke the
      // grant (RFC 6749 §4.1.2), so the winner may fail too: never two succeed.
      assert.ok(answers.filter((r) => r.status === 200).length <= 1, texts);
      for (const r of answers.filter((r) => r.status !== 200)) assert.deepEqual([r.status, r.body.error], [400, 'invalid_grant'], texts);
    }
  });

  test('enrolled: insufficient_authorization + auth_session → OTP → code → tokens; the auth_session is single use', async () => {
    const { user, secret } = await enrolledUser();
    const ip = freshIp();
    const p = pkce();
    const first = await start(app, user.email, user.password, p.challenge, ip);
    assert.equal(first.status, 403, first.text);
    assert.equal(first.body.error, 'insufficient_authorization');
    const authSession = first.body.auth_session as string;
    assert.match(authSession, /^[\w-]{43}$/);
    assert.ok(!('authorization_code' in first.body));

    const wrong = await challenge(app, { auth_session: authSession, otp: await wrongCode(secret) }, ip);
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.error, 'insufficient_authorization');
    assert.equal(wrong.body.auth_session, authSession);

    const ok = await challenge(app, { auth_session: authSession, otp: await totp(secret, 1) }, ip);
    assert.equal(ok.status, 200, ok.text);
    const tokens = await exchange(app, ok.body.authorization_code as string, p.verifier);
    assert.equal(tokens.status, 200, tokens.text);
    const { payload } = await jwtVerify(tokens.body.access_token as string, createRemoteJWKSet(new URL(`${svc.config.issuer}/jwks`)), {
      issuer: svc.config.issuer,
      audience: svc.config.audience,
    });
    assert.equal(payload.sub, user.id);

    const again = await challenge(app, { auth_session: authSession, otp: await totp(secret, 1) }, ip);
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_session');
  });

  test('an auth_session dies with a revocation or an MFA reset since its password step: invalid_session, and the code sent with it is not spent', async () => {
    for (const revoke of ['sessions', 'mfa reset'] as const) {
      const { user, secret } = await enrolledUser();
      const ip = freshIp();
      const first = await start(app, user.email, user.password, pkce().challenge, ip);
      assert.equal(first.status, 403, first.text);
      if (revoke === 'sessions') await svc.services.accounts.revokeSessions(user.id, { actor: 'test' });
      else await svc.services.secondFactor.reset(user.id, { actor: 'test' });
      const code = await totp(secret, 1);
      const dead = await challenge(app, { auth_session: first.body.auth_session as string, otp: code }, ip);
      assert.equal(dead.status, 400, `${revoke}: ${dead.text}`);
      assert.equal(dead.body.error, 'invalid_session', revoke);
      assert.equal(dead.body.auth_session, undefined, `${revoke}: a dead auth_session is not handed back`);
      if (revoke === 'mfa reset') continue; // no factor left to use
      // The code was not spent on the dead ticket: a fresh password step takes it.
      const again = await start(app, user.email, user.password, pkce().challenge, ip);
      const ok = await challenge(app, { auth_session: again.body.auth_session as string, otp: code }, ip);
      assert.equal(ok.status, 200, ok.text);
    }
  });

  test('one auth_session raced with two right second factors, 4 rounds: exactly one authorization_code', async () => {
    for (let round = 0; round < 4; round++) {
      const { user, secret, recoveryCodes } = await enrolledUser();
      const ip = freshIp();
      const p = pkce();
      const authSession = (await start(app, user.email, user.password, p.challenge, ip)).body.auth_session as string;
      // Both checks pass (a code and a recovery code); only one spends the auth_session.
      const answers = await Promise.all([
        challenge(app, { auth_session: authSession, otp: await totp(secret, 1) }, ip),
        challenge(app, { auth_session: authSession, recovery_code: recoveryCodes[0]! }, ip),
      ]);
      const texts = answers.map((r) => r.text).join(' | ');
      assert.deepEqual(answers.map((r) => [r.status, r.body.error]).sort(), [[200, undefined], [400, 'invalid_session']], texts);
      const won = answers.find((r) => r.status === 200)!;
      assert.equal((await exchange(app, won.body.authorization_code as string, p.verifier)).status, 200);
    }
  });

  test('one TOTP code at both doors at once (mfa_token and auth_session), and one recovery code: one login each time', async () => {
    for (let round = 0; round < 3; round++) {
      const { user, secret, recoveryCodes } = await enrolledUser();
      const ip = freshIp();
      const mfaToken = (await passwordLogin(svc, gw, user.email, user.password, ip)).body.mfa_token as string;
      const authSession = (await start(app, user.email, user.password, pkce().challenge, ip)).body.auth_session as string;
      const otp = await totp(secret, 1);
      const [token, viaChallenge] = await Promise.all([otpGrant(svc, gw, mfaToken, otp, ip), challenge(app, { auth_session: authSession, otp }, ip)]);
      // Whichever door wins, the other refuses the code as used: invalid_grant at /token, insufficient_authorization here.
      const outcomes = [token.status === 200 ? 'tokens' : token.body.error, viaChallenge.status === 200 ? 'code' : viaChallenge.body.error];
      assert.ok(
        ['tokens,insufficient_authorization', 'invalid_grant,code'].includes(outcomes.join()),
        `${outcomes.join()}: ${token.text} | ${viaChallenge.text}`,
      );

      const mfaToken2 = (await passwordLogin(svc, gw, user.email, user.password, ip)).body.mfa_token as string;
      const authSession2 = (await start(app, user.email, user.password, pkce().challenge, ip)).body.auth_session as string;
      const [code] = recoveryCodes;
      const byRecovery = await Promise.all([
        recoveryGrant(svc, gw, mfaToken2, code!, ip),
        challenge(app, { auth_session: authSession2, recovery_code: code! }, ip),
      ]);
      assert.equal(byRecovery.filter((r) => r.status === 200).length, 1, byRecovery.map((r) => r.text).join(' | '));
    }
  });

  test('an account that must enroll first: insufficient_authorization without an auth_session, no code', async () => {
    const user = await svc.user();
    await svc.stores.db.user.update({ where: { id: user.id }, data: { mfaRequired: true } });
    const r = await start(app, user.email, user.password, pkce().challenge, freshIp());
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'insufficient_authorization');
    assert.ok(!('auth_session' in r.body));
    assert.ok(!('authorization_code' in r.body));
  });

  test('an auth_session presented by another first-party client is refused', async () => {
    const { user, secret } = await enrolledUser();
    const ip = freshIp();
    const other = await svc.client({ grantTypes: ['refresh_token'], scopes: ['api:read'], firstParty: true });
    const authSession = (await start(app, user.email, user.password, pkce().challenge, ip)).body.auth_session as string;
    const stolen = await challenge(other, { auth_session: authSession, otp: await totp(secret, 1) }, ip);
    assert.equal(stolen.status, 400);
    assert.equal(stolen.body.error, 'invalid_session');
    // The code it would have exchanged is not issued; the rightful client still can.
    const rightful = await challenge(app, { auth_session: authSession, otp: await totp(secret, 1) }, ip);
    assert.equal(rightful.status, 200, rightful.text);
  });

  test('unknown user, wrong password and throttled user: identical answers', async () => {
    const known = await svc.user();
    const throttled = await svc.user();
    const ip = freshIp();
    for (let i = 0; i < 4; i++) await start(app, throttled.email, `nope-${i}`, pkce().challenge, ip);
    const answers = {
      unknown: await start(app, 'nobody-here@example.com', 'whatever', pkce().challenge, freshIp()),
      wrong: await start(app, known.email, 'not the password', pkce().challenge, freshIp()),
      throttled: await start(app, throttled.email, throttled.password, pkce().challenge, ip),
    };
    const shape = (r: (typeof answers)['wrong']) => ({
      status: r.status,
      text: r.text,
      headers: [...r.headers].filter(([h]) => !['date', 'content-length', 'keep-alive', 'connection', 'x-request-id'].includes(h)),
    });
    for (const [name, r] of Object.entries(answers)) assert.deepEqual(shape(r), shape(answers.wrong), `${name} differs from a wrong password`);
    assert.equal(answers.wrong.status, 400);
    assert.equal(answers.wrong.body.error, 'access_denied');
  });

  test('clients: not first-party → unauthorized_client; wrong secret → 401 invalid_client; bad input → invalid_request', async () => {
    const user = await svc.user();
    const notFirstParty = await start(gw, user.email, user.password, pkce().challenge);
    assert.equal(notFirstParty.status, 400);
    assert.equal(notFirstParty.body.error, 'unauthorized_client');
    const wrongSecret = await start({ id: app.id, secret: 'wrong' }, user.email, user.password, pkce().challenge);
    assert.equal(wrongSecret.status, 401);
    assert.equal(wrongSecret.body.error, 'invalid_client');
    const cases: Record<string, string>[] = [
      { username: user.email, password: user.password, code_challenge: pkce().challenge, code_challenge_method: 'S256' }, // no response_type
      { response_type: 'code', username: user.email, password: user.password }, // no PKCE
      { response_type: 'code', username: user.email, password: user.password, code_challenge: pkce().challenge, code_challenge_method: 'plain' },
      { auth_session: 'x' }, // neither otp nor recovery_code
    ];
    for (const form of cases) {
      const r = await challenge(app, form);
      assert.equal(r.status, 400, `${JSON.stringify(form)}: ${r.text}`);
      assert.equal(r.body.error, 'invalid_request', JSON.stringify(form));
    }
    const garbage = await challenge(app, { auth_session: 'garbage', otp: '123456' });
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.error, 'invalid_session');
    const twice = await postForm(`${svc.config.issuer}/authorize-challenge`, 'response_type=code&response_type=code', { authorization: basic(app.id, app.secret) });
    assert.equal(twice.body.error, 'invalid_request');
    const get = await fetch(`${svc.config.issuer}/authorize-challenge`);
    assert.equal(get.status, 405);
  });

  test('client authentication: Basic or the body, as at /token, never both in one request', async () => {
    const user = await svc.user();
    const p = pkce();
    const form = { response_type: 'code', username: user.email, password: user.password, code_challenge: p.challenge, code_challenge_method: 'S256' };
    // Basic and a body secret together (RFC 6749 §2.3): refused before any password is checked, as /token does.
    const both = await challenge(app, { ...form, client_secret: app.secret }, freshIp());
    assert.equal(both.status, 400, both.text);
    assert.equal(both.body.error, 'invalid_request');
    assert.equal(both.body.authorization_code, undefined);
    const atToken = await postForm(`${svc.config.issuer}/token`, { grant_type: 'refresh_token', refresh_token: 'x', client_secret: app.secret }, { authorization: basic(app.id, app.secret) });
    assert.equal(atToken.status, 400, atToken.text);
    assert.equal(atToken.body.error, 'invalid_request', '/token refuses it the same way');
    // Each alone works.
    const post = await postForm(`${svc.config.issuer}/authorize-challenge`, { ...form, client_id: app.id, client_secret: app.secret }, freshIp());
    assert.equal(post.status, 200, post.text);
    const viaBasic = await start(app, user.email, user.password, pkce().challenge, freshIp());
    assert.equal(viaBasic.status, 200, viaBasic.text);
  });
});
