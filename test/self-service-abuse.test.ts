// The self-service doors, tried as an attacker would (issue 12, item 4):
// /password/forgot and /register are rate limited per IP (IPv6 per /64) and
// per email address, tell nothing about which addresses have accounts (by
// answer or by time), keep at most one live reset link per user, purge
// expired links, and fail closed when Redis stalls. Real Postgres, Redis and
// an in-test SMTP server; no mocks.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminToken, call, gatewayFor } from './support/admin.ts';
import { probabilityOfSuperiority } from './support/security.ts';
import { freePort, OwnRedis, startTestService, type TestService } from './support/service.ts';
import { TestMailbox, tokenIn } from './support/smtp.ts';

const mailbox = new TestMailbox();
let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;

// TRUST_PROXY_HOPS=1: each test picks its client IP with X-Forwarded-For, so budgets do not mix.
const post = (path: string, body: unknown, ip: string, bearer?: string) =>
  call(svc.publicUrl, 'POST', path, { body, token: bearer, headers: { 'x-forwarded-for': ip } });
const tokensOf = (userId: string) => svc.stores.db.passwordResetToken.findMany({ where: { userId } });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

before(async () => {
  await mailbox.start();
  svc = await startTestService({ SMTP_URL: mailbox.url, REGISTRATION_MODE: 'open', TRUST_PROXY_HOPS: '1' });
  gw = await gatewayFor(svc);
});
after(async () => {
  await svc.stop();
  await mailbox.close();
});

