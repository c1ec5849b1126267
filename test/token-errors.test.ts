// Every malformed token request gets its RFC 6749 §5.2 error: never a 500,
// never a stack trace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gateway: { id: string; secret: string };
let service: { id: string; secret: string };
let user: Awaited<ReturnType<TestService['user']>>;
let tokenUrl: string;

before(async () => {
  svc = await startTestService();
  gateway = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read'] });
  service = await svc.client({ grantTypes: ['client_credentials'], scopes: ['api:read'] });
  user = await svc.user();
  tokenUrl = `${svc.config.issuer}/token`;
});
after(() => svc.stop());

const asGateway = () => ({ authorization: basic(gateway.id, gateway.secret) });
const login = () => ({ grant_type: 'password', username: user.email, password: user.password });

async function expectError(
  res: Awaited<ReturnType<typeof postForm>>,
  status: number,
  error: string,
): Promise<void> {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.error, error, res.text);
  assert.equal(typeof res.body.error_description, 'string');
  assert.ok(!/\bat .*\.(ts|js):\d+/.test(res.text), 'no stack trace');
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
}

test('missing grant_type → invalid_request', async () => {
  await expectError(await postForm(tokenUrl, { username: user.email, password: user.password }, asGateway()), 400, 'invalid_request');
});

test('missing username or password → invalid_request', async () => {
  await expectError(await postForm(tokenUrl, { grant_type: 'password', username: user.email }, asGateway()), 400, 'invalid_request');
  await expectError(await postForm(tokenUrl, { grant_type: 'password', password: 'x' }, asGateway()), 400, 'invalid_request');
});

test('duplicated parameters → invalid_request', async () => {
  const form = `grant_type=password&username=${encodeURIComponent(user.email)}&username=other%40example.com&password=${encodeURIComponent(user.password)}`;
  await expectError(await postForm(tokenUrl, form, asGateway()), 400, 'invalid_request');
  await expectError(await postForm(tokenUrl, 'grant_type=password&grant_type=password', asGateway()), 400, 'invalid_request');
});

test('a JSON body → invalid_request', async () => {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...asGateway() },
    body: JSON.stringify(login()),
  });
  const body = (await res.json()) as { error: string };
  assert.equal(res.status, 400);
  assert.equal(body.error, 'invalid_request');
});

test('unknown grant type → unsupported_grant_type', async () => {
  await expectError(await postForm(tokenUrl, { grant_type: 'magic' }, asGateway()), 400, 'unsupported_grant_type');
});

test('a client not allowed the password grant → unauthorized_client', async () => {
  await expectError(
    await postForm(tokenUrl, login(), { authorization: basic(service.id, service.secret) }),
    400,
    'unauthorized_client',
  );
  await expectError(await postForm(tokenUrl, { grant_type: 'client_credentials' }, asGateway()), 400, 'unauthorized_client');
});

test('bad client credentials → 401 invalid_client with WWW-Authenticate', async () => {
  const wrongSecret = await postForm(tokenUrl, login(), { authorization: basic(gateway.id, 'not-the-secret') });
  await expectError(wrongSecret, 401, 'invalid_client');
  assert.match(wrongSecret.headers.get('www-authenticate') ?? '', /^Basic /);

  const unknownClient = await postForm(tokenUrl, login(), { authorization: basic('no-such-client', 'x') });
  await expectError(unknownClient, 401, 'invalid_client');
  assert.match(unknownClient.headers.get('www-authenticate') ?? '', /^Basic /);

  // The digest itself is not a credential.
  const row = await svc.stores.db.client.findUniqueOrThrow({ where: { id: gateway.id } });
  await expectError(await postForm(tokenUrl, login(), { authorization: basic(gateway.id, row.secretHash) }), 401, 'invalid_client');

  await expectError(await postForm(tokenUrl, { ...login(), client_id: gateway.id, client_secret: 'nope' }), 401, 'invalid_client');
  await expectError(await postForm(tokenUrl, login()), 401, 'invalid_client'); // no client authentication at all (RFC 6749 §5.2)
});

test('client secrets are stored only as a digest', async () => {
  const row = await svc.stores.db.client.findUniqueOrThrow({ where: { id: gateway.id } });
  assert.notEqual(row.secretHash, gateway.secret);
  assert.ok(!JSON.stringify(row).includes(gateway.secret));
});

test('a scope the client was not granted → invalid_scope', async () => {
  await expectError(await postForm(tokenUrl, { ...login(), scope: 'api:write' }, asGateway()), 400, 'invalid_scope');
  await expectError(await postForm(tokenUrl, { ...login(), scope: 'made-up' }, asGateway()), 400, 'invalid_scope');
});

test('refresh with a missing or garbage token → invalid_request / invalid_grant', async () => {
  await expectError(await postForm(tokenUrl, { grant_type: 'refresh_token' }, asGateway()), 400, 'invalid_request');
  await expectError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: 'garbage' }, asGateway()), 400, 'invalid_grant');
});

test('hostile input never produces a 5xx', async () => {
  const bodies: Record<string, string>[] = [
    { ...login(), username: "' OR 1=1; --" },
    { ...login(), username: 'a'.repeat(10_000) },
    { ...login(), password: 'p'.repeat(100_000) },
    { ...login(), username: 'x@example.com\u0000' },
    { grant_type: 'refresh_token', refresh_token: '../../etc/passwd' },
    { grant_type: 'password', username: '', password: '' },
  ];
  for (const body of bodies) {
    const res = await postForm(tokenUrl, body, asGateway());
    assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
  }
  const invalidEncoding = await postForm(tokenUrl, 'grant_type=password&username=%E0%A4%A&password=x', asGateway());
  assert.ok(invalidEncoding.status >= 400 && invalidEncoding.status < 500, invalidEncoding.text);
});
