// GET /verify, the forward-auth endpoint for gateways without JWT support:
// identity headers on 200; RFC 6750 challenges on 401/403; required_scope and
// required_role from the gateway's query string; the opt-in revocation check
// against Postgres within FORWARD_AUTH_CACHE_SECONDS; never a 500 on bad input.
// The real gateways in front of it are in test/gateways/.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startTestService, type TestService } from './support/service.ts';
import { databaseBehindProxy } from './support/tcp-proxy.ts';
import { activePrivateKey, eventually, passwordToken } from './support/verify.ts';

export async function verifyCall(base: string, query: string, authorization?: string) {
  const res = await fetch(`${base}/verify${query}`, { headers: authorization ? { authorization } : {} });
  const text = await res.text();
  const h = (name: string) => res.headers.get(name);
  return {
    status: res.status,
    challenge: h('www-authenticate') ?? '',
    text,
    identity: { subject: h('x-auth-subject'), clientId: h('x-auth-client-id'), scope: h('x-auth-scope'), roles: h('x-auth-roles') },
    cacheControl: h('cache-control'),
    retryAfter: h('retry-after'),
  };
}

describe('GET /verify (forward-auth)', () => {
  let s: TestService;
  let client: { id: string; secret: string };
  let user: Awaited<ReturnType<TestService['user']>>;
  let token: string;
  const CACHE_SECONDS = 2;
  const bearer = (t: string) => `Bearer ${t}`;

  /** A token the service's own active key signs, with `claims` changed. */
  const signed = async (claims: Record<string, unknown>, typ = 'at+jwt') => {
    const signer = await activePrivateKey(s);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: s.config.issuer, aud: s.config.audience, sub: user.id, client_id: client.id, jti: randomUUID(), iat: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: 'ES256', typ, kid: signer.kid })
      .sign(signer.key);
  };

  before(async () => {
    s = await startTestService({ FORWARD_AUTH_CACHE_SECONDS: String(CACHE_SECONDS) });
    client = await s.client({ scopes: ['api:read', 'api:write'] });
    user = await s.user({ roles: ['viewer', 'engineer'] });
    token = await passwordToken(`${s.config.issuer}/token`, client, user, 'api:read');
  });
  after(() => s.stop());

  test('a valid token: 200 with the identity headers, nothing cached by intermediaries', async () => {
    const r = await verifyCall(s.config.issuer, '', bearer(token));
    assert.equal(r.status, 200);
    assert.deepEqual(r.identity, { subject: user.id, clientId: client.id, scope: 'api:read', roles: 'viewer,engineer' });
    assert.equal(r.cacheControl, 'no-store');
  });

  test('no token, malformed, forged, expired, wrong audience, wrong type: 401 with an RFC 6750 challenge and no identity', async () => {
    const stranger = await generateKeyPair('ES256');
    const signer = await activePrivateKey(s);
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ iss: s.config.issuer, aud: s.config.audience, sub: user.id, client_id: client.id, jti: randomUUID(), iat: now, exp: now + 300 })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid })
      .sign(stranger.privateKey);
    const cases: [string, string | undefined, RegExp][] = [
      ['no token', undefined, /^Bearer$/],
      ['Basic scheme', 'Basic dXNlcjpwdw==', /^Bearer$/],
      ['malformed', 'Bearer a b c', /error="invalid_request"/],
      ['not a JWT', bearer('abc.def.ghi'), /error="invalid_token"/],
      ['forged (another key, our kid)', bearer(forged), /error="invalid_token", error_description="the access token signature is invalid"/],
      ['expired', bearer(await signed({ iat: now - 600, exp: now - 60 })), /error="invalid_token", error_description="the access token expired"/],
      ['wrong audience', bearer(await signed({ aud: 'api://elsewhere' })), /error="invalid_token"/],
      ['wrong issuer', bearer(await signed({ iss: 'http://evil.example' })), /error="invalid_token"/],
      ['an ID token, not an access token (typ JWT)', bearer(await signed({}, 'JWT')), /error="invalid_token"/],
    ];
    for (const [name, authorization, challenge] of cases) {
      const r = await verifyCall(s.config.issuer, '', authorization);
      assert.equal(r.status, 401, name);
      assert.match(r.challenge, challenge, name);
      assert.equal(r.identity.subject, null, name);
    }
  });

  test('required_scope needs every listed scope, required_role any listed role: 403 insufficient_scope otherwise', async () => {
    const auth = bearer(token);
    assert.equal((await verifyCall(s.config.issuer, '?required_scope=api:read', auth)).status, 200);
    const noWrite = await verifyCall(s.config.issuer, '?required_scope=api:read%20api:write', auth);
    assert.equal(noWrite.status, 403);
    assert.match(noWrite.challenge, /error="insufficient_scope".*scope="api:read api:write"/);
    assert.equal(noWrite.identity.subject, null);
    assert.equal((await verifyCall(s.config.issuer, '?required_role=admin%20engineer', auth)).status, 200);
    const noAdmin = await verifyCall(s.config.issuer, '?required_role=admin', auth);
    assert.equal(noAdmin.status, 403);
    assert.match(noAdmin.challenge, /error="insufficient_scope"/);
    // Both at once: both must hold.
    assert.equal((await verifyCall(s.config.issuer, '?required_scope=api:read&required_role=admin', auth)).status, 403);
    assert.equal((await verifyCall(s.config.issuer, '?required_scope=api:read&required_role=viewer', auth)).status, 200);
  });

  // RFC 9449 §7.1: a DPoP-bound token (cnf.jkt) presented as Bearer is
  // refused; the refusal comes from the shared verifier (packages/verify).
  test('a DPoP-bound token presented as Bearer: 401 invalid_token', async () => {
    const cc = await s.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const tokenUrl = `${s.config.issuer}/token`;
    const proof = await new SignJWT({ htm: 'POST', htu: tokenUrl, jti: randomUUID(), iat: Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
      .sign(privateKey);
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${cc.id}:${cc.secret}`).toString('base64')}`,
        dpop: proof,
      },
      body: 'grant_type=client_credentials&scope=api:read',
    });
    const body = (await res.json()) as { access_token: string; token_type: string };
    assert.equal(body.token_type, 'DPoP', 'the token is DPoP-bound');
    const r = await verifyCall(s.config.issuer, '', bearer(body.access_token));
    assert.equal(r.status, 401);
    assert.match(r.challenge, /invalid_token/);
  });

  test('a bad query string from a misconfigured gateway: 400 invalid_request naming the parameter, never a 500', async () => {
    const auth = bearer(token);
    for (const [q, field] of [
      ['?required_scope=', 'required_scope'],
      ['?required_scope=a%22b', 'required_scope'],
      ['?required_scope=a&required_scope=b', 'required_scope'],
      ['?required_role=Admin', 'required_role'],
      ['?check_revocation=yes', 'check_revocation'],
      ['?scope=api:read', 'scope'],
      [`?required_scope=${'a'.repeat(2000)}`, 'required_scope'],
    ] as const) {
      const r = await verifyCall(s.config.issuer, q, auth);
      assert.equal(r.status, 400, q);
      assert.equal(JSON.parse(r.text).error, 'invalid_request', q);
      assert.match(JSON.parse(r.text).error_description, new RegExp(`^${field}:`), q);
    }
  });

  test('check_revocation=1: a revoked login is refused within FORWARD_AUTH_CACHE_SECONDS; without it the token verifies offline until exp', async () => {
    const t = await passwordToken(`${s.config.issuer}/token`, client, user);
    assert.equal((await verifyCall(s.config.issuer, '?check_revocation=1', bearer(t))).status, 200, 'cached as holding');
    await s.services.accounts.revokeSessions(user.id, { actor: 'test' });
    const revokedAt = Date.now();
    const refused = await eventually(async () => {
      const r = await verifyCall(s.config.issuer, '?check_revocation=1', bearer(t));
      return r.status === 401 && r;
    }, 10_000, 'the revoked login to be refused');
    const seenAfterMs = Date.now() - revokedAt;
    assert.ok(seenAfterMs <= CACHE_SECONDS * 1000 + 500, `refused ${seenAfterMs} ms after the revocation`);
    assert.match(refused.challenge, /error="invalid_token", error_description="the access token has been revoked"/);
    assert.equal((await verifyCall(s.config.issuer, '', bearer(t))).status, 200, 'offline: valid until exp (documented)');
  });

  test('check_revocation=1 with requests in flight during the revocation: nothing that starts later than the cache time after it passes', async () => {
    const victim = await s.user({ roles: ['viewer'] });
    const t = bearer(await passwordToken(`${s.config.issuer}/token`, client, victim));
    let revokedAt = Infinity;
    const late: number[] = [];
    let answered = 0;
    const deadline = Date.now() + 1000 + CACHE_SECONDS * 1000 + 1500;
    const worker = async () => {
      while (Date.now() < deadline) {
        const startedAt = Date.now();
        const r = await verifyCall(s.config.issuer, '?check_revocation=1', t);
        answered++;
        assert.ok(r.status === 200 || r.status === 401, `status ${r.status}`);
        if (r.status === 200 && startedAt > revokedAt + CACHE_SECONDS * 1000) late.push(startedAt - revokedAt);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 1000));
    await s.services.accounts.revokeSessions(victim.id, { actor: 'test' });
    revokedAt = Date.now();
    await Promise.all(workers);
    assert.ok(answered > 50, `${answered} answers`);
    assert.deepEqual(late, [], 'requests started this many ms after the revocation still passed');
    assert.equal((await verifyCall(s.config.issuer, '?check_revocation=1', t)).status, 401);
  });
});

