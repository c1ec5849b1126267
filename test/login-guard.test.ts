// One login guard for every door a password is tried at (SECURITY.md,
// "Online guessing"): /account/password is limited, throttled and shed like
// /token and shares its counters; limits are reserved before verifying, so
// parallel guesses verify exactly the allowed number; the owner logs in from a
// familiar source while strangers are throttled; an IPv6 /64 is one source;
// the audit table keeps no attempted username in clear.
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTestService, type TestService } from './support/service.ts';
import {
  changePassword,
  inParallel,
  passwordLogin,
  recordEvents,
  sample,
  scrape,
  trustedGateway,
  type TestClient,
} from './support/security.ts';

const from = (ip: string) => ({ 'x-end-user-ip': ip });
const attempts = async (svc: TestService, via: string, outcome: string) =>
  sample(await scrape(svc), 'identity_login_attempts_total', { via, outcome });

// What a wrong current password looks like, for byte-for-byte comparisons.
const shape = (r: { status: number; text: string; headers: Headers }) => ({
  status: r.status,
  text: r.text,
  headers: [...r.headers].filter(([h]) => !['date', 'content-length', 'keep-alive', 'connection', 'x-request-id', 'etag'].includes(h)),
});

describe('/account/password goes through the login guard', () => {
  let svc: TestService;
  let plain: TestClient;
  let events: Map<string, object[]>;
  before(async () => {
    // Defaults (5 free failures per user and source), but a long first block
    // so that "blocked" does not depend on how fast the machine is.
    svc = await startTestService({ LOGIN_BLOCK_BASE_SECONDS: '60', LOGIN_IP_MAX_FAILURES: '70' });
    plain = await svc.client();
    events = recordEvents(svc);
  });
  after(() => svc.stop());

  test('60 wrong current passwords: blocked like /token, the right one then gets the wrong-password answer, then 429', async () => {
    const u = await svc.user();
    const login = await passwordLogin(svc, plain, u.email, u.password); // from 127.0.0.1, like the calls below
    assert.equal(login.status, 200, login.text);
    const token = login.body.access_token as string;
    const [failedBefore, throttledBefore] = [await attempts(svc, 'password_change', 'failed'), await attempts(svc, 'password_change', 'throttled')];

    let wrong;
    for (let i = 0; i < 60; i++) {
      wrong = await changePassword(svc, token, `not-the-password-${i}`, 'a brand new passphrase 1');
      assert.equal(wrong.status, 403, wrong.text);
    }
    assert.equal(wrong!.body.error, 'forbidden');
    // 5 free failures, the 6th blocks the pair for 60 s: 6 verified, 54 throttled.
    assert.equal((await attempts(svc, 'password_change', 'failed')) - failedBefore, 6);
    assert.equal((await attempts(svc, 'password_change', 'throttled')) - throttledBefore, 54);

    const right = await changePassword(svc, token, u.password, 'a brand new passphrase 1');
    assert.deepEqual(shape(right), shape(wrong!), 'the right password, throttled, looks exactly like a wrong one');
    assert.ok(events.get('login.throttled')?.some((e) => (e as { via: string }).via === 'password_change'));

    // The same counters as /token: the pair is blocked there too.
    const viaToken = await passwordLogin(svc, plain, u.email, u.password);
    assert.equal(viaToken.status, 400);
    assert.equal(viaToken.body.error, 'invalid_grant');

    // ...and so is the source: past LOGIN_IP_MAX_FAILURES, 429 with Retry-After at both doors.
    let limited;
    for (let i = 0; i < 20 && limited?.status !== 429; i++) limited = await changePassword(svc, token, `more-${i}`, 'a brand new passphrase 1');
    assert.equal(limited!.status, 429, limited!.text);
    assert.equal(limited!.body.error, 'rate_limited');
    assert.ok(Number(limited!.headers.get('retry-after')) >= 1);
    assert.equal((await passwordLogin(svc, plain, u.email, u.password)).status, 429);
  });
});

test('/account/password is shed by the hash gate like /token: 503 + Retry-After', async () => {
  // One slow hash at a time (≈ 0.1-0.2 s here).
  const svc = await startTestService({ MAX_CONCURRENT_HASHES: '1', ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '3' });
  try {
    const events = recordEvents(svc);
    const gw = await trustedGateway(svc);
    const u = await svc.user();
    const token = (await passwordLogin(svc, gw, u.email, u.password, from('198.51.100.1'))).body.access_token as string;
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => changePassword(svc, token, `wrong-${i}`, 'a brand new passphrase 1')));
    const statuses = answers.map((a) => a.status);
    assert.ok(statuses.includes(503), statuses.join());
    assert.deepEqual([...new Set(statuses)].sort(), [403, 503]);
    for (const a of answers.filter((x) => x.status === 503)) {
      assert.equal(a.body.error, 'temporarily_unavailable');
      assert.equal(a.headers.get('retry-after'), '1');
    }
    assert.ok(events.get('login.shed')?.some((e) => (e as { via: string }).via === 'password_change'));
  } finally {
    await svc.stop();
  }
});