describe('/password/forgot', () => {
  test('50 requests in flight for one address from one IP: 3 accepted, the rest 429; one live link', async () => {
    const u = await svc.user();
    const ip = '198.51.100.1';
    const answers = await Promise.all(Array.from({ length: 50 }, () => post('/password/forgot', { email: u.email }, ip)));
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 202).length, svc.config.selfService.emailMax, statuses.join());
    const limited = answers.filter((a) => a.status === 429);
    assert.equal(limited.length, 50 - svc.config.selfService.emailMax);
    for (const a of limited) {
      assert.equal(a.body.error, 'rate_limited');
      assert.ok(Number(a.headers.get('retry-after')) >= 1, 'Retry-After');
    }
    // The address's budget, not only the IP's: another IP is refused for it too.
    assert.equal((await post('/password/forgot', { email: u.email }, '198.51.100.2')).status, 429);

    const mails = await mailbox.mailFor(u.email, 3).then(() => mailbox.to(u.email));
    await svc.services.background.settle();
    assert.equal(mails.length, 3);
    assert.equal((await tokensOf(u.id)).length, 1, 'one live link');
    // Each request replaced the previous link: exactly one of the three mailed links works.
    const results = [];
    for (const mail of mails) results.push((await post('/password/reset', { token: tokenIn(mail), password: 'the one that still works' }, ip)).status);
    assert.deepEqual(results.sort(), [204, 400, 400]);
  });

  test('per IP: the 31st address from one IP is refused; IPv6 addresses count by their /64', async () => {
    const max = svc.config.selfService.ipMax;
    for (const [label, ipFor, sibling, stranger] of [
      ['IPv4', () => '203.0.113.7', '203.0.113.7', '203.0.113.8'],
      ['IPv6', (i: number) => `2001:db8:77:1::${(i + 1).toString(16)}`, '2001:db8:77:1:ffff:ffff:ffff:fffe', '2001:db8:77:2::1'],
    ] as const) {
      for (let i = 0; i < max; i++) {
        const res = await post('/password/forgot', { email: `${label}-${i}@example.com` }, ipFor(i));
        assert.equal(res.status, 202, `${label} #${i}`);
      }
      const refused = await post('/password/forgot', { email: `${label}-last@example.com` }, sibling);
      assert.equal(refused.status, 429, `${label}: the same source`);
      assert.equal(refused.body.error, 'rate_limited');
      assert.ok(Number(refused.headers.get('retry-after')) > 60);
      assert.equal((await post('/password/forgot', { email: `${label}-other@example.com` }, stranger)).status, 202, `${label}: another source`);
    }
  });

  test('a new request replaces the old link; expired links are purged', async () => {
    const u = await svc.user();
    const other = await svc.user();
    await post('/password/forgot', { email: u.email }, '198.51.100.10');
    const first = tokenIn(await mailbox.mailFor(u.email, 1));
    await post('/password/forgot', { email: u.email }, '198.51.100.10');
    const second = tokenIn(await mailbox.mailFor(u.email, 2));
    await svc.services.background.settle();
    assert.equal((await tokensOf(u.id)).length, 1);
    const stale = await post('/password/reset', { token: first, password: 'replaced link passphrase' }, '198.51.100.10');
    assert.equal(stale.status, 400);
    assert.equal(stale.body.field, 'token');
    assert.equal((await post('/password/reset', { token: second, password: 'replaced link passphrase' }, '198.51.100.10')).status, 204);

    await svc.stores.db.passwordResetToken.create({ data: { tokenHash: 'expired-row', userId: other.id, expiresAt: new Date(Date.now() - 1000) } });
    // Any request purges, also one for an address without an account (and before its answer).
    assert.equal((await post('/password/forgot', { email: 'nobody.here@example.com' }, '198.51.100.11')).status, 202);
    assert.equal(await svc.stores.db.passwordResetToken.count({ where: { expiresAt: { lte: new Date() } } }), 0);
  });

  test('a link dies when the password changes: by the user, and by an admin-forced reset', async () => {
    const ip = '198.51.100.20';
    const u = await svc.user();
    await post('/password/forgot', { email: u.email }, ip);
    const link = tokenIn(await mailbox.mailFor(u.email));
    const session = await gw.login(u.email, u.password);
    const changed = await post('/account/password', { current_password: u.password, new_password: 'changed by the owner' }, ip, session.access_token);
    assert.equal(changed.status, 204);
    assert.equal((await tokensOf(u.id)).length, 0);
    const refused = await post('/password/reset', { token: link, password: 'an attacker would set this' }, ip);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.field, 'token');
    assert.ok((await gw.login(u.email, 'changed by the owner')).access_token);

    const v = await svc.user();
    const admin = (await adminToken(svc)).token;
    await post('/password/forgot', { email: v.email }, ip);
    const before = tokenIn(await mailbox.mailFor(v.email, 1));
    assert.equal((await call(svc.adminUrl, 'POST', `/admin/users/${v.id}/reset-password`, { token: admin })).status, 200);
    const forced = tokenIn(await mailbox.mailFor(v.email, 2));
    assert.equal((await post('/password/reset', { token: before, password: 'set with the old link' }, ip)).status, 400);
    assert.equal((await post('/password/reset', { token: forced, password: 'set with the forced link' }, ip)).status, 204);
  });
});

