// The JSON APIs answer errors in exactly the shape their OpenAPI document
// describes, for every status they can answer (checked with an independent
// JSON Schema validator, ajv, against the served document), and bad bodies or
// cursors are 4xx, never 500.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { adminToken, call, type Json } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';
import { databaseBehindProxy, type TcpProxy } from './support/tcp-proxy.ts';

let db: Awaited<ReturnType<typeof databaseBehindProxy>>;
let proxy: TcpProxy;
let svc: TestService;
let admin: string;
let viewer: string;
let doc: { paths: Record<string, Record<string, { responses: Record<string, Json> }>>; components: { schemas: Record<string, Json> } };
let validate: (body: unknown) => boolean;
let schemaErrors: () => unknown;

before(async () => {
  db = await databaseBehindProxy();
  proxy = db.proxy;
  svc = await startTestService({ REGISTRATION_MODE: 'open' }, { databaseUrl: db.url });
  const { token, console } = await adminToken(svc);
  admin = token;
  const user = await svc.user({ roles: ['viewer'] });
  viewer = (await console.login(user.email, user.password)).access_token;
  doc = (await (await fetch(`${svc.adminUrl}/admin/openapi.json`)).json()) as typeof doc;
  const ajv = new Ajv2020({ strict: false });
  const check = ajv.compile({ ...doc.components.schemas.Error, components: doc.components });
  validate = (body) => check(body);
  schemaErrors = () => check.errors;
});
after(async () => {
  await svc.stop();
  await db.drop();
});

/** Asserts the answer is documented for this operation and has the documented Error shape. */
function documented(res: { status: number; body: Json }, method: string, path: string, code: string): void {
  const op = doc.paths[path]?.[method.toLowerCase()];
  assert.ok(op, `${method} ${path} is in the document`);
  const response = op.responses[String(res.status)];
  assert.ok(response, `${method} ${path} documents ${res.status}: ${JSON.stringify(Object.keys(op.responses))}`);
  assert.equal(response.content?.['application/json']?.schema?.$ref, '#/components/schemas/Error', `${res.status} uses the Error schema`);
  assert.ok(validate(res.body), `${res.status} ${JSON.stringify(res.body)} fits Error: ${JSON.stringify(schemaErrors())}`);
  assert.equal(res.body.error, code, JSON.stringify(res.body));
}

test('400, 401, 403, 404, 409, 413, 415 and 503 answers match the documented Error schema', async () => {
  const a = (method: string, path: string, opts: Parameters<typeof call>[3] = {}) => call(svc.adminUrl, method, path, { token: admin, ...opts });

  const bad = await a('GET', '/admin/users?limit=0');
  documented(bad, 'GET', '/admin/users', 'validation_failed');
  assert.equal(bad.body.field, 'limit');

  const none = await call(svc.adminUrl, 'GET', '/admin/users');
  documented(none, 'GET', '/admin/users', 'unauthorized');
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  const forged = await call(svc.adminUrl, 'GET', '/admin/users', { token: `${admin.slice(0, -4)}AAAA` });
  documented(forged, 'GET', '/admin/users', 'invalid_token');
  assert.match(forged.headers.get('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/);

  const forbidden = await call(svc.adminUrl, 'GET', '/admin/users', { token: viewer });
  documented(forbidden, 'GET', '/admin/users', 'insufficient_scope');

  const missing = await a('GET', '/admin/users/00000000-0000-4000-8000-000000000000');
  documented(missing, 'GET', '/admin/users/{id}', 'not_found');

  const client = { client_id: 'dup', grant_types: ['client_credentials'] };
  assert.equal((await a('POST', '/admin/clients', { body: client })).status, 201);
  documented(await a('POST', '/admin/clients', { body: client }), 'POST', '/admin/clients', 'conflict');

  const huge = await a('POST', '/admin/users', { raw: JSON.stringify({ email: 'e@example.com', password: 'x'.repeat(100_000) }) });
  documented(huge, 'POST', '/admin/users', 'payload_too_large');

  const latin1 = await a('POST', '/admin/users', { raw: '{"email":"l@example.com"}', type: 'application/json; charset=latin1' });
  documented(latin1, 'POST', '/admin/users', 'unsupported_media_type');

  await proxy.down();
  try {
    const down = await a('GET', '/admin/users');
    documented(down, 'GET', '/admin/users', 'temporarily_unavailable');
    assert.equal(down.headers.get('retry-after'), '1');
  } finally {
    await proxy.up();
  }
});

test('an oversized audit cursor, a latin1 or compressed body are 4xx on both ports, never 500', async () => {
  const cursor = await call(svc.adminUrl, 'GET', '/admin/audit?before=9999999999999999999', { token: admin });
  assert.equal(cursor.status, 400, JSON.stringify(cursor.body));
  assert.equal(cursor.body.field, 'before');
  // The largest bigint is still a valid cursor.
  assert.equal((await call(svc.adminUrl, 'GET', '/admin/audit?before=9223372036854775807', { token: admin })).status, 200);

  const body = JSON.stringify({ email: 'c@example.com', password: 'a long enough password 1' });
  for (const [base, path, token] of [
    [svc.adminUrl, '/admin/users', admin],
    [svc.publicUrl, '/register', undefined],
  ] as const) {
    const latin1 = await call(base, 'POST', path, { token, raw: body, type: 'application/json; charset=latin1' });
    assert.equal(latin1.status, 415, `${path} latin1: ${JSON.stringify(latin1.body)}`);
    for (const encoding of ['compress', 'gzip', 'br']) {
      const res = await call(base, 'POST', path, { token, raw: body, headers: { 'content-encoding': encoding } });
      assert.ok(res.status >= 400 && res.status < 500, `${path} ${encoding}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.notEqual(res.status, 500);
    }
  }
  assert.ok(!svc.logs.text.includes('"statusCode":500'), 'no 500 logged');
});
