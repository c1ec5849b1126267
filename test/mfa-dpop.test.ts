// DPoP (RFC 9449) on the second-factor flows: the OTP grant's access token is
// bound to the proof's key (token_type DPoP, cnf.jkt); an auth_session and
// its authorization code are bound to the key of the first challenge request
// (draft-ietf-oauth-first-party-apps §9.6.1). Skipped while the provider does
// not advertise DPoP (dpop_signing_alg_values_supported).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { enroll, otpGrant, recoveryGrant, totp } from './support/mfa.ts';
import { passwordLogin, trustedGateway, type TestClient } from './support/security.ts';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gw: TestClient;
let dpopOn = false;
before(async () => {
  svc = await startTestService();
  gw = await trustedGateway(svc);
  const meta = (await (await fetch(`${svc.config.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  dpopOn = Array.isArray(meta.dpop_signing_alg_values_supported);
});
after(() => svc.stop());

type Keys = Awaited<ReturnType<typeof generateKeyPair>>;

async function proof(keys: Keys, htu: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, jti: randomBytes(12).toString('base64url') })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keys.publicKey) })
    .setIssuedAt()
    .sign(keys.privateKey);
}

async function enrolledUser() {
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password);
  return { user, ...(await enroll(svc, login.body.access_token as string)) };
}

test('OTP grant with a DPoP proof: a DPoP-bound access token', async (t) => {
  if (!dpopOn) return t.skip('DPoP is not enabled');
  const keys = await generateKeyPair('ES256');
  const { user, secret } = await enrolledUser();
  const mfa = await passwordLogin(svc, gw, user.email, user.password);
  const r = await otpGrant(svc, gw, mfa.body.mfa_token as string, await totp(secret, 1), { dpop: await proof(keys, `${svc.config.issuer}/token`) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.token_type, 'DPoP');
  assert.deepEqual(decodeJwt(r.body.access_token as string).cnf, { jkt: await calculateJwkThumbprint(await exportJWK(keys.publicKey)) });
});

test('challenge endpoint: auth_session and code bound to the first request\'s DPoP key', async (t) => {
  if (!dpopOn) return t.skip('DPoP is not enabled');
  const keys = await generateKeyPair('ES256');
  const other = await generateKeyPair('ES256');
  const { user, secret } = await enrolledUser();
  const app = await svc.client({ grantTypes: ['refresh_token'], scopes: ['api:read'], firstParty: true });
  const url = `${svc.config.issuer}/authorize-challenge`;
  const tokenUrl = `${svc.config.issuer}/token`;
  const auth = { authorization: basic(app.id, app.secret) };
  const verifier = randomBytes(32).toString('base64url');
  const first = await postForm(
    url,
    { response_type: 'code', username: user.email, password: user.password, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' },
    { ...auth, dpop: await proof(keys, url) },
  );
  assert.equal(first.status, 403, first.text);
  const form = { auth_session: first.body.auth_session as string, otp: await totp(secret, 1) };
  for (const headers of [auth, { ...auth, dpop: await proof(other, url) }]) {
    const refused = await postForm(url, form, headers);
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.body.error, 'invalid_session');
  }
  const ok = await postForm(url, form, { ...auth, dpop: await proof(keys, url) });
  assert.equal(ok.status, 200, ok.text);
  const code = ok.body.authorization_code as string;
  const exchange = { grant_type: 'authorization_code', code, code_verifier: verifier };
  // (oidc-provider's code exchange refuses a code bound to a DPoP key without a proof of that key, after consuming it.)
  const tokens = await postForm(tokenUrl, exchange, { ...auth, dpop: await proof(keys, tokenUrl) });
  assert.equal(tokens.status, 200, tokens.text);
  assert.equal(tokens.body.token_type, 'DPoP');
  assert.deepEqual(decodeJwt(tokens.body.access_token as string).cnf, { jkt: await calculateJwkThumbprint(await exportJWK(keys.publicKey)) });
});

// The proof is checked before the mfa_token and the code are looked at: a bad
// proof (or none from a dpop_bound_access_tokens client) spends neither, and
// the same mfa_token and code work once a good proof comes.
test('OTP and recovery-code grants: a bad or missing proof spends neither the mfa_token nor the code', async (t) => {
  if (!dpopOn) return t.skip('DPoP is not enabled');
  const keys = await generateKeyPair('ES256');
  const tokenUrl = `${svc.config.issuer}/token`;
  const { user, secret, recoveryCodes } = await enrolledUser();
  const otp = await totp(secret, 1);

  const mfa = (await passwordLogin(svc, gw, user.email, user.password)).body.mfa_token as string;
  const wrongHtu = await otpGrant(svc, gw, mfa, otp, { dpop: await proof(keys, 'https://elsewhere.example/token') });
  assert.equal(wrongHtu.status, 400, wrongHtu.text);
  assert.equal(wrongHtu.body.error, 'invalid_dpop_proof');
  const ok = await otpGrant(svc, gw, mfa, otp, { dpop: await proof(keys, tokenUrl) });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.token_type, 'DPoP');

  // A client registered dpop_bound_access_tokens sending no proof, with a (single-use) recovery code.
  const bound = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read'], dpopBound: true });
  const mfa2 = (await passwordLogin(svc, bound, user.email, user.password, { dpop: await proof(keys, tokenUrl) })).body.mfa_token as string;
  const none = await recoveryGrant(svc, bound, mfa2, recoveryCodes[0]!);
  assert.equal(none.status, 400, none.text);
  assert.equal(none.body.error, 'invalid_grant');
  const recovered = await recoveryGrant(svc, bound, mfa2, recoveryCodes[0]!, { dpop: await proof(keys, tokenUrl) });
  assert.equal(recovered.status, 200, recovered.text);
});

// Like the auth_session (draft-ietf-oauth-first-party-apps §9.6.1), an
// mfa_token obtained with a proof is bound to that key: another key, no
// proof or the password call's proof replayed do not redeem it.
test('an mfa_token obtained with a DPoP proof is bound to its key', async (t) => {
  if (!dpopOn) return t.skip('DPoP is not enabled');
  const keys = await generateKeyPair('ES256');
  const other = await generateKeyPair('ES256');
  const tokenUrl = `${svc.config.issuer}/token`;
  const { user, secret } = await enrolledUser();
  const otp = await totp(secret, 1);
  const first = await proof(keys, tokenUrl);
  const mfa = await passwordLogin(svc, gw, user.email, user.password, { dpop: first });
  assert.equal(mfa.body.error, 'mfa_required', mfa.text);
  const token = mfa.body.mfa_token as string;
  const refusals: [string, Record<string, string>][] = [
    ['no proof', {}],
    ['another key', { dpop: await proof(other, tokenUrl) }],
    ["the password call's proof again", { dpop: first }],
  ];
  for (const [what, headers] of refusals) {
    const refused = await otpGrant(svc, gw, token, otp, headers);
    assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_grant'], `${what}: ${refused.text}`);
  }
  const ok = await otpGrant(svc, gw, token, otp, { dpop: await proof(keys, tokenUrl) });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(decodeJwt(ok.body.access_token as string).cnf, { jkt: await calculateJwkThumbprint(await exportJWK(keys.publicKey)) });
});