describe('GET /verify?check_revocation=1 with Postgres down', () => {
  let db: Awaited<ReturnType<typeof databaseBehindProxy>>;
  let s: TestService;
  before(async () => {
    db = await databaseBehindProxy();
    s = await startTestService({ FORWARD_AUTH_CACHE_SECONDS: '0' }, { databaseUrl: db.url });
  });
  after(async () => {
    await s.stop();
    await db.drop();
  });

  test('fails closed with 503 + Retry-After (never 200, never 500); offline checks keep answering; back up → 200', async () => {
    const client = await s.client();
    const user = await s.user();
    const auth = `Bearer ${await passwordToken(`${s.config.issuer}/token`, client, user)}`;
    assert.equal((await verifyCall(s.config.issuer, '?check_revocation=1', auth)).status, 200);

    await db.proxy.down();
    const started = Date.now();
    const down = await verifyCall(s.config.issuer, '?check_revocation=1', auth);
    assert.equal(down.status, 503, down.text);
    assert.match(down.challenge, /error="temporarily_unavailable"/);
    assert.ok(Number(down.retryAfter) >= 1, 'Retry-After');
    assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
    assert.equal(down.identity.subject, null);
    assert.equal((await verifyCall(s.config.issuer, '', auth)).status, 200, 'offline verification needs no database');

    await db.proxy.up();
    await eventually(async () => (await verifyCall(s.config.issuer, '?check_revocation=1', auth)).status === 200, 10_000, 'Postgres back');
  });
});
