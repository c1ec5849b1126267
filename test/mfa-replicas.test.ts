// Two replicas sharing Postgres, Redis and the KEK (one issuer, as behind a
// load balancer): a second factor enrolled on one works on the other, and an
// mfa_token or auth_session issued by one is redeemed on the other. Nothing
// of a login in progress lives only in a process.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { call } from './support/admin.ts';
import { MFA_OTP, totp } from './support/mfa.ts';
import { basic, freshDatabase, postForm, startTestService, type TestService } from './support/service.ts';

let database: Awaited<ReturnType<typeof freshDatabase>>;
let a: TestService;
let b: TestService;

before(async () => {
  database = await freshDatabase();
  const shared = {
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    ISSUER: 'http://127.0.0.1:1',
  };
  a = await startTestService(shared, { databaseUrl: database.url });
  b = await startTestService(shared, { databaseUrl: database.url });
});
after(async () => {
  await a.stop();
  await b.stop();
  await database.drop();
});

const post = (svc: TestService, path: string, client: { id: string; secret: string }, form: Record<string, string>) =>
  postForm(`${svc.publicUrl}${path}`, form, { authorization: basic(client.id, client.secret) });

test('enrolled on A, mfa_token from A, OTP grant on B', async () => {
  const gw = await a.client({ grantTypes: ['password', 'refresh_token'] });
  const user = await a.user();
  const password = { grant_type: 'password', username: user.email, password: user.password };
  const login = await post(a, '/token', gw, password);
  assert.equal(login.status, 200, login.text);
  const token = login.body.access_token as string;
  const started = await call(a.publicUrl, 'POST', '/account/mfa/totp', { token });
  const secret = started.body.secret as string;
  assert.equal((await call(a.publicUrl, 'POST', '/account/mfa/totp/confirm', { token, body: { code: await totp(secret) } })).status, 200);

  const mfa = await post(a, '/token', gw, password);
  assert.equal(mfa.body.error, 'mfa_required');
  const ok = await post(b, '/token', gw, { grant_type: MFA_OTP, mfa_token: mfa.body.mfa_token as string, otp: await totp(secret, 1) });
  assert.equal(ok.status, 200, ok.text);
});

test('auth_session from A redeemed on B, code exchanged on A', async () => {
  const gw = await a.client({ grantTypes: ['password'] });
  const app = await a.client({ grantTypes: ['refresh_token'], firstParty: true });
  const user = await a.user();
  const login = await post(a, '/token', gw, { grant_type: 'password', username: user.email, password: user.password });
  const token = login.body.access_token as string;
  const secret = (await call(b.publicUrl, 'POST', '/account/mfa/totp', { token })).body.secret as string;
  assert.equal((await call(b.publicUrl, 'POST', '/account/mfa/totp/confirm', { token, body: { code: await totp(secret) } })).status, 200);

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const first = await post(a, '/authorize-challenge', app, {
    response_type: 'code',
    username: user.email,
    password: user.password,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  assert.equal(first.status, 403, first.text);
  const code = await post(b, '/authorize-challenge', app, { auth_session: first.body.auth_session as string, otp: await totp(secret, 1) });
  assert.equal(code.status, 200, code.text);
  const tokens = await post(a, '/token', app, { grant_type: 'authorization_code', code: code.body.authorization_code as string, code_verifier: verifier });
  assert.equal(tokens.status, 200, tokens.text);
});
