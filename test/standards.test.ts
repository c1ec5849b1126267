// Issue 13: the token service as independent clients see it: openid-client
// (a gateway), oauth4webapi and Auth0's express-oauth2-jwt-bearer (resource
// servers), plus raw HTTP where the exact RFC answer is the point.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { auth as jwtBearer, requiredScopes } from 'express-oauth2-jwt-bearer';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import * as oauth4 from 'oauth4webapi';
import * as oauth from 'openid-client';
import { discoveryUrls, requireAuth } from '@identity-service/verify';
import { startExample, type Example } from './support/verify.ts';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let token: string;

before(async () => {
  svc = await startTestService({ SCOPES: 'api:read api:write api:admin', INTROSPECTION_CLIENTS: 'resource-server' });
  token = `${svc.config.issuer}/token`;
});
after(() => svc.stop());

describe('scopes and resources on both grants (RFC 6749 §3.3, RFC 8707)', () => {
  test('client_credentials without scope gets every scope the client is allowed, in the response and the token', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read', 'api:write'] });
    const cfg = await svc.oauth(service);
    const tokens = await oauth.clientCredentialsGrant(cfg, {});
    assert.equal(tokens.scope, 'api:read api:write');
    assert.equal(decodeJwt(tokens.access_token).scope, 'api:read api:write');

    const narrowed = await oauth.clientCredentialsGrant(cfg, { scope: 'api:write' });
    assert.equal(narrowed.scope, 'api:write');
    assert.equal(decodeJwt(narrowed.access_token).scope, 'api:write');
  });

  test('client_credentials with a scope the client is not allowed, known or not: invalid_scope', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
    for (const scope of ['api:admin', 'api:read nonsense:scope']) {
      const res = await postForm(token, { grant_type: 'client_credentials', scope }, { authorization: basic(service.id, service.secret) });
      assert.equal(res.status, 400, scope);
      assert.equal(res.body.error, 'invalid_scope', scope);
    }
  });

  test('the password grant issues for an allowed resource and refuses another with invalid_target', async () => {
    const user = await svc.user();
    const allowed = await svc.client({ resources: [svc.config.adminAudience] });
    const plain = await svc.client();
    const form = { grant_type: 'password', username: user.email, password: user.password, resource: svc.config.adminAudience };
    const ok = await postForm(token, form, { authorization: basic(allowed.id, allowed.secret) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(decodeJwt(String(ok.body.access_token)).aud, svc.config.adminAudience);
    const refused = await postForm(token, form, { authorization: basic(plain.id, plain.secret) });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'invalid_target');
    const cc = await svc.client({ grantTypes: ['client_credentials'] });
    const ccRefused = await postForm(token, { grant_type: 'client_credentials', resource: svc.config.adminAudience }, { authorization: basic(cc.id, cc.secret) });
    assert.equal(ccRefused.status, 400);
    assert.equal(ccRefused.body.error, 'invalid_target');
  });

  test('oauth4webapi validateJwtAccessToken accepts a client_credentials token', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
    const tokens = await oauth.clientCredentialsGrant(await svc.oauth(service), {});
    const as = await oauth4
      .discoveryRequest(svc.issuer, { algorithm: 'oauth2', [oauth4.allowInsecureRequests]: true })
      .then((res) => oauth4.processDiscoveryResponse(svc.issuer, res));
    const request = new Request('http://rs.example/x', { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const claims = await oauth4.validateJwtAccessToken(as, request, svc.config.audience, { [oauth4.allowInsecureRequests]: true });
    assert.equal(claims.client_id, service.id);
    assert.equal(claims.scope, 'api:read');
  });

  test('express-oauth2-jwt-bearer with requiredScopes accepts a client_credentials token requested without scope', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read', 'api:write'] });
    const narrow = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
    const rs = express();
    rs.get('/write', jwtBearer({ issuerBaseURL: svc.config.issuer, audience: svc.config.audience, tokenSigningAlg: 'ES256' }), requiredScopes('api:write'), (_req, res) => {
      res.json({ ok: true });
    });
    rs.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.status ?? 500).end();
    });
    const server = rs.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/write`;
      const full = await oauth.clientCredentialsGrant(await svc.oauth(service), {});
      const ok = await fetch(url, { headers: { authorization: `Bearer ${full.access_token}` } });
      assert.equal(ok.status, 200);
      const partial = await oauth.clientCredentialsGrant(await svc.oauth(narrow), {});
      const refused = await fetch(url, { headers: { authorization: `Bearer ${partial.access_token}` } });
      assert.equal(refused.status, 403);
    } finally {
      server.close();
    }
  });
});

describe('the rest of the list (issue 13 item 6)', () => {
  test('no client authentication at all: 401 invalid_client on every endpoint that authenticates clients', async () => {
    for (const path of ['/token', '/token/introspection', '/token/revocation']) {
      const res = await postForm(`${svc.config.issuer}${path}`, { grant_type: 'client_credentials', token: 'x' });
      assert.equal(res.status, 401, `${path}: ${res.text}`);
      assert.equal(res.body.error, 'invalid_client', path);
    }
  });

  test('every /token error is not cacheable, duplicated parameters and oversized bodies included', async () => {
    const c = await svc.client();
    const auth = { authorization: basic(c.id, c.secret) };
    const answers = [
      await postForm(token, 'grant_type=password&grant_type=password', auth),
      await postForm(token, `grant_type=password&username=${'a'.repeat(70_000)}`, auth),
      await postForm(token, { grant_type: 'password', username: 'nobody@example.com', password: 'x' }, auth),
      await postForm(token, { grant_type: 'nonsense' }, auth),
      await postForm(token, { grant_type: 'password' }),
    ];
    assert.deepEqual(
      answers.map((r) => r.status),
      [400, 413, 400, 400, 401],
    );
    for (const res of answers) {
      assert.equal(res.headers.get('cache-control'), 'no-store', res.text);
      assert.equal(res.headers.get('pragma'), 'no-cache', res.text);
    }
  });

  test('discovery lists exactly what works', async () => {
    for (const doc of ['openid-configuration', 'oauth-authorization-server']) {
      const meta = (await (await fetch(`${svc.config.issuer}/.well-known/${doc}`)).json()) as Record<string, unknown>;
      assert.deepEqual(meta.scopes_supported, ['api:read', 'api:write', 'api:admin'], doc);
      assert.deepEqual(meta.introspection_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post'], doc);
      assert.deepEqual(meta.revocation_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post'], doc);
      for (const absent of ['authorization_endpoint', 'pushed_authorization_request_endpoint', 'end_session_endpoint', 'userinfo_endpoint', 'response_modes_supported', 'code_challenge_methods_supported', 'claims_supported']) {
        assert.equal(meta[absent], undefined, `${doc}: ${absent}`);
      }
    }
  });

  test("revoking another client's refresh token is refused (RFC 7009 §2.1) and the token keeps working", async () => {
    const user = await svc.user();
    const owner = await svc.client();
    const other = await svc.client();
    const cfg = await svc.oauth(owner);
    const tokens = await oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password });
    const res = await postForm(`${svc.config.issuer}/token/revocation`, { token: tokens.refresh_token! }, { authorization: basic(other.id, other.secret) });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.error, 'unauthorized_client');
    const refreshed = await oauth.refreshTokenGrant(cfg, tokens.refresh_token!);
    assert.ok(refreshed.access_token);
  });

  test('a client id shaped like a user id (a UUID) is refused', async () => {
    const user = await svc.user();
    await assert.rejects(svc.client({ id: user.id, grantTypes: ['client_credentials'] }), /must not look like a UUID/);
    await assert.rejects(svc.client({ id: user.id.replaceAll('-', ''), grantTypes: ['client_credentials'] }), /must not look like a UUID/);
  });
});

describe('identity-service/verify: the issuer and its discovery', () => {
  test('an issuer with a trailing slash is refused at construction, naming the right value', () => {
    assert.throws(() => requireAuth({ issuer: `${svc.config.issuer}/`, audience: 'x' }), (err: Error) => {
      assert.ok(err instanceof TypeError);
      assert.ok(err.message.includes(JSON.stringify(svc.config.issuer)), err.message);
      return true;
    });
  });

  test('discovery URLs for an issuer with a path: RFC 8414 §3.1 first, then OpenID Connect', () => {
    assert.deepEqual(discoveryUrls('https://id.example.com/tenant/a'), [
      'https://id.example.com/.well-known/oauth-authorization-server/tenant/a',
      'https://id.example.com/tenant/a/.well-known/openid-configuration',
    ]);
    assert.deepEqual(discoveryUrls('https://id.example.com'), [
      'https://id.example.com/.well-known/oauth-authorization-server',
      'https://id.example.com/.well-known/openid-configuration',
    ]);
  });

  test('a failed discovery is logged once and not refetched by every request', async () => {
    let hits = 0;
    const broken = createServer((_req, res) => {
      hits++;
      res.writeHead(500).end();
    }).listen(0, '127.0.0.1');
    await once(broken, 'listening');
    const warnings: string[] = [];
    const guard = requireAuth({
      issuer: `http://127.0.0.1:${(broken.address() as AddressInfo).port}`,
      audience: 'x',
      logger: { warn: (m) => warnings.push(m) },
      discoveryRetryMs: 60_000,
    });
    const rs = createServer((req, res) => void guard(req, res, () => res.end('passed'))).listen(0, '127.0.0.1');
    await once(rs, 'listening');
    try {
      const url = `http://127.0.0.1:${(rs.address() as AddressInfo).port}/`;
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await fetch(url, { headers: { authorization: 'Bearer a.b.c' } })).status);
      assert.deepEqual(statuses, [503, 503, 503, 503, 503]);
      assert.equal(hits, 1);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /discovery .* failed/);
    } finally {
      broken.close();
      rs.close();
    }
  });
});

