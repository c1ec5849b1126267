// identity-service/verify through the example service: guards, RFC 6750
// errors, and tokens an attacker could craft. Nothing here may be accepted,
// and nothing may answer 500.
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { requireAuth } from '@identity-service/verify';
import { startTestService, type TestService } from './support/service.ts';
import { activePrivateKey, call, passwordToken, startExample, type Example } from './support/verify.ts';

let s: TestService;
let example: Example;
let client: { id: string; secret: string };
let viewer: { email: string; password: string };
let admin: { email: string; password: string };
let good: string;
let signer: Awaited<ReturnType<typeof activePrivateKey>>;

before(async () => {
  s = await startTestService();
  example = await startExample({ issuer: s.config.issuer, audience: s.config.audience, cooldownDuration: 500 });
  client = await s.client({ scopes: ['api:read'] });
  viewer = await s.user({ roles: ['viewer'] });
  admin = await s.user({ roles: ['admin'] });
  good = await passwordToken(`${s.config.issuer}/token`, client, viewer);
  signer = await activePrivateKey(s);
});
after(async () => {
  await example.close();
  await s.stop();
});

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: s.config.issuer,
    aud: s.config.audience,
    sub: 'forged-user',
    client_id: client.id,
    jti: randomUUID(),
    iat: now(),
    exp: now() + 300,
    scope: 'api:read api:write',
    roles: ['admin'],
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base as JWTPayload;
}

/** Signed with the service's real signing key: only the claims or header are wrong. */
function wellSigned(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid, ...header }).sign(signer.key);
}

describe('guards', () => {
  test('a valid token reaches the route with its claims on req.auth', async () => {
    const r = await call(`${example.url}/me`, good);
    assert.equal(r.status, 200);
    assert.equal(r.body.clientId, client.id);
    assert.deepEqual(r.body.scopes, ['api:read']);
    assert.deepEqual(r.body.roles, ['viewer']);
    assert.equal((await call(`${example.url}/orders`, good)).status, 200);
  });

  test('a token signed by the real key with correct claims is accepted (the forgeries below differ only in one thing)', async () => {
    assert.equal((await call(`${example.url}/admin/report`, await wellSigned(claims()))).status, 200);
  });

  test('requireScope answers 403 insufficient_scope naming the scope', async () => {
    const r = await call(`${example.url}/orders`, good, { method: 'POST' });
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'insufficient_scope');
    assert.match(r.challenge, /^Bearer .*error="insufficient_scope"/);
    assert.match(r.challenge, /scope="api:write"/);
  });

  test('requireRole answers 403 insufficient_scope without the role, 200 with it', async () => {
    const r = await call(`${example.url}/admin/report`, good);
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'insufficient_scope');
    const adminToken = await passwordToken(`${s.config.issuer}/token`, client, admin);
    assert.equal((await call(`${example.url}/admin/report`, adminToken)).status, 200);
  });

  test('no token: 401 with a bare Bearer challenge; another scheme is no token', async () => {
    for (const authorization of [undefined, `Basic ${Buffer.from('a:b').toString('base64')}`]) {
      const r = await call(`${example.url}/me`, undefined, authorization ? { authorization } : {});
      assert.equal(r.status, 401);
      assert.equal(r.challenge, 'Bearer');
    }
  });

  test('a malformed Bearer header is 400 invalid_request', async () => {
    const r = await call(`${example.url}/me`, undefined, { authorization: `Bearer ${good} extra` });
    assert.equal(r.status, 400);
    assert.match(r.challenge, /error="invalid_request"/);
  });

  test('an unreachable issuer is 503, never 500 or a pass', async () => {
    const other = await startExample({ issuer: s.config.issuer, audience: s.config.audience, jwksUri: 'http://127.0.0.1:9/jwks', timeoutDuration: 1000 });
    try {
      const r = await call(`${other.url}/me`, good);
      assert.equal(r.status, 503);
      assert.equal(r.body.error, 'temporarily_unavailable');
    } finally {
      await other.close();
    }
  });

  test('keys: a key set the caller holds, no JWKS fetch; a token of a key not in it is 401', async () => {
    const jwks = (await (await fetch(`${s.config.issuer}/jwks`)).json()) as { keys: JWK[] };
    // jwksUri points nowhere: only the given keys can verify.
    const local = await startExample({ issuer: s.config.issuer, audience: s.config.audience, jwksUri: 'http://127.0.0.1:9/jwks', keys: jwks });
    const none = await startExample({ issuer: s.config.issuer, audience: s.config.audience, keys: { keys: [] } });
    try {
      assert.equal((await call(`${local.url}/me`, good)).status, 200);
      const r = await call(`${none.url}/me`, good);
      assert.equal(r.status, 401);
      assert.match(r.challenge, /not signed by a key of the issuer/);
    } finally {
      await Promise.all([local.close(), none.close()]);
    }
    assert.throws(() => requireAuth({ issuer: s.config.issuer, audience: 'x', keys: 'nope' as never }), TypeError);
  });

  test('isRevoked: true is 401 invalid_token, a failing check is 503, false passes', async () => {
    const seen: string[] = [];
    const hooked = (answer: () => Promise<boolean>) =>
      startExample({
        issuer: s.config.issuer,
        audience: s.config.audience,
        isRevoked: (auth) => (seen.push(auth.claims.grant_id as string), answer()),
      });
    const revoked = await hooked(async () => true);
    const failing = await hooked(async () => {
      throw new Error('source of truth down');
    });
    const alive = await hooked(async () => false);
    try {
      const r = await call(`${revoked.url}/me`, good);
      assert.equal(r.status, 401);
      assert.match(r.challenge, /error="invalid_token".*revoked/);
      const f = await call(`${failing.url}/me`, good);
      assert.equal(f.status, 503);
      assert.equal(f.body.error, 'temporarily_unavailable');
      assert.equal((await call(`${alive.url}/me`, good)).status, 200);
      assert.ok(seen.length === 3 && seen.every((g) => typeof g === 'string' && g.length > 0), 'the hook sees the grant_id');
    } finally {
      await Promise.all([revoked.close(), failing.close(), alive.close()]);
    }
  });

  test('requireAuth refuses symmetric or "none" algorithms in its allowlist', () => {
    for (const algorithms of [['none'], ['HS256'], []]) {
      assert.throws(() => requireAuth({ issuer: s.config.issuer, audience: 'x', algorithms }), TypeError);
    }
  });
});

