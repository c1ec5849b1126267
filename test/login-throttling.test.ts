// Brute force and credential stuffing: progressive per username+IP
// throttling, per-username across IPs, per-IP 429, the spraying signal, and
// which client IP counts (trusted gateways, X-Forwarded-For hops). Windows
// are seconds long through configuration, so the sequences run in-process.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestService, type TestService } from './support/service.ts';
import { passwordLogin, recordEvents, sleep, trustedGateway, type TestClient } from './support/security.ts';

describe('account throttling', () => {
  let svc: TestService;
  let gw: TestClient;
  let events: Map<string, object[]>;
  before(async () => {
    svc = await startTestService({
      LOGIN_FREE_FAILURES: '2',
      LOGIN_BLOCK_BASE_SECONDS: '1',
      LOGIN_BLOCK_MAX_SECONDS: '4',
      LOGIN_USER_MAX_FAILURES: '6',
    });
    gw = await trustedGateway(svc);
    events = recordEvents(svc);
  });
  after(() => svc.stop());

  const from = (ip: string) => ({ 'x-end-user-ip': ip });

  test('consecutive failures slow down progressively; the correct password gets the same invalid_grant meanwhile', async () => {
    const u = await svc.user();
    const ip = '198.51.100.1';
    const wrong = await passwordLogin(svc, gw, u.email, 'wrong-1', from(ip));
    assert.equal(wrong.status, 400);
    await passwordLogin(svc, gw, u.email, 'wrong-2', from(ip));
    await passwordLogin(svc, gw, u.email, 'wrong-3', from(ip)); // third failure: blocked 1 s

    const throttled = await passwordLogin(svc, gw, u.email, u.password, from(ip));
    assert.equal(throttled.status, 400);
    assert.equal(throttled.text, wrong.text, 'a throttled correct password looks exactly like a wrong one');
    assert.equal(throttled.headers.get('retry-after'), null);
    assert.ok(events.get('login.throttled')?.length);

    // The same account from another address is not affected by this pair's block.
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, from('198.51.100.99'))).status, 200);

    await sleep(1100);
    await passwordLogin(svc, gw, u.email, 'wrong-4', from(ip)); // fourth failure: blocked 2 s
    await sleep(1100);
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, from(ip))).status, 400, 'the second block is longer');
    await sleep(1100);
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, from(ip))).status, 200, 'throttling is temporary');

    // The success reset the counter: two failures are free again.
    await passwordLogin(svc, gw, u.email, 'wrong-5', from(ip));
    await passwordLogin(svc, gw, u.email, 'wrong-6', from(ip));
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, from(ip))).status, 200);
  });

  test('failures of one username from many IPs throttle that username everywhere, not others', async () => {
    const victim = await svc.user();
    const bystander = await svc.user();
    let wrong;
    for (let i = 1; i <= 6; i++) wrong = await passwordLogin(svc, gw, victim.email, `guess-${i}`, from(`203.0.113.${i}`));
    const fresh = await passwordLogin(svc, gw, victim.email, victim.password, from('203.0.113.200'));
    assert.equal(fresh.status, 400);
    assert.equal(fresh.text, wrong!.text);
    assert.equal((await passwordLogin(svc, gw, bystander.email, bystander.password, from('203.0.113.200'))).status, 200);
  });

  test('usernames are throttled after normalization (case, spaces)', async () => {
    const u = await svc.user();
    const ip = '198.51.100.7';
    await passwordLogin(svc, gw, u.email.toUpperCase(), 'x1', from(ip));
    await passwordLogin(svc, gw, ` ${u.email} `, 'x2', from(ip));
    await passwordLogin(svc, gw, u.email, 'x3', from(ip));
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, from(ip))).status, 400);
  });
});

describe('per-IP limit, spraying signal and client IP', () => {
  let svc: TestService;
  let gw: TestClient;
  let plain: TestClient;
  let events: Map<string, object[]>;
  before(async () => {
    svc = await startTestService({ LOGIN_IP_MAX_FAILURES: '3', LOGIN_SPRAY_ALERT_PER_MINUTE: '8', TRUST_PROXY_HOPS: '1' });
    gw = await trustedGateway(svc);
    plain = await svc.client();
    events = recordEvents(svc);
  });
  after(() => svc.stop());

  test('one IP trying many accounts gets 429 with Retry-After; other IPs are unaffected', async () => {
    const ip = { 'x-end-user-ip': '192.0.2.10' };
    for (let i = 0; i < 3; i++) assert.equal((await passwordLogin(svc, gw, `nobody${i}@example.com`, 'pw', ip)).status, 400);
    const limited = await passwordLogin(svc, gw, 'another@example.com', 'pw', ip);
    assert.equal(limited.status, 429, limited.text);
    assert.equal(limited.body.error, 'temporarily_unavailable');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal(limited.headers.get('cache-control'), 'no-store');
    const u = await svc.user();
    assert.equal((await passwordLogin(svc, gw, u.email, u.password, { 'x-end-user-ip': '192.0.2.11' })).status, 200);
    assert.equal(events.get('login.rate_limited')?.length, 1);
  });

  test('X-End-User-IP is ignored for a client that is not a trusted gateway, and X-Forwarded-For counts one hop only', async () => {
    const u = await svc.user();
    // Spoofed left-most entries change with every request; the hop the proxy added stays.
    const spoof = (i: number) => ({ 'x-end-user-ip': `192.0.2.${100 + i}`, 'x-forwarded-for': `10.9.9.${i}, 192.0.2.50` });
    for (let i = 0; i < 3; i++) assert.equal((await passwordLogin(svc, plain, `ghost${i}@example.com`, 'pw', spoof(i))).status, 400);
    assert.equal((await passwordLogin(svc, plain, u.email, u.password, spoof(9))).status, 429);
    assert.ok(events.get('gateway.forwarded_ip_ignored')?.length);
    // A different last hop is a different client IP.
    assert.equal((await passwordLogin(svc, plain, u.email, u.password, { 'x-forwarded-for': '10.9.9.9, 192.0.2.51' })).status, 200);
  });

  test('a trusted gateway must send a valid IP', async () => {
    const res = await passwordLogin(svc, gw, 'a@example.com', 'pw', { 'x-end-user-ip': 'not-an-ip' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'invalid_request');
  });

  test('a burst of failures across accounts raises the spraying signal once', async () => {
    for (let i = 0; i < 10; i++) await passwordLogin(svc, gw, `spray${i}@example.com`, 'Summer2026!', { 'x-end-user-ip': `198.18.0.${i}` });
    assert.equal(events.get('login.spraying_suspected')?.length, 1);
    assert.ok(svc.logs.lines.some((l) => l.includes('"outcome":"login.spraying_suspected"')));
  });
});

test('without TRUST_PROXY_HOPS, X-Forwarded-For is ignored', async () => {
  const svc = await startTestService({ LOGIN_IP_MAX_FAILURES: '2' });
  try {
    const c = await svc.client();
    for (let i = 0; i < 2; i++) await passwordLogin(svc, c, `x${i}@example.com`, 'pw', { 'x-forwarded-for': `192.0.2.${i}` });
    assert.equal((await passwordLogin(svc, c, 'y@example.com', 'pw', { 'x-forwarded-for': '192.0.2.77' })).status, 429);
  } finally {
    await svc.stop();
  }
});