describe('introspection of JWT access tokens (RFC 7662)', () => {
  const introspect = (c: { id: string; secret: string }, t: string) =>
    postForm(`${svc.config.issuer}/token/introspection`, { token: t }, { authorization: basic(c.id, c.secret) });

  test('openid-client tokenIntrospection: active with the RFC 7662 fields while signature, exp and login hold', async () => {
    const user = await svc.user();
    const gw = await svc.client({ scopes: ['api:read', 'api:write'] });
    const cfg = await svc.oauth(gw);
    const tokens = await oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password });
    const info = await oauth.tokenIntrospection(cfg, tokens.access_token);
    assert.equal(info.active, true);
    assert.equal(info.sub, user.id);
    assert.equal(info.client_id, gw.id);
    assert.equal(info.scope, 'api:read api:write');
    assert.equal(info.token_type, 'Bearer');
    assert.equal(info.iss, svc.config.issuer);
    assert.equal(info.aud, svc.config.audience);
    assert.equal(info.exp, decodeJwt(tokens.access_token).exp);
    assert.ok(info.jti);

    // The session is revoked in Postgres (a new generation): inactive at once.
    await svc.stores.db.user.update({ where: { id: user.id }, data: { sessionGeneration: { increment: 1 } } });
    assert.deepEqual((await introspect(gw, tokens.access_token)).body, { active: false });
  });

  test('the issuing client or an allowed introspector learns the answer; any other client gets active:false', async () => {
    const user = await svc.user();
    const gw = await svc.client();
    const rs = await svc.client({ id: 'resource-server', grantTypes: ['client_credentials'] });
    const stranger = await svc.client({ grantTypes: ['client_credentials'] });
    const tokens = await oauth.genericGrantRequest(await svc.oauth(gw), 'password', { username: user.email, password: user.password });
    assert.equal((await introspect(rs, tokens.access_token)).body.active, true);
    assert.deepEqual((await introspect(stranger, tokens.access_token)).body, { active: false });
  });

  test('a token signed by another key, or with an altered payload, is inactive', async () => {
    const user = await svc.user();
    const gw = await svc.client({ scopes: ['api:read', 'api:write'] });
    const real = (await oauth.genericGrantRequest(await svc.oauth(gw), 'password', { username: user.email, password: user.password, scope: 'api:read' }))
      .access_token;
    // Every claim of a live login (sub, grant_id, session stamp), signed by another key.
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT(decodeJwt(real)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'x' }).sign(privateKey);
    assert.deepEqual((await introspect(gw, forged)).body, { active: false });
    // The real signature over a payload with more scope.
    const [h, , sig] = real.split('.');
    const widened = Buffer.from(JSON.stringify({ ...decodeJwt(real), scope: 'api:read api:write' })).toString('base64url');
    assert.deepEqual((await introspect(gw, `${h}.${widened}.${sig}`)).body, { active: false });
    assert.equal((await introspect(gw, real)).body.active, true);
  });

  test('revoking an access token revokes its login: the token introspects inactive and its refresh token is dead', async () => {
    const user = await svc.user();
    const gw = await svc.client();
    const other = await svc.client();
    const cfg = await svc.oauth(gw);
    const tokens = await oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password });
    const foreign = await postForm(`${svc.config.issuer}/token/revocation`, { token: tokens.access_token }, { authorization: basic(other.id, other.secret) });
    assert.equal(foreign.status, 400);
    assert.equal(foreign.body.error, 'unauthorized_client');
    assert.equal((await introspect(gw, tokens.access_token)).body.active, true);

    await oauth.tokenRevocation(cfg, tokens.access_token);
    assert.deepEqual((await introspect(gw, tokens.access_token)).body, { active: false });
    await assert.rejects(oauth.refreshTokenGrant(cfg, tokens.refresh_token!), (e: { error?: string }) => e.error === 'invalid_grant');
  });

  test('a client_credentials token is active while its client keeps the epoch it was issued under', async () => {
    const service = await svc.client({ grantTypes: ['client_credentials'] });
    const cfg = await svc.oauth(service);
    const { access_token } = await oauth.clientCredentialsGrant(cfg, {});
    const info = await oauth.tokenIntrospection(cfg, access_token);
    assert.equal(info.active, true);
    assert.equal(info.sub, service.id);
    await svc.stores.db.client.update({ where: { id: service.id }, data: { sessionEpoch: randomUUID() } });
    assert.deepEqual((await introspect(service, access_token)).body, { active: false });
  });
});

