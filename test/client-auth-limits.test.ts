// Client authentication is limited per source and per client id (SECURITY.md,
// "Client secret guessing"): wrong secrets from one address end in 429 +
// Retry-After with a security event and metrics; a correct secret gets
// through again once the block expires; a botnet guessing one client's
// secret cannot lock that client out of the sources it uses.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import { recordEvents, sample, scrape, sleep, type TestClient } from './support/security.ts';

const token = (svc: TestService, c: TestClient, secret: string, headers: Record<string, string> = {}) =>
  postForm(`${svc.config.issuer}/token`, { grant_type: 'client_credentials', scope: 'api:read' }, { authorization: basic(c.id, secret), ...headers });

describe('wrong client secrets from one address', () => {
  let svc: TestService;
  let c: TestClient;
  let events: Map<string, object[]>;
  before(async () => {
    svc = await startTestService(); // CLIENT_AUTH_IP_MAX_FAILURES 100 per 300 s: the default
    c = await svc.client({ grantTypes: ['client_credentials'] });
    events = recordEvents(svc);
  });
  after(() => svc.stop());

  test('1,500 wrong secrets: 100 are tried, the rest get 429 with Retry-After, an event and metrics', async () => {
    const statuses = new Map<number, number>();
    let limited;
    for (let i = 0; i < 1500; i++) {
      const r = await token(svc, c, `wrong-secret-${i}`);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 429) limited = r;
    }
    assert.deepEqual(Object.fromEntries(statuses), { 401: 100, 429: 1400 });
    assert.equal(limited!.body.error, 'temporarily_unavailable');
    assert.ok(Number(limited!.headers.get('retry-after')) >= 1);
    assert.equal(limited!.headers.get('cache-control'), 'no-store');
    assert.equal(events.get('client_auth.failed')?.length, 100);
    assert.equal(events.get('client_auth.rate_limited')?.length, 1400);
    const metrics = await scrape(svc);
    assert.equal(sample(metrics, 'identity_client_auth_failures_total'), 100);
    assert.equal(sample(metrics, 'rate_limit_blocks_total', { limiter: 'client_auth_ip' }), 1400);
    // While the source is blocked even the right secret is refused, at every endpoint that authenticates clients.
    assert.equal((await token(svc, c, c.secret)).status, 429);
    const introspect = await postForm(`${svc.config.issuer}/token/introspection`, { token: 'x' }, { authorization: basic(c.id, c.secret) });
    assert.equal(introspect.status, 429);
    // Log lines are sampled; the metrics above counted every one.
    assert.ok(svc.logs.lines.filter((l) => l.includes('"outcome":"client_auth.rate_limited"')).length <= 2);
  });
});

test('a correct secret gets through again once the block expires', async () => {
  const svc = await startTestService({ CLIENT_AUTH_IP_MAX_FAILURES: '3', CLIENT_AUTH_FAILURE_WINDOW_SECONDS: '2' });
  try {
    const c = await svc.client({ grantTypes: ['client_credentials'] });
    for (let i = 0; i < 3; i++) assert.equal((await token(svc, c, `wrong-${i}`)).status, 401);
    assert.equal((await token(svc, c, c.secret)).status, 429);
    let status = 429;
    for (const deadline = Date.now() + 10_000; status === 429 && Date.now() < deadline; ) {
      await sleep(200);
      status = (await token(svc, c, c.secret)).status;
    }
    assert.equal(status, 200);
  } finally {
    await svc.stop();
  }
});

test('guessing one client’s secret from many addresses blocks strangers for that client, not its familiar sources', async () => {
  const svc = await startTestService({ TRUST_PROXY_HOPS: '1', CLIENT_AUTH_CLIENT_MAX_FAILURES: '5' });
  try {
    const c = await svc.client({ grantTypes: ['client_credentials'] });
    const other = await svc.client({ grantTypes: ['client_credentials'] });
    const at = (ip: string) => ({ 'x-forwarded-for': ip });
    assert.equal((await token(svc, c, c.secret, at('192.0.2.1'))).status, 200, 'the client works from its usual address');
    for (let i = 0; i < 5; i++) assert.equal((await token(svc, c, `wrong-${i}`, at(`203.0.113.${i + 1}`))).status, 401);
    const stranger = await token(svc, c, c.secret, at('203.0.113.99'));
    assert.equal(stranger.status, 429, 'a new address is refused for this client, even with the right secret');
    assert.match(String(stranger.body.error_description), /for this client/);
    assert.equal((await token(svc, c, c.secret, at('192.0.2.1'))).status, 200, 'its familiar address still gets in');
    assert.equal((await token(svc, other, other.secret, at('203.0.113.99'))).status, 200, 'other clients are unaffected');
  } finally {
    await svc.stop();
  }
});
