// Three replicas of the service (three servers on three ports) on one
// Postgres database and one Redis prefix: any replica serves any request.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import * as oauth from 'openid-client';
import { basic, freshDatabase, postForm, startTestService, type TestService } from './support/service.ts';

let db: Awaited<ReturnType<typeof freshDatabase>>;
let replicas: TestService[] = [];

before(async () => {
  db = await freshDatabase();
  const shared = { KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'), REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:` };
  replicas = await Promise.all([1, 2, 3].map(() => startTestService(shared, { databaseUrl: db.url })));
});
after(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await db?.drop();
});

async function setup() {
  const [a, b, c] = replicas as [TestService, TestService, TestService];
  const client = await a.client();
  const user = await b.user();
  const conf = await Promise.all([a, b, c].map((r) => r.oauth(client)));
  const login = () => oauth.genericGrantRequest(conf[0]!, 'password', { username: user.email, password: user.password });
  return { conf: conf as [oauth.Configuration, oauth.Configuration, oauth.Configuration], user, login };
}

test('three replicas on distinct ports', () => {
  assert.equal(new Set(replicas.map((r) => r.publicUrl)).size, 3);
});

test('a token issued by one replica refreshes on another and introspects on the third', async () => {
  const { conf, user, login } = await setup();
  const issued = await login();
  const refreshed = await oauth.refreshTokenGrant(conf[1], issued.refresh_token!);
  const seen = await oauth.tokenIntrospection(conf[2], refreshed.refresh_token!);
  assert.equal(seen.active, true);
  assert.equal(seen.sub, user.id);
  assert.equal((await oauth.tokenIntrospection(conf[2], issued.refresh_token!)).active, false);
});

test('reuse on one replica revokes the family everywhere', async () => {
  const { conf, login } = await setup();
  const first = await login();
  const second = await oauth.refreshTokenGrant(conf[1], first.refresh_token!);
  await assert.rejects(oauth.refreshTokenGrant(conf[2], first.refresh_token!), { error: 'invalid_grant' });
  for (const c of conf) assert.equal((await oauth.tokenIntrospection(c, second.refresh_token!)).active, false);
});

test('parallel refreshes of one token spread over the replicas: exactly one succeeds', async () => {
  const { conf, login } = await setup();
  const { refresh_token: rt } = await login();
  const results = await Promise.allSettled(Array.from({ length: 21 }, (_, i) => oauth.refreshTokenGrant(conf[i % 3]!, rt!)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { error?: string }).error, 'invalid_grant');
});

test('a token revoked on one replica is dead on the others', async () => {
  const { conf, login } = await setup();
  const { refresh_token: rt } = await login();
  await oauth.tokenRevocation(conf[1], rt!);
  assert.equal((await oauth.tokenIntrospection(conf[2], rt!)).active, false);
  await assert.rejects(oauth.refreshTokenGrant(conf[0], rt!), { error: 'invalid_grant' });
});

// Client rows are cached in each replica under a version kept in Redis
// (src/tokens/client-adapter.ts): a change made through another replica must
// be seen by the very next request, not when the cache entry ages out.
test('a client change on one replica is seen at once by the others, whose cache holds the old row', async () => {
  const [a, b, c] = replicas as [TestService, TestService, TestService];
  const client = await a.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'] });
  const user = await a.user();
  const auth = (secret: string) => ({ authorization: basic(client.id, secret) });
  const cc = (r: TestService, secret: string) => postForm(`${r.publicUrl}/token`, { grant_type: 'client_credentials', scope: 'api:read' }, auth(secret));
  const refresh = (r: TestService, secret: string, rt: string) =>
    postForm(`${r.publicUrl}/token`, { grant_type: 'refresh_token', refresh_token: rt }, auth(secret));
  const login = await postForm(`${b.publicUrl}/token`, { grant_type: 'password', username: user.email, password: user.password }, auth(client.secret));
  assert.equal(login.status, 200);
  // b and c have the row cached now.
  assert.equal((await cc(b, client.secret)).status, 200);
  assert.equal((await cc(c, client.secret)).status, 200);

  // A new secret, through a: the old one fails on b and c at once.
  const rotated = await a.services.clients.rotateSecret(client.id, { actor: 'test' });
  assert.equal((await cc(b, client.secret)).status, 401);
  assert.equal((await cc(c, client.secret)).status, 401);
  assert.equal((await cc(b, rotated.client_secret)).status, 200);
  const refreshed = await refresh(b, rotated.client_secret, login.body.refresh_token as string);
  assert.equal(refreshed.status, 200);
  assert.equal((await cc(c, rotated.client_secret)).status, 200);

  // A new session epoch, through c: the login's refresh token is dead on b.
  const revoked = await c.services.clients.rotateSecret(client.id, { actor: 'test' }, { revokeSessions: true });
  const after = await refresh(b, revoked.client_secret, refreshed.body.refresh_token as string);
  assert.equal(after.status, 400);
  assert.equal(after.body.error, 'invalid_grant');
  assert.equal((await cc(b, revoked.client_secret)).status, 200);

  // Deleted, through a: b refuses the client at once.
  await a.services.clients.delete(client.id, { actor: 'test' });
  const gone = await cc(b, revoked.client_secret);
  assert.equal(gone.status, 401);
  assert.equal(gone.body.error, 'invalid_client');
});
