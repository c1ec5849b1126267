// Black-box: the OAuth flows as a gateway (openid-client) and a downstream
// service (jose, through the published JWKS) see them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'openid-client';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gateway: { id: string; secret: string };
let alice: Awaited<ReturnType<TestService['user']>>;
let cfg: oauth.Configuration;

before(async () => {
  svc = await startTestService();
  gateway = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read', 'api:write'] });
  alice = await svc.user({ email: 'Alice@Example.com', roles: ['admin', 'viewer'] });
  cfg = await svc.oauth(gateway);
});
after(() => svc.stop());

const login = (c = cfg, params: Record<string, string> = {}) =>
  oauth.genericGrantRequest(c, 'password', { username: 'alice@example.com', password: alice.password, ...params });

async function verify(token: string) {
  const meta = cfg.serverMetadata();
  const jwks = createRemoteJWKSet(new URL(meta.jwks_uri!));
  return jwtVerify(token, jwks, { issuer: meta.issuer, audience: 'api://default', typ: 'at+jwt', algorithms: ['ES256'] });
}

describe('discovery', () => {
  test('OpenID and RFC 8414 documents both describe the token service', async () => {
    const rfc8414 = await oauth.discovery(svc.issuer, gateway.id, undefined, oauth.ClientSecretBasic(gateway.secret), {
      algorithm: 'oauth2',
      execute: [oauth.allowInsecureRequests],
    });
    for (const meta of [cfg.serverMetadata(), rfc8414.serverMetadata()]) {
      assert.equal(meta.issuer, svc.config.issuer);
      assert.equal(meta.token_endpoint, `${svc.config.issuer}/token`);
      assert.equal(meta.jwks_uri, `${svc.config.issuer}/jwks`);
      assert.ok(meta.introspection_endpoint);
      assert.ok(meta.revocation_endpoint);
      assert.ok(meta.grant_types_supported?.includes('password'));
      assert.ok(meta.grant_types_supported?.includes('client_credentials'));
      assert.deepEqual(meta.token_endpoint_auth_methods_supported?.sort(), ['client_secret_basic', 'client_secret_post']);
    }
  });
});

