// No user enumeration: unknown user, wrong password, disabled user and
// throttled user get byte-identical answers, and unknown-user and
// wrong-password response times are statistically indistinguishable.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { enroll } from './support/mfa.ts';
import { startTestService, type TestService } from './support/service.ts';
import { passwordLogin, probabilityOfSuperiority, trustedGateway, type TestClient } from './support/security.ts';

let svc: TestService;
let gw: TestClient;
before(async () => {
  svc = await startTestService({
    LOGIN_FREE_FAILURES: '3',
    LOGIN_BLOCK_BASE_SECONDS: '600',
    LOGIN_USER_MAX_FAILURES: '100000',
    LOGIN_IP_MAX_FAILURES: '1000000',
  });
  gw = await trustedGateway(svc);
});
after(() => svc.stop());

test('unknown, wrong password, disabled and throttled: same status, same bytes, same headers', async () => {
  const known = await svc.user();
  const disabled = await svc.user();
  await svc.stores.db.user.update({ where: { id: disabled.id }, data: { status: 'disabled' } });
  const throttled = await svc.user();
  const ip = { 'x-end-user-ip': '198.51.100.20' };
  for (let i = 0; i < 4; i++) await passwordLogin(svc, gw, throttled.email, `nope-${i}`, ip);

  const answers = {
    unknown: await passwordLogin(svc, gw, 'nobody-at-all@example.com', 'whatever'),
    wrong: await passwordLogin(svc, gw, known.email, 'not the password'),
    disabled: await passwordLogin(svc, gw, disabled.email, disabled.password),
    throttled: await passwordLogin(svc, gw, throttled.email, throttled.password, ip),
    malformedUsername: await passwordLogin(svc, gw, "' OR 1=1 --", 'whatever'),
  };
  const shape = (r: (typeof answers)['wrong']) => ({
    status: r.status,
    text: r.text,
    // x-request-id is unique per request by design (it is a correlation id, not account data).
    headers: [...r.headers].filter(([h]) => !['date', 'content-length', 'keep-alive', 'connection', 'x-request-id'].includes(h)),
  });
  for (const [name, r] of Object.entries(answers)) {
    assert.deepEqual(shape(r), shape(answers.wrong), `${name} differs from a wrong password`);
  }
  assert.equal(answers.wrong.status, 400);
  assert.equal(answers.wrong.body.error, 'invalid_grant');
});

/**
 * Interleaved samples of unknown-user and wrong-password logins against
 * `users`; asserts the two time distributions overlap.
 */
async function assertIndistinguishable(t: { diagnostic(message: string): void }, users: { email: string }[], subnet: number) {
  // Warm-up: the dummy hash is created lazily on the first unknown user.
  await passwordLogin(svc, gw, 'warmup@example.com', 'x');
  await passwordLogin(svc, gw, users[0]!.email, 'x');

  const unknown: number[] = [];
  const wrong: number[] = [];
  const SAMPLES = 40;
  for (let i = 0; i < SAMPLES; i++) {
    const ip = { 'x-end-user-ip': `10.${subnet}.${i}.1` }; // fresh pairs: throttling stays out of the picture
    // Interleaved, with the order alternating, so load spikes hit both sides alike.
    const pair = [
      async () => unknown.push((await passwordLogin(svc, gw, `ghost-${subnet}-${i}@example.com`, `pw-${i}`, ip)).ms),
      async () => wrong.push((await passwordLogin(svc, gw, users[i % users.length]!.email, `pw-${i}`, ip)).ms),
    ];
    if (i % 2) pair.reverse();
    for (const step of pair) await step();
  }
  // 0.5 = same distribution. Without the dummy hash an unknown user answers
  // in a few ms against ~30+ ms and this is ≈ 0; the band is wide enough for
  // a loaded two-core machine (40 samples: one standard error ≈ 0.065).
  const p = probabilityOfSuperiority(unknown, wrong);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  t.diagnostic(`P(unknown slower) = ${p.toFixed(3)}, medians ${median(unknown).toFixed(1)} / ${median(wrong).toFixed(1)} ms`);
  assert.ok(p > 0.2 && p < 0.8, `P(unknown slower than wrong) = ${p.toFixed(3)}; medians ${median(unknown).toFixed(1)} vs ${median(wrong).toFixed(1)} ms`);
}

test('unknown-user and wrong-password response times are indistinguishable (interleaved samples)', async (t) => {
  const users = await Promise.all([svc.user(), svc.user(), svc.user(), svc.user()]);
  await assertIndistinguishable(t, users, 20);
});

// A second factor changes nothing before the password is right: a wrong
// password of an enrolled user is the same bytes and the same time as an
// unknown user (mfa_required only ever follows a correct password).
test('enrolled users: a wrong password is the same bytes and time as an unknown user', async (t) => {
  const users = await Promise.all([svc.user(), svc.user(), svc.user(), svc.user()]);
  for (const [i, user] of users.entries()) {
    const login = await passwordLogin(svc, gw, user.email, user.password, { 'x-end-user-ip': `10.30.${i}.9` });
    await enroll(svc, login.body.access_token as string);
  }
  const correct = await passwordLogin(svc, gw, users[0]!.email, users[0]!.password, { 'x-end-user-ip': '10.30.0.9' });
  assert.equal(correct.body.error, 'mfa_required', 'enrolled');
  const wrong = await passwordLogin(svc, gw, users[1]!.email, 'not the password', { 'x-end-user-ip': '10.30.1.8' });
  const unknown = await passwordLogin(svc, gw, 'nobody-enrolled@example.com', 'not the password', { 'x-end-user-ip': '10.30.1.7' });
  assert.equal(wrong.status, 400);
  assert.equal(wrong.text, unknown.text);
  await assertIndistinguishable(t, users, 21);
});
