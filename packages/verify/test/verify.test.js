// The package on its own (node:test and jose only): tokens signed here with
// jose, verified through verifyRequest() and the middleware over real
// node:http servers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier, requireAuth, requireScope, sendError } from '../index.js';

const issuer = 'https://id.example.test';
const audience = 'https://api.example.test';
const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const keys = { keys: [jwk] };

const token = (claims = {}, header = {}) =>
  new SignJWT({ client_id: 'gw', scope: 'api:read', roles: ['viewer'], jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', ...header })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject('user-1')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);

test('verifyRequest: a valid token gives auth; node:http, plain objects and Fetch Requests alike', async () => {
  const { verifyRequest } = createVerifier({ issuer, audience, keys });
  const t = await token();
  for (const req of [{ headers: { authorization: `Bearer ${t}` } }, new Request('http://x/', { headers: { authorization: `Bearer ${t}` } })]) {
    const r = await verifyRequest(req);
    assert.equal(r.ok, true);
    assert.equal(r.ok && r.auth.subject, 'user-1');
    assert.deepEqual(r.ok && r.auth.scopes, ['api:read']);
  }
});

test('verifyRequest: each refusal is the RFC 6750 answer', async () => {
  const { verifyRequest } = createVerifier({ issuer, audience, keys, realm: 'api' });
  const none = await verifyRequest({ headers: {} });
  assert.deepEqual(none, { ok: false, status: 401, error: 'unauthorized', description: 'a Bearer access token is required', headers: { 'WWW-Authenticate': 'Bearer realm="api"' } });
  const malformed = await verifyRequest({ headers: { authorization: 'Bearer a b' } });
  assert.equal(malformed.ok === false && malformed.status, 400);
  const wrongTyp = await verifyRequest({ headers: { authorization: `Bearer ${await token({}, { typ: 'JWT' })}` } });
  assert.equal(wrongTyp.ok === false && wrongTyp.error, 'invalid_token');
  const otherService = createVerifier({ issuer, audience: 'https://other.example.test', keys });
  const otherAudience = await otherService.verifyRequest({ headers: { authorization: `Bearer ${await token()}` } });
  assert.equal(otherAudience.ok === false && otherAudience.status, 401);
  const tampered = (await token()).slice(0, -4) + 'AAAA';
  assert.equal((await verifyRequest({ headers: { authorization: `Bearer ${tampered}` } })).ok, false);
});

test('verifyRequest: a revocation check that cannot answer is 503 with Retry-After (fail closed)', async () => {
  const { verifyRequest } = createVerifier({ issuer, audience, keys, isRevoked: async () => { throw new Error('down'); } });
  const r = await verifyRequest({ headers: { authorization: `Bearer ${await token()}` } });
  assert.equal(r.ok === false && r.status, 503);
  assert.equal(r.ok === false && r.headers['Retry-After'], '1');
});

test('requireAuth + requireScope over node:http, and sendError for verifyRequest', async () => {
  const guard = requireAuth({ issuer, audience, keys });
  const scope = requireScope('api:write');
  const { verifyRequest } = createVerifier({ issuer, audience, keys });
  const server = createServer(async (req, res) => {
    if (req.url === '/raw') {
      const r = await verifyRequest(req);
      if (!r.ok) return sendError(res, r);
      return res.end(r.auth.subject);
    }
    guard(req, res, () => (req.url === '/write' ? scope(req, res, () => res.end('written')) : res.end(req.auth.subject)));
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const auth = { authorization: `Bearer ${await token()}` };
    assert.equal(await (await fetch(`${base}/read`, { headers: auth })).text(), 'user-1');
    assert.equal(await (await fetch(`${base}/raw`, { headers: auth })).text(), 'user-1');
    const write = await fetch(`${base}/write`, { headers: auth });
    assert.equal(write.status, 403);
    assert.match(write.headers.get('www-authenticate'), /error="insufficient_scope"/);
    const raw = await fetch(`${base}/raw`);
    assert.equal(raw.status, 401);
    assert.equal(raw.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await raw.json(), { error: 'unauthorized', error_description: 'a Bearer access token is required' });
  } finally {
    server.close();
  }
});
