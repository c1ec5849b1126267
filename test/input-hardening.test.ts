// Input hardening: bounded bodies and headers, duplicated parameters,
// array/object-style fields, invalid UTF-8, NUL and control characters all
// get a 4xx before any OAuth logic; SQL metacharacters are just characters;
// and random form bodies on every public endpoint never produce a 5xx.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';
import type { TestClient } from './support/security.ts';

let svc: TestService;
let gw: TestClient;
let auth: Record<string, string>;
before(async () => {
  svc = await startTestService({ LOGIN_IP_MAX_FAILURES: '1000000', LOGIN_USER_MAX_FAILURES: '1000000', LOGIN_FREE_FAILURES: '100' });
  gw = await svc.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'] });
  auth = { authorization: basic(gw.id, gw.secret) };
});
after(() => svc.stop());

/** Raw bytes to a path: fetch cannot send invalid UTF-8 or arbitrary header sizes. */
function raw(path: string, body: Buffer | string, headers: Record<string, string> = {}, method = 'POST') {
  const url = new URL(path, svc.config.issuer);
  return new Promise<{ status: number; text: string; headers: Record<string, unknown> }>((resolve, reject) => {
    const req = request(url, { method, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const token = (form: string) => postForm(`${svc.config.issuer}/token`, form, auth);

describe('rejected with 400 invalid_request', () => {
  const cases: Record<string, string> = {
    'a duplicated parameter': 'grant_type=password&username=a%40example.com&username=b%40example.com&password=x',
    'a duplicated grant_type': 'grant_type=password&grant_type=client_credentials&username=a&password=x',
    'an array-style field': 'grant_type=password&username[]=a%40example.com&password=x',
    'an object-style field': 'grant_type=password&username[$ne]=x&password=x',
    'a NUL byte': 'grant_type=password&username=a%00%40example.com&password=x',
    'a control character': 'grant_type=password&username=a%40example.com&password=x%1B[2J',
    'invalid UTF-8 (percent-encoded)': 'grant_type=password&username=a%40example.com&password=%C3%28',
    'an encoded lone surrogate': 'grant_type=password&username=a%40example.com&password=%ED%A0%80',
    'malformed percent-encoding': 'grant_type=password&username=a%40example.com&password=%zz',
  };
  for (const [name, form] of Object.entries(cases)) {
    test(name, async () => {
      const res = await token(form);
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.error, 'invalid_request');
    });
  }

  test('raw invalid UTF-8 bytes in the body', async () => {
    const res = await raw('/token', Buffer.concat([Buffer.from('grant_type=password&username=a&password='), Buffer.from([0xff, 0xfe])]), auth);
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.text).error, 'invalid_request');
  });

  test('a control character in the query string', async () => {
    const res = await fetch(`${svc.config.issuer}/jwks?x=%07`);
    assert.equal(res.status, 400);
  });

  test('a JSON body instead of a form', async () => {
    const res = await raw('/token', JSON.stringify({ grant_type: 'password', username: ['a'], password: { $gt: '' } }), {
      ...auth,
      'content-type': 'application/json',
    });
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.text).error, 'invalid_request');
  });
});

describe('size bounds', () => {
  test('a body over HTTP_MAX_BODY_BYTES: 413', async () => {
    const res = await token(`grant_type=password&username=a&password=${'x'.repeat(20_000)}`);
    assert.equal(res.status, 413);
    assert.equal(res.body.error, 'invalid_request');
  });

  test('a chunked body over the bound, without Content-Length: 413', async () => {
    const res = await raw('/token', `grant_type=password&password=${'y'.repeat(20_000)}`, { ...auth, 'transfer-encoding': 'chunked' });
    assert.equal(res.status, 413);
  });

  test('headers over HTTP_MAX_HEADER_BYTES: 431', async () => {
    const res = await raw('/token', 'grant_type=password', { ...auth, 'x-padding': 'p'.repeat(10_000) });
    assert.equal(res.status, 431);
  });
});

test('SQL and NoSQL metacharacters are ordinary characters', async () => {
  for (const username of ["' OR '1'='1' --", 'a@example.com"; DROP TABLE users; --', '{"$gt":""}', "admin'--@example.com"]) {
    const res = await token(new URLSearchParams({ grant_type: 'password', username, password: "' OR 1=1 --" }).toString());
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'invalid_grant');
  }
  assert.ok((await svc.stores.db.user.count()) >= 0, 'the users table is still there');
});

test('fuzz: random form bodies on every public endpoint never produce a 5xx', async () => {
  const names = ['grant_type', 'username', 'password', 'refresh_token', 'scope', 'token', 'token_type_hint', 'client_id', 'client_secret', 'resource'];
  const value = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('password', 'refresh_token', 'client_credentials', 'api:read', gw.id, gw.secret, '', 'x'.repeat(2000)),
  );
  const form = fc.oneof(
    fc.array(fc.tuple(fc.constantFrom(...names), value), { maxLength: 6 }).map((pairs) => new URLSearchParams(pairs).toString()),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  const endpoint = fc.constantFrom('/token', '/token/introspection', '/token/revocation', '/jwks', '/.well-known/openid-configuration', '/nope');
  const withAuth = fc.boolean();
  await fc.assert(
    fc.asyncProperty(endpoint, form, withAuth, async (path, body, authed) => {
      const res = await raw(path, Buffer.from(body, 'latin1'), authed ? auth : {});
      assert.ok(res.status < 500, `${path} answered ${res.status} to ${JSON.stringify(body)}: ${res.text}`);
      if (res.status >= 400 && res.text) assert.doesNotMatch(res.text, /at .*\.(js|ts):\d+/, 'no stack trace');
    }),
    { numRuns: 150 },
  );
});