describe('/register', () => {
  test('a new and a taken address get the same answer; the owner is mailed, nothing changes', async () => {
    const owner = await svc.user();
    const ip = '198.51.100.30';
    const fresh = await post('/register', { email: 'brand.new@example.com', password: 'a new account passphrase' }, ip);
    const taken = await post('/register', { email: owner.email.toUpperCase(), password: 'an intruder passphrase' }, ip);
    const shape = (r: typeof fresh) => ({
      status: r.status,
      body: r.body,
      headers: [...r.headers].filter(([h]) => !['date', 'x-request-id', 'keep-alive', 'connection'].includes(h)),
    });
    assert.deepEqual(shape(taken), shape(fresh));
    assert.equal(fresh.status, 202);
    assert.deepEqual(fresh.body, { status: 'accepted' });
    const doc = (await (await fetch(`${svc.adminUrl}/admin/openapi.json`)).json()) as { paths: Record<string, any> };
    assert.deepEqual(Object.keys(doc.paths['/register'].post.responses).filter((c) => c < '500'), ['202', '400', '403', '413', '415', '429']);
    assert.deepEqual(Object.keys(doc.paths['/password/forgot'].post.responses).filter((c) => c < '500'), ['202', '400', '413', '415', '429']);

    assert.match((await mailbox.mailFor('brand.new@example.com')).text, /Subject: Your account is ready/);
    const notice = await mailbox.mailFor(owner.email);
    assert.match(notice.text, /Subject: Someone tried to register with your address/);
    assert.match(notice.text, new RegExp(`${svc.config.mail.resetUrl}\\s`), 'the way to reset a forgotten password');
    // The existing account is untouched: its password still works, the intruder's does not.
    assert.ok((await gw.login(owner.email, owner.password)).access_token);
    await assert.rejects(gw.login(owner.email, 'an intruder passphrase'), (e: any) => e.error === 'invalid_grant');
    assert.ok((await gw.login('brand.new@example.com', 'a new account passphrase')).access_token);
    const refused = await svc.stores.db.auditEvent.findMany({ where: { type: 'user.registration_refused' } });
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.reason, 'email_taken');
    assert.equal(JSON.stringify({ ...refused[0], id: null }).includes(owner.email), false, 'no address in the audit row');
  });

  test('limited per address (across IPs) and per IP (across addresses)', async () => {
    const emailMax = svc.config.selfService.emailMax;
    for (let i = 0; i < emailMax; i++) {
      assert.equal((await post('/register', { email: 'popular@example.com', password: `passphrase number ${i}` }, `192.0.2.${i + 1}`)).status, 202);
    }
    const perEmail = await post('/register', { email: 'popular@example.com', password: 'one more passphrase' }, '192.0.2.100');
    assert.equal(perEmail.status, 429);
    assert.equal(perEmail.body.error, 'rate_limited');
    assert.ok(perEmail.headers.get('retry-after'));

    const ip = '2001:db8:88:1::1';
    for (let i = 0; i < svc.config.selfService.ipMax; i++) {
      assert.equal((await post('/register', { email: `bulk-${i}@example.com`, password: 'a bulk passphrase' }, ip)).status, 202, `#${i}`);
    }
    const perIp = await post('/register', { email: 'bulk-last@example.com', password: 'a bulk passphrase' }, '2001:db8:88:1::2');
    assert.equal(perIp.status, 429);
    assert.equal(await svc.stores.db.user.count({ where: { email: { startsWith: 'bulk-' } } }), svc.config.selfService.ipMax);
  });
});

