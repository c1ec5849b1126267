// Redis down: token requests fail closed with a fast 503, the JWKS is still
// served, and service resumes by itself when Redis returns. Uses its own
// redis-server so that stopping it cannot disturb other tests.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { basic, freePort, OwnRedis, postForm, startTestService, type TestService } from './support/service.ts';

let redis: OwnRedis;
let svc: TestService;

before(async () => {
  redis = new OwnRedis(await freePort());
  await redis.start();
  svc = await startTestService({ REDIS_URL: redis.url });
});
after(async () => {
  await svc.stop();
  await redis.stop();
});

test('Redis down → 503 within 2 s, nothing issued, JWKS served; back up → tokens again', async () => {
  const gateway = await svc.client();
  const user = await svc.user();
  const auth = { authorization: basic(gateway.id, gateway.secret) };
  const login = () => postForm(`${svc.config.issuer}/token`, { grant_type: 'password', username: user.email, password: user.password }, auth);

  const before = await login();
  assert.equal(before.status, 200, before.text);

  await redis.stop();

  const down = await login();
  assert.equal(down.status, 503, down.text);
  assert.equal(down.body.error, 'temporarily_unavailable');
  assert.equal(down.body.access_token, undefined);
  assert.ok(down.headers.get('retry-after'));
  assert.ok(down.ms < 2000, `took ${down.ms} ms`);

  const refresh = await postForm(
    `${svc.config.issuer}/token`,
    { grant_type: 'refresh_token', refresh_token: before.body.refresh_token as string },
    auth,
  );
  assert.equal(refresh.status, 503, refresh.text);
  assert.ok(refresh.ms < 2000, `took ${refresh.ms} ms`);

  const jwks = await fetch(`${svc.config.issuer}/jwks`);
  assert.equal(jwks.status, 200);

  await redis.start();
  const deadline = Date.now() + 10_000;
  let again = await login();
  while (again.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    again = await login();
  }
  assert.equal(again.status, 200, again.text);
});
