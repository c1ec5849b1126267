// What an unauthenticated or misbehaving caller can make the service write is
// bounded: metric labels take known values only; refusals it can trigger at
// request rate are logged at most once per 10 s (the metrics count them all);
// a client hanging up is not an error; the interactive endpoints the service
// does not use are not there (404, absent from discovery, no cookie, no key).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import { inParallel, passwordLogin, recordEvents, scrape, series, sleep, type TestClient } from './support/security.ts';

let svc: TestService;
let c: TestClient;
before(async () => {
  svc = await startTestService({ LOG_LEVEL: 'debug', LOGIN_IP_MAX_FAILURES: '5' });
  c = await svc.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'] });
});
after(() => svc.stop());

const linesWith = (text: string) => svc.logs.lines.filter((l) => l.includes(text));

test('2,000 random grant_type values add no identity_token_requests_total series beyond the known grant types and `other`', async () => {
  await inParallel(2000, 16, (i) =>
    postForm(`${svc.config.issuer}/token`, { grant_type: `urn:x:${i}:${Math.random().toString(36).slice(2)}` }, { authorization: basic(c.id, c.secret) }),
  );
  await postForm(`${svc.config.issuer}/token`, { grant_type: 'client_credentials', scope: 'api:read' }, { authorization: basic(c.id, c.secret) });
  const labels = series(await scrape(svc), 'identity_token_requests_total');
  const grantTypes = new Set(labels.map((l) => l.grant_type));
  assert.deepEqual([...grantTypes].sort(), ['client_credentials', 'other']);
  assert.ok(labels.length <= 4, JSON.stringify(labels));
});

test('refusals an attacker can repeat are logged once per 10 s; events and metrics see every one', async () => {
  const events = recordEvents(svc);
  const before = { ignored: linesWith('gateway.forwarded_ip_ignored').length, limited: linesWith('"outcome":"login.rate_limited"').length };
  // A client that is not a trusted gateway sends X-End-User-IP: ignored, one warning.
  for (let i = 0; i < 40; i++) await passwordLogin(svc, c, `nobody-${i}@example.com`, 'pw', { 'x-end-user-ip': `198.51.100.${i}` });
  assert.equal(events.get('gateway.forwarded_ip_ignored')?.length, 40);
  assert.equal(events.get('login.rate_limited')?.length, 35, 'all from 127.0.0.1: 5 failures, then 429');
  assert.equal(linesWith('gateway.forwarded_ip_ignored').length - before.ignored, 1);
  assert.equal(linesWith('"outcome":"login.rate_limited"').length - before.limited, 1);
});

test('a client hanging up mid-request is logged at debug level, not as an unhandled error', async () => {
  const url = new URL(svc.config.issuer);
  const seen = svc.logs.lines.length;
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(
        `POST /token HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=pass`,
      );
      setTimeout(() => socket.destroy(), 50);
      socket.on('close', () => resolve());
    });
    socket.on('error', reject);
  });
  const deadline = Date.now() + 5000;
  const fresh = () => svc.logs.lines.slice(seen);
  while (!fresh().some((l) => /closed the connection|"level":50/.test(l)) && Date.now() < deadline) await sleep(20);
  assert.deepEqual(fresh().filter((l) => l.includes('"level":50')), []);
  assert.ok(fresh().some((l) => l.includes('client closed the connection') && l.includes('"level":20')));
});

test('interactive endpoints are not there: 404, no cookie, no Redis key, absent from discovery', async () => {
  const base = svc.config.issuer;
  const keys = async () => (await svc.stores.redis!.keys(`${svc.config.redisKeyPrefix}oidc:*`)).length;
  const keysBefore = await keys();
  const probes: [string, string][] = [
    ['GET', `/auth?client_id=${c.id}&response_type=none&redirect_uri=https://example.com/cb&scope=openid`],
    ['POST', '/auth'],
    ['GET', '/auth/abcdefghijklmnop'],
    ['GET', '/session/end'],
    ['POST', '/session/end'],
    ['POST', '/session/end/confirm'],
    ['GET', '/session/end/success'],
    ['POST', '/request'],
    ['POST', '/device/auth'],
    ['GET', '/device'],
    ['POST', '/reg'],
    ['GET', '/me'],
  ];
  for (const [method, path] of probes) {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(base + path, {
        method,
        headers: method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(c.id, c.secret) } : {},
        body: method === 'POST' ? `client_id=${c.id}` : undefined,
      });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.headers.get('set-cookie'), null, `${method} ${path} sets a cookie`);
    }
  }
  assert.equal(await keys(), keysBefore, 'no Redis key written');

  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    const discovery = (await (await fetch(base + path)).json()) as Record<string, unknown>;
    for (const gone of ['authorization_endpoint', 'end_session_endpoint', 'pushed_authorization_request_endpoint', 'device_authorization_endpoint', 'registration_endpoint']) {
      assert.equal(discovery[gone], undefined, `${path} lists ${gone}`);
    }
    assert.equal(discovery.token_endpoint, `${base}/token`);
  }
});