describe('attacks: all 401 invalid_token, none accepted, none 500', () => {
  const attacks: Record<string, () => Promise<string>> = {
    'alg none': async () => `${b64({ alg: 'none', typ: 'at+jwt', kid: signer.kid })}.${b64(claims())}.`,
    'HS256 keyed with the public JWK': async () => hs256(JSON.stringify(signer.publicJwk)),
    'HS256 keyed with the public key PEM': async () =>
      hs256(createPublicKey({ key: signer.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()),
    'unknown kid': async () => attackerSigned({ kid: 'no-such-key' }),
    'the real kid, signed by another key': async () => attackerSigned({ kid: signer.kid }),
    'tampered payload': async () => {
      const [h, , sig] = good.split('.');
      const payload = JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      return `${h}.${b64({ ...payload, roles: ['admin'] })}.${sig}`;
    },
    expired: async () => wellSigned(claims({ iat: now() - 3600, exp: now() - 600 })),
    'nbf in the future': async () => wellSigned(claims({ nbf: now() + 600 })),
    'missing exp': async () => wellSigned(claims({ exp: undefined })),
    'missing client_id': async () => wellSigned(claims({ client_id: undefined })),
    'wrong iss': async () => wellSigned(claims({ iss: 'https://evil.example' })),
    'wrong aud': async () => wellSigned(claims({ aud: 'api://another-service' })),
    'wrong typ (an ID token)': async () => wellSigned(claims(), { typ: 'JWT' }),
    'no typ (a plain JWT)': async () => wellSigned(claims(), { typ: undefined }),
    'jwk header with the attacker key': async () => attackerSigned({ kid: 'attacker', embed: 'jwk' }),
    'jku header pointing elsewhere': async () => attackerSigned({ kid: 'attacker', embed: 'jku' }),
    'x5u header pointing elsewhere': async () => attackerSigned({ kid: signer.kid, embed: 'x5u' }),
    'not a JWT': async () => 'not-a-jwt',
    'garbage segments': async () => 'abc.def.ghi',
  };

  function hs256(secret: string): string {
    const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: signer.kid })}.${b64(claims())}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  }

  async function attackerSigned(opts: { kid: string; embed?: 'jwk' | 'jku' | 'x5u' }): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: opts.kid, alg: 'ES256' };
    const header: Record<string, unknown> = { alg: 'ES256', typ: 'at+jwt', kid: opts.kid };
    if (opts.embed === 'jwk') header.jwk = jwk;
    if (opts.embed === 'jku') header.jku = 'http://127.0.0.1:9/attacker-jwks';
    if (opts.embed === 'x5u') header.x5u = 'http://127.0.0.1:9/attacker-cert';
    return new SignJWT(claims()).setProtectedHeader(header as never).sign(privateKey);
  }

  for (const [name, make] of Object.entries(attacks)) {
    test(name, async () => {
      const token = await make();
      for (const path of ['/me', '/admin/report']) {
        const r = await call(`${example.url}${path}`, token);
        assert.equal(r.status, 401, `${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, 'invalid_token');
        assert.match(r.challenge, /^Bearer error="invalid_token", error_description="[^"]+"$/);
      }
    });
  }
});