test('/password/forgot takes the same time for an address with and without an account (200 interleaved pairs), and so does the next request', async (t) => {
  const timing = new TestMailbox();
  await timing.start();
  const s = await startTestService({ SMTP_URL: timing.url, SELF_SERVICE_IP_LIMIT: '100000', SELF_SERVICE_EMAIL_LIMIT: '100000' });
  try {
    const users = await Promise.all(Array.from({ length: 8 }, () => s.user()));
    const ghosts = users.map((_, i) => `ghost-${i}@example.com`);
    const forgot = async (email: string) => {
      const started = performance.now();
      const res = await call(s.publicUrl, 'POST', '/password/forgot', { body: { email } });
      const ms = performance.now() - started;
      assert.equal(res.status, 202);
      return ms;
    };
    for (let i = 0; i < 16; i++) await forgot(i % 2 ? users[i % 8]!.email : ghosts[i % 8]!); // warm-up
    const existing: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 200; i++) {
      // Interleaved, the order alternating, so load spikes hit both sides alike.
      const pair = [async () => existing.push(await forgot(users[i % 8]!.email)), async () => unknown.push(await forgot(ghosts[i % 8]!))];
      if (i % 2) pair.reverse();
      for (const step of pair) await step();
    }
    const p = probabilityOfSuperiority(existing, unknown);
    const [me, mu] = [median(existing), median(unknown)];
    t.diagnostic(`P(existing slower) = ${p.toFixed(3)}; medians ${me.toFixed(2)} / ${mu.toFixed(2)} ms`);
    assert.ok(p >= 0.4 && p <= 0.6, `P(existing slower than unknown) = ${p.toFixed(3)}; medians ${me.toFixed(2)} vs ${mu.toFixed(2)} ms`);
    // The size of a difference: the median of the paired differences (each
    // pair ran back to back, so a load swing on a shared machine moves both
    // sides; the medians of the two sides alone drift apart under load).
    const paired = median(existing.map((e, i) => e - unknown[i]!));
    assert.ok(Math.abs(paired) <= 1, `median paired difference ${paired.toFixed(2)} ms (medians ${me.toFixed(2)} vs ${mu.toFixed(2)} ms)`);

    // Nor does the request that follows: the account's work after the answer (a token, a mail) must not
    // land on the same client's next request, where it would tell the previous address apart.
    const afterExisting: number[] = [];
    const afterUnknown: number[] = [];
    for (let i = 0; i < 200; i++) {
      const existingFirst = i % 2 === 0;
      await forgot(existingFirst ? users[i % 8]!.email : ghosts[i % 8]!);
      (existingFirst ? afterExisting : afterUnknown).push(await forgot(`probe-${i % 8}@example.com`));
    }
    const q = probabilityOfSuperiority(afterExisting, afterUnknown);
    t.diagnostic(`P(request after an existing address slower) = ${q.toFixed(3)}; medians ${median(afterExisting).toFixed(2)} / ${median(afterUnknown).toFixed(2)} ms`);
    assert.ok(q >= 0.4 && q <= 0.6, `P(next request slower after an existing address) = ${q.toFixed(3)}`);

    // The work was done: every account got its links, no ghost got anything, one live link per account.
    await s.services.background.settle();
    for (const u of users) assert.ok(timing.to(u.email).length >= 25, u.email);
    assert.equal(timing.inbox.filter((m) => m.to.some((a) => a.startsWith('ghost-'))).length, 0);
    const rows = await s.stores.db.passwordResetToken.groupBy({ by: ['userId'], _count: { _all: true } });
    assert.deepEqual(rows.map((r) => r._count._all), users.map(() => 1));
  } finally {
    await s.stop();
    await timing.close();
  }
});

test('Redis stalled: /password/forgot and /register fail closed with 503, then recover', async () => {
  const redis = new OwnRedis(await freePort());
  await redis.start();
  const s = await startTestService({ REDIS_URL: redis.url, REGISTRATION_MODE: 'open' });
  try {
    const u = await s.user();
    assert.equal((await call(s.publicUrl, 'POST', '/password/forgot', { body: { email: u.email } })).status, 202);
    redis.pause();
    try {
      for (const [path, body] of [
        ['/password/forgot', { email: u.email }],
        ['/register', { email: 'stalled@example.com', password: 'registered while stalled' }],
      ] as const) {
        const started = performance.now();
        const res = await call(s.publicUrl, 'POST', path, { body });
        assert.equal(res.status, 503, `${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, 'temporarily_unavailable');
        assert.ok(res.headers.get('retry-after'));
        t_assertFast(path, performance.now() - started);
      }
      assert.equal(await s.stores.db.user.count({ where: { email: 'stalled@example.com' } }), 0, 'nothing done without the limit');
    } finally {
      redis.resume();
    }
    const deadline = Date.now() + 10_000;
    let again = await call(s.publicUrl, 'POST', '/password/forgot', { body: { email: u.email } });
    while (again.status !== 202 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      again = await call(s.publicUrl, 'POST', '/password/forgot', { body: { email: u.email } });
    }
    assert.equal(again.status, 202);
  } finally {
    await s.stop();
    await redis.stop();
  }
});

// Fail closed within the Redis command timeout (1 s) plus slack, never queued for ever.
function t_assertFast(path: string, ms: number) {
  assert.ok(ms < 5000, `${path} took ${ms.toFixed(0)} ms`);
}
