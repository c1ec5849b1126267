// Response headers: helmet everywhere, no caching of token answers, and CORS
// off unless CORS_ORIGINS lists the origin (never reflecting an arbitrary
// origin, never with credentials).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import type { TestClient } from './support/security.ts';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.net';

let svc: TestService;
let gw: TestClient;
let user: Awaited<ReturnType<TestService['user']>>;
before(async () => {
  svc = await startTestService({ CORS_ORIGINS: APP });
  gw = await svc.client();
  user = await svc.user();
});
after(() => svc.stop());

const login = (headers: Record<string, string> = {}, password = user.password) =>
  postForm(`${svc.config.issuer}/token`, { grant_type: 'password', username: user.email, password }, { authorization: basic(gw.id, gw.secret), ...headers });

describe('helmet', () => {
  test('security headers on every kind of response', async () => {
    const responses = {
      discovery: await fetch(`${svc.config.issuer}/.well-known/openid-configuration`),
      jwks: await fetch(`${svc.config.issuer}/jwks`),
      tokenOk: await login(),
      tokenError: await login({}, 'wrong'),
      notFound: await fetch(`${svc.config.issuer}/nope`),
      badInput: await fetch(`${svc.config.issuer}/jwks?x=%00`),
    };
    for (const [name, res] of Object.entries(responses)) {
      const h = res.headers;
      assert.equal(h.get('x-content-type-options'), 'nosniff', name);
      assert.ok(h.get('content-security-policy'), name);
      assert.ok(h.get('strict-transport-security'), name);
      assert.equal(h.get('x-frame-options'), 'SAMEORIGIN', name);
      assert.equal(h.get('x-powered-by'), null, name);
    }
  });

  test('token, introspection and revocation answers are never cached', async () => {
    const ok = await login();
    const bad = await login({}, 'wrong');
    const auth = { authorization: basic(gw.id, gw.secret) };
    const introspection = await postForm(`${svc.config.issuer}/token/introspection`, { token: ok.body.refresh_token as string }, auth);
    const revocation = await postForm(`${svc.config.issuer}/token/revocation`, { token: ok.body.refresh_token as string }, auth);
    for (const [name, res] of Object.entries({ ok, bad, introspection, revocation })) {
      assert.equal(res.headers.get('cache-control'), 'no-store', name);
      assert.equal(res.headers.get('pragma'), 'no-cache', name);
    }
  });
});

describe('CORS', () => {
  test('an origin not in CORS_ORIGINS gets no CORS header anywhere', async () => {
    for (const path of ['/jwks', '/.well-known/openid-configuration']) {
      const res = await fetch(`${svc.config.issuer}${path}`, { headers: { origin: EVIL } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), null, path);
    }
    const preflight = await fetch(`${svc.config.issuer}/token`, {
      method: 'OPTIONS',
      headers: { origin: EVIL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);
    const post = await login({ origin: EVIL });
    assert.equal(post.headers.get('access-control-allow-origin'), null);
    assert.equal(post.body.access_token, undefined);
  });

  test('an allowed origin is echoed alone, without credentials', async () => {
    const jwks = await fetch(`${svc.config.issuer}/jwks`, { headers: { origin: APP } });
    assert.equal(jwks.headers.get('access-control-allow-origin'), APP);
    const post = await login({ origin: APP });
    assert.equal(post.status, 200, post.text);
    assert.equal(post.headers.get('access-control-allow-origin'), APP);
    assert.equal(post.headers.get('access-control-allow-credentials'), null);
  });

  test('CORS is off by default', async () => {
    const plain = await startTestService();
    try {
      const res = await fetch(`${plain.config.issuer}/jwks`, { headers: { origin: APP } });
      assert.equal(res.headers.get('access-control-allow-origin'), null);
    } finally {
      await plain.stop();
    }
  });
});