describe('limits are reserved before the password is verified', () => {
  let svc: TestService;
  let gw: TestClient;
  before(async () => {
    svc = await startTestService({
      LOGIN_FREE_FAILURES: '1',
      LOGIN_BLOCK_BASE_SECONDS: '60',
      LOGIN_USER_MAX_FAILURES: '3',
      MAX_CONCURRENT_HASHES: '8',
    });
    gw = await trustedGateway(svc);
  });
  after(() => svc.stop());

  test('4 parallel wrong guesses with 1 free failure: exactly 2 verified (the free one and the one that blocks)', async () => {
    for (let round = 0; round < 3; round++) {
      const u = await svc.user();
      const [failed, throttled] = [await attempts(svc, 'token', 'failed'), await attempts(svc, 'token', 'throttled')];
      const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => passwordLogin(svc, gw, u.email, `guess-${i}`, from('198.51.100.40'))));
      assert.deepEqual(answers.map((a) => a.status), [400, 400, 400, 400]);
      assert.equal((await attempts(svc, 'token', 'failed')) - failed, 2, `round ${round}: verified against the real hash`);
      assert.equal((await attempts(svc, 'token', 'throttled')) - throttled, 2, `round ${round}: throttled (a dummy hash)`);
    }
  });

  test('6 parallel wrong guesses from 6 sources with a per-username limit of 3: exactly 3 verified', async () => {
    const u = await svc.user();
    const [failed, throttled] = [await attempts(svc, 'token', 'failed'), await attempts(svc, 'token', 'throttled')];
    await Promise.all(Array.from({ length: 6 }, (_, i) => passwordLogin(svc, gw, u.email, `guess-${i}`, from(`198.51.100.${50 + i}`))));
    assert.equal((await attempts(svc, 'token', 'failed')) - failed, 3);
    assert.equal((await attempts(svc, 'token', 'throttled')) - throttled, 3);
  });
});

describe('familiar sources and strangers', () => {
  let svc: TestService;
  let gw: TestClient;
  before(async () => {
    svc = await startTestService(); // the default limits: 5 free per source, 50 per username from strangers
    gw = await trustedGateway(svc);
  });
  after(() => svc.stop());

  test('60 wrong passwords from 12 IPs: the owner still logs in from a familiar source; a stranger with the right password is throttled', async () => {
    const owner = await svc.user();
    const home = '198.51.100.10';
    assert.equal((await passwordLogin(svc, gw, owner.email, owner.password, from(home))).status, 200, 'a login makes the source familiar');

    let wrong;
    for (let ip = 1; ip <= 12; ip++) {
      for (let i = 0; i < 5; i++) wrong = await passwordLogin(svc, gw, owner.email, `guess-${ip}-${i}`, from(`203.0.113.${ip}`));
    }
    const stranger = await passwordLogin(svc, gw, owner.email, owner.password, from('203.0.113.200'));
    assert.equal(stranger.status, 400);
    assert.equal(stranger.text, wrong!.text, 'throttled looks like a wrong password');

    const home200 = await passwordLogin(svc, gw, owner.email, owner.password, from(home));
    assert.equal(home200.status, 200, home200.text);
    // Still one budget per source: the attackers' sources stay as blocked as before.
    assert.equal((await passwordLogin(svc, gw, owner.email, owner.password, from('203.0.113.1'))).status, 400);
  });
});

test('210 IPv6 addresses in one /64 are one source: 200 failures, then 429', async () => {
  const svc = await startTestService({ MAX_CONCURRENT_HASHES: '4' }); // LOGIN_IP_MAX_FAILURES 200, RATE_LIMIT_IPV6_PREFIX 64: defaults
  try {
    const gw = await trustedGateway(svc);
    const answers = await inParallel(210, 4, (i) =>
      passwordLogin(svc, gw, `nobody-${i}@example.com`, 'pw', from(`2001:db8:77:1:${((i * 7919) % 65536).toString(16)}::${(i + 1).toString(16)}`)),
    );
    const count = (status: number) => answers.filter((a) => a.status === status).length;
    assert.equal(count(400), 200);
    assert.equal(count(429), 10);
    assert.equal((await passwordLogin(svc, gw, 'nobody@example.com', 'pw', from('2001:db8:77:2::1'))).status, 400, 'the next /64 is another source');
  } finally {
    await svc.stop();
  }
});

test('the audit table keeps a keyed hash of an unknown username, never the name as typed', async () => {
  const svc = await startTestService();
  try {
    const gw = await trustedGateway(svc);
    const u = await svc.user();
    await passwordLogin(svc, gw, ' Nobody.Here@Example.COM ', 'pw-1', from('198.51.100.70'));
    const typedPassword = 'correct-Horse-battery-staple-42';
    await passwordLogin(svc, gw, typedPassword, 'pw-2', from('198.51.100.70')); // a password typed into the username field
    await passwordLogin(svc, gw, u.email.toUpperCase(), 'pw-3', from('198.51.100.70'));

    const rows = await svc.stores.db.auditEvent.findMany({ where: { type: 'login.failure' }, orderBy: { id: 'asc' } });
    assert.equal(rows.length, 3);
    const dump = JSON.stringify(rows.map((r) => r.details));
    assert.doesNotMatch(dump, /nobody\.here/i);
    assert.doesNotMatch(dump, /horse/i);
    // HMAC-SHA256 of the normalized name under HKDF-SHA256(KEK, info "identity audit usernames").
    const key = Buffer.from(hkdfSync('sha256', svc.config.keyEncryptionKey!, '', 'identity audit usernames', 32));
    const hmac = (name: string) => createHmac('sha256', key).update(name).digest('base64url');
    assert.deepEqual(rows[0]!.details, { username_hmac: hmac('nobody.here@example.com') });
    assert.deepEqual(rows[1]!.details, { username_hmac: hmac(typedPassword.toLowerCase()) });
    assert.deepEqual(rows[2]!.details, { username: u.email }, 'a name that matches an account is that account’s address');
    assert.equal(rows[2]!.subject, u.id);
  } finally {
    await svc.stop();
  }
});