describe('DPoP (RFC 9449) end to end', () => {
  let example: Example;
  before(async () => {
    example = await startExample({ issuer: svc.config.issuer, audience: svc.config.audience });
  });
  after(() => example.close());

  type Keys = Awaited<ReturnType<typeof generateKeyPair>>;
  const ath = (t: string) => createHash('sha256').update(t).digest('base64url');
  /** A DPoP proof made with jose (not our code, not openid-client's). */
  async function proof(keys: Keys, htm: string, htu: string, accessToken?: string, claims: Record<string, unknown> = {}) {
    return new SignJWT({ htm, htu, jti: randomUUID(), ...(accessToken ? { ath: ath(accessToken) } : {}), ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keys.publicKey) })
      .setIssuedAt(typeof claims.iat === 'number' ? claims.iat : undefined)
      .sign(keys.privateKey);
  }
  async function dpopLogin(c: { id: string; secret: string }, user: { email: string; password: string }, keys: Keys): Promise<string> {
    const form = { grant_type: 'password', username: user.email, password: user.password };
    const res = await postForm(token, form, { authorization: basic(c.id, c.secret), dpop: await proof(keys, 'POST', token) });
    assert.equal(res.status, 200, res.text);
    return String(res.body.access_token);
  }
  const get = (url: string, authorization: string, dpop?: string) =>
    fetch(url, { headers: { authorization, ...(dpop ? { dpop } : {}) } }).then(async (r) => ({ status: r.status, challenge: r.headers.get('www-authenticate') ?? '' }));

  test('openid-client with getDPoPHandle: login and two refreshes give DPoP-bound tokens the verifier accepts with proofs', async () => {
    const user = await svc.user();
    const gw = await svc.client();
    const cfg = await svc.oauth(gw);
    const keys = await oauth.randomDPoPKeyPair('ES256');
    const DPoP = oauth.getDPoPHandle(cfg, keys);
    const jkt = await calculateJwkThumbprint(await exportJWK(keys.publicKey));
    let tokens = await oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password }, { DPoP });
    for (let round = 0; round < 3; round++) {
      assert.equal(tokens.token_type.toLowerCase(), 'dpop', `round ${round}`);
      assert.deepEqual(decodeJwt(tokens.access_token).cnf, { jkt }, `round ${round}`);
      const res = await oauth.fetchProtectedResource(cfg, tokens.access_token, new URL(`${example.url}/me`), 'GET', null, undefined, { DPoP });
      assert.equal(res.status, 200, `round ${round}`);
      const info = await oauth.tokenIntrospection(cfg, tokens.access_token);
      assert.equal(info.token_type, 'DPoP');
      if (round < 2) tokens = await oauth.refreshTokenGrant(cfg, tokens.refresh_token!, undefined, { DPoP });
    }
  });

  test('a DPoP-bound token sent as Bearer is refused by the verifier and by the admin API, with a DPoP challenge', async () => {
    const admin = await svc.user({ roles: ['admin'] });
    const console = await svc.client({ resources: [svc.config.adminAudience] });
    const keys = await generateKeyPair('ES256');
    const login = await postForm(
      token,
      { grant_type: 'password', username: admin.email, password: admin.password, resource: svc.config.adminAudience },
      { authorization: basic(console.id, console.secret), dpop: await proof(keys, 'POST', token) },
    );
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.token_type, 'DPoP');
    const at = String(login.body.access_token);
    const adminUrl = `${svc.adminUrl}/admin/clients`;
    const asBearer = await get(adminUrl, `Bearer ${at}`);
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.challenge, /^DPoP algs="[^"]+", error="invalid_token"/);
    assert.equal((await get(adminUrl, `DPoP ${at}`, await proof(keys, 'GET', adminUrl, at))).status, 200);

    const user = await svc.user();
    const gw = await svc.client();
    const userToken = await dpopLogin(gw, user, keys);
    const me = `${example.url}/me`;
    const bearer = await get(me, `Bearer ${userToken}`);
    assert.equal(bearer.status, 401);
    assert.match(bearer.challenge, /^DPoP .*error="invalid_token"/);
    assert.equal((await get(me, `DPoP ${userToken}`, await proof(keys, 'GET', me, userToken))).status, 200);
  });

  test('the verifier checks htm, htu, ath, iat, jti replay and the key of every proof', async () => {
    const user = await svc.user();
    const gw = await svc.client();
    const keys = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const at = await dpopLogin(gw, user, keys);
    const me = `${example.url}/me`;
    const auth = `DPoP ${at}`;
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['no proof', undefined, /invalid_dpop_proof/],
      ['wrong htm', await proof(keys, 'POST', me, at), /htm/],
      ['wrong htu', await proof(keys, 'GET', `${example.url}/orders`, at), /htu/],
      ['ath of another token', await proof(keys, 'GET', me, `${at}x`), /ath/],
      ['old iat', await proof(keys, 'GET', me, at, { iat: Math.floor(Date.now() / 1000) - 600 }), /iat/],
      ['another key', await proof(other, 'GET', me, at), /error="invalid_token".*key/],
    ];
    for (const [name, dpop, expected] of cases) {
      const r = await get(me, auth, dpop);
      assert.equal(r.status, 401, name);
      assert.match(r.challenge, /^DPoP /, name);
      assert.match(r.challenge, expected, `${name}: ${r.challenge}`);
    }
    const good = await proof(keys, 'GET', `${me}?q=1`, at);
    assert.equal((await get(`${me}?q=1`, auth, good)).status, 200);
    const replay = await get(`${me}?q=1`, auth, good);
    assert.equal(replay.status, 401);
    assert.match(replay.challenge, /used before/);
    // An unbound token with the DPoP scheme is refused too.
    const bearerToken = String((await postForm(token, { grant_type: 'password', username: user.email, password: user.password }, { authorization: basic(gw.id, gw.secret) })).body.access_token);
    assert.equal((await get(me, `DPoP ${bearerToken}`, await proof(keys, 'GET', me, bearerToken))).status, 401);
  });

  test('a client registered dpop_bound_access_tokens gets no token without a proof, on any grant; a proof is single-use', async () => {
    const user = await svc.user();
    const gw = await svc.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'], dpopBound: true });
    const auth = { authorization: basic(gw.id, gw.secret) };
    const form = { grant_type: 'password', username: user.email, password: user.password };
    const keys = await generateKeyPair('ES256');
    const bare = await postForm(token, form, auth);
    assert.equal(bare.status, 400);
    assert.equal(bare.body.error, 'invalid_grant');
    const cc = await postForm(token, { grant_type: 'client_credentials' }, auth);
    assert.equal(cc.status, 400);
    assert.equal(cc.body.error, 'invalid_grant');

    const p = await proof(keys, 'POST', token);
    const ok = await postForm(token, form, { ...auth, dpop: p });
    assert.equal(ok.status, 200, ok.text);
    const replayed = await postForm(token, form, { ...auth, dpop: p });
    assert.equal(replayed.status, 400);
    assert.equal(replayed.body.error, 'invalid_grant');
    const refresh = await postForm(token, { grant_type: 'refresh_token', refresh_token: String(ok.body.refresh_token) }, auth);
    assert.equal(refresh.status, 400);
    assert.equal(refresh.body.error, 'invalid_grant');
  });
});