describe('password grant', () => {
  test('returns an RFC 9068 access token a downstream service verifies with only the JWKS', async () => {
    const tokens = await login();
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(tokens.expires_in, 900);
    assert.equal(tokens.scope, 'api:read api:write');
    assert.match(tokens.refresh_token!, /^[A-Za-z0-9_-]{43,}$/); // ≥ 256 bits

    const header = decodeProtectedHeader(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    assert.ok(header.kid);

    const { payload } = await verify(tokens.access_token);
    assert.equal(payload.sub, alice.id);
    assert.equal(payload.client_id, gateway.id);
    assert.equal(payload.scope, 'api:read api:write');
    assert.deepEqual(payload.roles, ['admin', 'viewer']);
    assert.equal(payload.exp! - payload.iat!, 900);
    assert.ok(payload.jti);
  });

  test('the response is not cacheable', async () => {
    const res = await postForm(
      `${svc.config.issuer}/token`,
      { grant_type: 'password', username: 'alice@example.com', password: alice.password },
      { authorization: basic(gateway.id, gateway.secret) },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(Object.keys(res.body).sort(), ['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
  });

  test('client_secret_post authenticates too', async () => {
    const tokens = await login(await svc.oauth(gateway, 'post'));
    assert.ok(tokens.access_token);
  });

  test('a narrower scope can be requested', async () => {
    const tokens = await login(cfg, { scope: 'api:read' });
    assert.equal(tokens.scope, 'api:read');
    assert.equal((await verify(tokens.access_token)).payload.scope, 'api:read');
  });

  test('username is matched case-insensitively, password in NFC or NFD', async () => {
    const user = await svc.user({ password: 'Crème brûlée à la carte' });
    const tokens = await oauth.genericGrantRequest(cfg, 'password', {
      username: user.email.toUpperCase(),
      password: 'Crème brûlée à la carte'.normalize('NFD'),
    });
    assert.equal((await verify(tokens.access_token)).payload.sub, user.id);
  });
});

describe('refresh tokens', () => {
  test('every refresh returns a new access token and a new refresh token', async () => {
    const first = await login();
    const second = await oauth.refreshTokenGrant(cfg, first.refresh_token!);
    const third = await oauth.refreshTokenGrant(cfg, second.refresh_token!);
    const rts = new Set([first.refresh_token, second.refresh_token, third.refresh_token]);
    assert.equal(rts.size, 3);
    assert.notEqual(second.access_token, third.access_token);
    assert.equal((await verify(third.access_token)).payload.sub, alice.id);
    assert.equal(third.scope, 'api:read api:write');
  });

  test('Redis holds no refresh token in plaintext, keyed or stored', async () => {
    const { refresh_token: rt } = await login();
    const redis = svc.stores.redis!;
    const keys = await redis.keys(`${svc.config.redisKeyPrefix}*`);
    assert.ok(keys.length > 0);
    for (const key of keys) {
      assert.ok(!key.includes(rt!), key);
      const type = await redis.type(key);
      const dump = type === 'string' ? (await redis.get(key))! : JSON.stringify(await redis.zrange(key, 0, -1));
      assert.ok(['string', 'zset'].includes(type), `${key} is a ${type}`);
      assert.ok(!dump.includes(rt!) && !dump.includes(rt!.slice(0, 43)), `${key} contains the token`);
    }
  });

  test('refresh tokens carry the idle lifetime, the grant the absolute one', async () => {
    const s = await startTestService({ REFRESH_TOKEN_IDLE_TTL: '600', REFRESH_TOKEN_ABSOLUTE_TTL: '3600' });
    try {
      const c = await s.client();
      const u = await s.user();
      const tokens = await oauth.genericGrantRequest(await s.oauth(c), 'password', { username: u.email, password: u.password });
      const introspected = await oauth.tokenIntrospection(await s.oauth(c), tokens.refresh_token!);
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(introspected.exp! - (now + 600)) <= 2, `refresh exp ${introspected.exp! - now}s from now`);
      // The login's Redis key lives as long as its refresh token; the grant in it ends at the absolute lifetime.
      const grantId = decodeJwt(tokens.access_token).grant_id as string;
      const ttl = await s.stores.redis!.ttl(s.tokenStore!.familyKey(grantId));
      assert.ok(ttl > 590 && ttl <= 600, `login ttl ${ttl}`);
      const grant = JSON.parse((await s.tokenStore!.readLogin(grantId))!.grant) as { exp: number };
      assert.ok(Math.abs(grant.exp - (now + 3600)) <= 2, `grant exp ${grant.exp - now}s from now`);
    } finally {
      await s.stop();
    }
  });

  test('a refresh token never outlives the absolute lifetime, however recently it was rotated', async () => {
    // Idle (3 s) longer than what is left of the absolute lifetime (4 s) at
    // the rotation (t≈2 s): the rotated token must die at t=4, not t≈5.
    const s = await startTestService({ REFRESH_TOKEN_IDLE_TTL: '3', REFRESH_TOKEN_ABSOLUTE_TTL: '4' });
    try {
      const c = await s.client();
      const u = await s.user();
      const conf = await s.oauth(c);
      const started = Date.now();
      const tokens = await oauth.genericGrantRequest(conf, 'password', { username: u.email, password: u.password });
      await new Promise((r) => setTimeout(r, 2000 - (Date.now() - started)));
      const rotated = await oauth.refreshTokenGrant(conf, tokens.refresh_token!);
      const end = Math.floor(started / 1000) + 4;
      assert.ok((await oauth.tokenIntrospection(conf, rotated.refresh_token!)).exp! <= end + 1, 'capped at the absolute end');
      await new Promise((r) => setTimeout(r, started + 4300 - Date.now()));
      assert.ok(Date.now() - started < 4900, 'checked before the idle lifetime alone would end it');
      await assert.rejects(oauth.refreshTokenGrant(conf, rotated.refresh_token!), { error: 'invalid_grant' });
    } finally {
      await s.stop();
    }
  });

  test('reusing a rotated refresh token revokes the whole family', async () => {
    const first = await login();
    const second = await oauth.refreshTokenGrant(cfg, first.refresh_token!);
    await assert.rejects(oauth.refreshTokenGrant(cfg, first.refresh_token!), { error: 'invalid_grant' });
    // The newest token of the family died with it.
    await assert.rejects(oauth.refreshTokenGrant(cfg, second.refresh_token!), { error: 'invalid_grant' });
  });

  test('20 parallel refreshes with one token: exactly one succeeds, and the family ends revoked', async () => {
    const { refresh_token: rt, access_token: at } = await login();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => oauth.refreshTokenGrant(cfg, rt!)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    assert.equal(ok.length, 1, `${ok.length} refreshes succeeded`);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal((r.reason as { error?: string }).error, 'invalid_grant');
    }
    // The token was presented 20 times: a reuse. The winner's successor died with its family.
    const winner = (ok[0] as PromiseFulfilledResult<oauth.TokenEndpointResponse>).value.refresh_token!;
    assert.equal((await oauth.tokenIntrospection(cfg, winner)).active, false);
    await assert.rejects(oauth.refreshTokenGrant(cfg, winner), { error: 'invalid_grant' });
    assert.equal(await svc.stores.redis!.exists(svc.tokenStore!.familyKey(decodeJwt(at).grant_id as string)), 0);
  });

  test('a refresh token is bound to its client', async () => {
    const other = await svc.client();
    const { refresh_token: rt } = await login();
    await assert.rejects(oauth.refreshTokenGrant(await svc.oauth(other), rt!), { error: 'invalid_grant' });
  });
});

describe('client credentials', () => {
  test('the client is the subject and only granted scopes are issued', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
    const conf = await svc.oauth(service);
    const tokens = await oauth.clientCredentialsGrant(conf, { scope: 'api:read' });
    const { payload } = await verify(tokens.access_token);
    assert.equal(payload.sub, service.id);
    assert.equal(payload.client_id, service.id);
    assert.equal(payload.scope, 'api:read');
    assert.equal(payload.roles, undefined);
    assert.equal(tokens.refresh_token, undefined);
    await assert.rejects(oauth.clientCredentialsGrant(conf, { scope: 'api:write' }), { error: 'invalid_scope' });
  });
});

describe('introspection and revocation', () => {
  test('a refresh token introspects active until revoked', async () => {
    const { refresh_token: rt } = await login();
    const active = await oauth.tokenIntrospection(cfg, rt!);
    assert.equal(active.active, true);
    assert.equal(active.sub, alice.id);
    assert.equal(active.client_id, gateway.id);
    assert.equal(active.scope, 'api:read api:write');

    await oauth.tokenRevocation(cfg, rt!);
    assert.equal((await oauth.tokenIntrospection(cfg, rt!)).active, false);
    await assert.rejects(oauth.refreshTokenGrant(cfg, rt!), { error: 'invalid_grant' });
  });

  test('JWT access tokens introspect too (RFC 7662; more in standards.test.ts)', async () => {
    const { access_token: at } = await login();
    assert.equal((await oauth.tokenIntrospection(cfg, at)).active, true);
  });

  test("a client cannot introspect another client's tokens", async () => {
    const { refresh_token: rt } = await login();
    const other = await svc.oauth(await svc.client());
    assert.equal((await oauth.tokenIntrospection(other, rt!)).active, false);
  });

  test('an unknown token introspects inactive', async () => {
    assert.equal((await oauth.tokenIntrospection(cfg, 'x'.repeat(43))).active, false);
  });
});

describe('accounts that are not active', () => {
  test('cannot log in, and their failure looks exactly like a wrong password or unknown user', async () => {
    const bob = await svc.user();
    const tokens = await oauth.genericGrantRequest(cfg, 'password', { username: bob.email, password: bob.password });
    await svc.stores.db.user.update({ where: { id: bob.id }, data: { status: 'disabled' } });

    const attempt = (username: string, password: string) =>
      postForm(`${svc.config.issuer}/token`, { grant_type: 'password', username, password }, { authorization: basic(gateway.id, gateway.secret) });
    const disabled = await attempt(bob.email, bob.password);
    const wrong = await attempt('alice@example.com', 'not the password');
    const unknown = await attempt('nobody@example.com', 'whatever it is');
    assert.equal(disabled.status, 400);
    assert.equal(disabled.body.error, 'invalid_grant');
    assert.equal(disabled.text, wrong.text);
    assert.equal(disabled.text, unknown.text);

    // ...and their refresh tokens stop working at once.
    await assert.rejects(oauth.refreshTokenGrant(cfg, tokens.refresh_token!), { error: 'invalid_grant' });
  });

  test('a pending user cannot log in', async () => {
    const carol = await svc.user();
    await svc.stores.db.user.update({ where: { id: carol.id }, data: { status: 'pending' } });
    await assert.rejects(oauth.genericGrantRequest(cfg, 'password', { username: carol.email, password: carol.password }), {
      error: 'invalid_grant',
    });
  });
});

describe('logs', () => {
  test('no password, token or client secret ever reaches a log line', async () => {
    const tokens = await login();
    await oauth.refreshTokenGrant(cfg, tokens.refresh_token!);
    await postForm(`${svc.config.issuer}/token`, { grant_type: 'password', username: 'alice@example.com', password: 'wrong-password-xyz' }, {
      authorization: basic(gateway.id, gateway.secret),
    });
    const text = svc.logs.text;
    assert.ok(svc.logs.lines.some((l) => l.includes('"/token"')), 'token requests are logged');
    const authorization = basic(gateway.id, gateway.secret).slice('Basic '.length);
    for (const secret of [alice.password, 'wrong-password-xyz', gateway.secret, authorization, tokens.access_token, tokens.refresh_token!]) {
      assert.ok(!text.includes(secret), 'a secret reached the logs');
    }
  });
});
