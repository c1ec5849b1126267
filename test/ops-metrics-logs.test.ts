// Operations surface on the admin port: /metrics (prom-client) and the
// request log (request ids, quiet probes, no secrets).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
before(async () => {
  svc = await startTestService();
});
after(async () => {
  await svc.stop();
});

async function scrape(): Promise<string> {
  const res = await fetch(`${svc.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  return res.text();
}

/** The value of one sample, e.g. value(text, 'x_total{a="b"}'); 0 when absent. */
function value(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

describe('metrics', () => {
  test('token requests by grant type and outcome, hash durations, refresh reuse', async () => {
    const gateway = await svc.client();
    const user = await svc.user();
    const auth = { authorization: basic(gateway.id, gateway.secret) };
    const token = (form: Record<string, string>) => postForm(`${svc.config.issuer}/token`, form, auth);
    const base = await scrape();

    const ok = await token({ grant_type: 'password', username: user.email, password: user.password });
    assert.equal(ok.status, 200, ok.text);
    const bad = await token({ grant_type: 'password', username: user.email, password: 'wrong password' });
    assert.equal(bad.status, 400);
    const first = ok.body.refresh_token as string;
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: first });
    assert.equal(refreshed.status, 200, refreshed.text);
    const replay = await token({ grant_type: 'refresh_token', refresh_token: first });
    assert.equal(replay.body.error, 'invalid_grant');

    const text = await scrape();
    const delta = (s: string) => value(text, s) - value(base, s);
    assert.equal(delta('identity_token_requests_total{grant_type="password",outcome="success"}'), 1);
    assert.equal(delta('identity_token_requests_total{grant_type="password",outcome="invalid_grant"}'), 1);
    assert.equal(delta('identity_token_requests_total{grant_type="refresh_token",outcome="success"}'), 1);
    assert.equal(delta('identity_token_requests_total{grant_type="refresh_token",outcome="invalid_grant"}'), 1);
    assert.equal(delta('identity_refresh_token_reuse_total{detected_by="sequential"}'), 1);
    assert.ok(delta('identity_password_hash_duration_seconds_count{operation="verify"}') >= 2, 'verifications timed');
  });

  test('parallel refreshes with one token count as reuse, whoever detects it', async () => {
    const gateway = await svc.client();
    const user = await svc.user();
    const auth = { authorization: basic(gateway.id, gateway.secret) };
    const login = await postForm(`${svc.config.issuer}/token`, { grant_type: 'password', username: user.email, password: user.password }, auth);
    const base = await scrape();
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        postForm(`${svc.config.issuer}/token`, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token as string }, auth),
      ),
    );
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    const text = await scrape();
    const reuse = (t: string) =>
      value(t, 'identity_refresh_token_reuse_total{detected_by="concurrent"}') + value(t, 'identity_refresh_token_reuse_total{detected_by="sequential"}');
    // Seven requests lost, all invalid_grant. Those that saw the token consumed
    // are reuses (detected by the atomic consume or by finding it consumed);
    // those that came after the family was revoked found nothing at all.
    assert.deepEqual(results.filter((r) => r.status !== 200).map((r) => r.body.error), Array(7).fill('invalid_grant'));
    const counted = reuse(text) - reuse(base);
    assert.ok(counted >= 1 && counted <= 7, `reuse counted ${counted} times`);
  });

  test('legacy hashes and key age are read from Postgres on scrape', async () => {
    const before = value(await scrape(), 'identity_legacy_password_hashes');
    await svc.stores.db.user.create({
      data: { email: `legacy-${Date.now()}@example.com`, passwordHash: '$2b$10$abcdefghijklmnopqrstuuJ7z5Yb4Vv9K8h3q8T6m0Ww3yY2sQx1e' },
    });
    const text = await scrape();
    assert.equal(value(text, 'identity_legacy_password_hashes'), before + 1);
    const age = text.split('\n').find((l) => l.startsWith('identity_signing_key_age_seconds{') && l.includes('status="active"'));
    assert.ok(age, 'active key age exported');
    assert.ok(Number(age.split(' ').pop()) >= 0);
  });

  test('metrics other features increment are defined, and process metrics are there', async () => {
    svc.metrics.rateLimitBlocks.inc({ limiter: 'login' });
    svc.metrics.passwordHashesShed.inc();
    const text = await scrape();
    assert.equal(value(text, 'rate_limit_blocks_total{limiter="login"}'), 1);
    assert.equal(value(text, 'password_hashes_shed_total'), 1);
    assert.match(text, /^# TYPE password_hashes_in_flight gauge$/m);
    assert.match(text, /^# TYPE identity_redis_errors_total counter$/m);
    assert.match(text, /^# TYPE identity_postgres_errors_total counter$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  test('/metrics is not on the public port', async () => {
    const res = await fetch(`${svc.config.issuer}/metrics`);
    assert.notEqual(res.status, 200);
  });
});

describe('request log', () => {
  test('X-Request-Id is propagated when sane, generated otherwise, and echoed', async () => {
    const discovery = '/.well-known/openid-configuration';
    const given = await fetch(`${svc.config.issuer}${discovery}`, { headers: { 'x-request-id': 'gw-7f3a.42:1' } });
    assert.equal(given.headers.get('x-request-id'), 'gw-7f3a.42:1');
    const line = svc.logs.lines.find((l) => l.includes('"gw-7f3a.42:1"'));
    assert.ok(line, 'logged with the caller’s id');
    assert.equal(JSON.parse(line).req.path, discovery);

    // GET /jwks (the fast path) echoes the caller's id too, but like the
    // probes it writes no log line (see publicListener).
    const jwks = await fetch(`${svc.config.issuer}/jwks`, { headers: { 'x-request-id': 'gw-jwks-1' } });
    assert.equal(jwks.headers.get('x-request-id'), 'gw-jwks-1');
    assert.ok(!svc.logs.lines.some((l) => l.includes('"gw-jwks-1"')), 'JWKS fetches are not logged');

    for (const bad of ['x'.repeat(129), 'a b', '<script>', 'a/b"c']) {
      const res = await fetch(`${svc.config.issuer}/jwks`, { headers: { 'x-request-id': bad } });
      const id = res.headers.get('x-request-id') ?? '';
      assert.match(id, /^[0-9a-f-]{36}$/, `replaced ${JSON.stringify(bad)}`);
    }
    const none = await fetch(`${svc.config.issuer}/jwks`);
    assert.match(none.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  test('probes and metrics scrapes are not logged; other admin requests are', async () => {
    const marker = `probe-${Date.now()}`;
    for (const path of ['/livez', '/readyz', '/health/alive', '/health/ready', '/metrics']) {
      const res = await fetch(`${svc.adminUrl}${path}`, { headers: { 'x-request-id': marker } });
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
    await (await fetch(`${svc.adminUrl}/nope`, { headers: { 'x-request-id': `${marker}-404` } })).arrayBuffer();
    assert.ok(svc.logs.lines.some((l) => l.includes(`"${marker}-404"`)), 'other admin requests are logged');
    assert.ok(!svc.logs.lines.some((l) => l.includes(`"${marker}"`)), 'a probe or scrape was logged');
  });

  test('secrets never reach the request log, even in headers or query strings', async () => {
    const gateway = await svc.client();
    const user = await svc.user();
    const rid = `secret-check-${Date.now()}`;
    const res = await postForm(
      `${svc.config.issuer}/token?password=${encodeURIComponent(user.password)}`,
      { grant_type: 'password', username: user.email, password: user.password },
      { authorization: basic(gateway.id, gateway.secret), 'x-request-id': rid, cookie: `session=${gateway.secret}` },
    );
    assert.equal(res.status, 200, res.text);
    const line = svc.logs.lines.find((l) => l.includes(rid));
    assert.ok(line, 'the request was logged');
    assert.equal(JSON.parse(line).req.path, '/token');
    for (const secret of [user.password, encodeURIComponent(user.password), gateway.secret, res.body.refresh_token as string, res.body.access_token as string]) {
      assert.ok(!svc.logs.text.includes(secret), 'a secret reached the logs');
    }
    assert.ok(!svc.logs.text.toLowerCase().includes('authorization'), 'no Authorization header in logs');
  });

  test('the logger itself censors secret fields wherever they appear', async () => {
    const { createLogger } = await import('../src/observability/log.ts');
    const { LogCapture } = await import('./support/service.ts');
    const out = new LogCapture();
    createLogger('info', out).info(
      { req: { headers: { authorization: 'Basic c2VjcmV0' } }, body: { password: 'hunter2', client_secret: 's3cr3t', refresh_token: 'rt' } },
      'x',
    );
    assert.ok(!/c2VjcmV0|hunter2|s3cr3t|"rt"/.test(out.text), out.text);
    assert.match(out.text, /\[redacted\]/);
  });
});
