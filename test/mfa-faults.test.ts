// The second factor when Redis stalls (SIGSTOP on a redis-server of this
// test's own): the OTP grant and the challenge endpoint answer 503 with
// Retry-After within about two seconds, issue nothing, and neither the
// mfa_token / auth_session nor the user's code is spent by the failed
// request: after Redis is back, the same ticket and code work.
// The service reaches Redis through a proxy, so that a test can stall Redis
// at an exact command: when the login a second factor leads to is being
// recorded, the auth_session must still be there for the retry.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { enroll, otpGrant, totp } from './support/mfa.ts';
import { passwordLogin, trustedGateway, type TestClient } from './support/security.ts';
import { basic, freePort, OwnRedis, postForm, startTestService, type TestService } from './support/service.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

let redis: OwnRedis;
let proxy: TcpProxy;
let svc: TestService;
let gw: TestClient;

before(async () => {
  redis = new OwnRedis(await freePort());
  await redis.start();
  proxy = new TcpProxy(await freePort(), { host: '127.0.0.1', port: redis.port });
  await proxy.up();
  svc = await startTestService({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
  gw = await trustedGateway(svc);
});
after(async () => {
  redis.resume();
  await svc.stop();
  await proxy.down();
  await redis.stop();
});

async function whileStalled<T>(work: () => Promise<T>): Promise<T> {
  redis.pause();
  try {
    return await work();
  } finally {
    redis.resume();
  }
}

function assertFastUnavailable(r: Awaited<ReturnType<typeof postForm>>) {
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'temporarily_unavailable');
  assert.ok(r.headers.get('retry-after'));
  assert.equal(r.body.access_token, undefined);
  assert.equal(r.body.authorization_code, undefined);
  assert.ok(r.ms < 2500, `took ${r.ms} ms`);
}

test('OTP grant with Redis stalled: 503 fast, nothing issued; afterwards the same mfa_token and code work', async () => {
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password);
  const { secret } = await enroll(svc, login.body.access_token as string);
  const mfa = await passwordLogin(svc, gw, user.email, user.password);
  const token = mfa.body.mfa_token as string;
  const code = await totp(secret, 1);

  const stalled = await whileStalled(() => otpGrant(svc, gw, token, code));
  assertFastUnavailable(stalled);

  const ok = await otpGrant(svc, gw, token, code);
  assert.equal(ok.status, 200, ok.text);
});

/**
 * A first-party client, a user with TOTP confirmed with the code of
 * `enrolledAt` (a step), and the first challenge request (PKCE):
 * its auth_session, the follow-up request and the code exchange.
 */
async function challengeStarted(enrolledAt: number) {
  const app = await svc.client({ grantTypes: ['refresh_token'], scopes: ['api:read'], firstParty: true });
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password);
  const { secret } = await enroll(svc, login.body.access_token as string, enrolledAt);
  const verifier = randomBytes(32).toString('base64url');
  const auth = { authorization: basic(app.id, app.secret) };
  const url = `${svc.config.issuer}/authorize-challenge`;
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const first = await postForm(
    url,
    { response_type: 'code', username: user.email, password: user.password, code_challenge: challenge, code_challenge_method: 'S256' },
    auth,
  );
  assert.equal(first.status, 403, first.text);
  const authSession = first.body.auth_session as string;
  return {
    secret,
    authSession,
    follow: (otp: string) => postForm(url, { auth_session: authSession, otp }, auth),
    exchange: (code: string) => postForm(`${svc.config.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier }, auth),
  };
}

test('challenge endpoint with Redis stalled: 503 fast; afterwards the same auth_session and code work', async () => {
  const flow = await challengeStarted(0);
  const otp = await totp(flow.secret, 1);

  const stalled = await whileStalled(() => flow.follow(otp));
  assertFastUnavailable(stalled);

  const ok = await flow.follow(otp);
  assert.equal(ok.status, 200, ok.text);
  const tokens = await flow.exchange(ok.body.authorization_code as string);
  assert.equal(tokens.status, 200, tokens.text);
});

/** Runs `work` with Redis stopped (SIGSTOP) at the first command the service sends that `at` matches, before Redis sees it. */
async function stalledAt<T>(at: (command: string) => boolean, work: () => Promise<T>): Promise<T> {
  let stalled = false;
  proxy.tap = (chunk) => {
    if (!stalled && at(chunk.toString('latin1'))) {
      stalled = true;
      redis.pause();
    }
  };
  try {
    return await work();
  } finally {
    proxy.tap = undefined;
    redis.resume();
    assert.ok(stalled, 'the stall point was reached');
  }
}

/** A user with TOTP confirmed with the previous step's code: this step's code and the next are left for the test. */
async function enrolledUser() {
  const user = await svc.user();
  const login = await passwordLogin(svc, gw, user.email, user.password);
  return { user, ...(await enroll(svc, login.body.access_token as string, -1)) };
}

// Past the second factor, Redis stops either while the login (its Grant) is
// being saved or just as the ticket is spent (the DEL sits in the stopped
// Redis until after the 503, and must not run then).
const ticketKey = (value: string) => `mfa:${createHash('sha256').update(value).digest('base64url')}\r\n`;
const STALL_POINTS = {
  'saving the login': () => (command: string) => command.includes('oidc:grant:{'),
  // The ticket's key is named twice: read (find), then spent.
  'spending the ticket': (ticket: string) => {
    let seen = 0;
    return (command: string) => command.includes(ticketKey(ticket)) && ++seen === 2;
  },
};

for (const [point, at] of Object.entries(STALL_POINTS)) {
  test(`challenge endpoint, Redis stalled ${point}: 503, and the same auth_session still works`, async () => {
    // Confirmed with the previous step's code: this step's code and the next are left.
    const flow = await challengeStarted(-1);
    const otp = await totp(flow.secret);
    assertFastUnavailable(await stalledAt(at(flow.authSession), () => flow.follow(otp)));

    // Nothing lost for the owner: the same auth_session, with the next code (the first was spent), gets one code.
    const retry = await flow.follow(await totp(flow.secret, 1));
    assert.equal(retry.status, 200, retry.text);
    const tokens = await flow.exchange(retry.body.authorization_code as string);
    assert.equal(tokens.status, 200, tokens.text);
    const again = await flow.follow(await totp(flow.secret, 1));
    assert.deepEqual([again.status, again.body.error], [400, 'invalid_session'], again.text);
  });

  test(`OTP grant, Redis stalled ${point}: 503, and the same mfa_token still works`, async () => {
    const { user, secret } = await enrolledUser();
    const token = (await passwordLogin(svc, gw, user.email, user.password)).body.mfa_token as string;
    const otp = await totp(secret);
    assertFastUnavailable(await stalledAt(at(token), () => otpGrant(svc, gw, token, otp)));

    const retry = await otpGrant(svc, gw, token, await totp(secret, 1));
    assert.equal(retry.status, 200, retry.text);
    const again = await otpGrant(svc, gw, token, await totp(secret, 1));
    assert.deepEqual([again.status, again.body.error], [400, 'invalid_grant'], again.text);
  });
}
