// /readyz on the admin port: Postgres, Redis, signing key, not draining.
// Turns 503 when Redis goes away and 200 again when it returns (own
// redis-server, so stopping it disturbs no other test), and 503 as soon as
// the service starts draining while /livez stays 200.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort, OwnRedis, startTestService, type TestService } from './support/service.ts';

let redis: OwnRedis;
let svc: TestService;

const ready = async () => {
  const res = await fetch(`${svc.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, boolean> } };
};

async function until(want: number): Promise<Awaited<ReturnType<typeof ready>>> {
  const deadline = Date.now() + 15_000;
  let r = await ready();
  while (r.status !== want && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 200));
    r = await ready();
  }
  return r;
}

before(async () => {
  redis = new OwnRedis(await freePort());
  await redis.start();
  svc = await startTestService({ REDIS_URL: redis.url, SHUTDOWN_DELAY_MS: '1500' });
});
after(async () => {
  await svc.stop().catch(() => {});
  await redis.stop();
});

test('ready: every check is reported and true', async () => {
  const r = await ready();
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok', checks: { postgres: true, redis: true, signingKey: true, notDraining: true } });
});

test('Redis down → 503 naming redis, /livez still 200; Redis back → 200', async () => {
  await redis.stop();
  const down = await until(503);
  assert.equal(down.status, 503);
  assert.equal(down.body.checks.redis, false);
  assert.equal(down.body.checks.postgres, true);
  assert.equal((await fetch(`${svc.adminUrl}/livez`)).status, 200);
  const metrics = await (await fetch(`${svc.adminUrl}/metrics`)).text();
  assert.match(metrics, /^identity_redis_errors_total\{kind="readiness"\} [1-9]/m);

  await redis.start();
  const back = await until(200);
  assert.equal(back.status, 200, JSON.stringify(back.body));
});

test('draining: readiness is 503 at once while requests are still served', async () => {
  const closing = svc.close();
  const r = await ready();
  assert.equal(r.status, 503);
  assert.equal(r.body.checks.notDraining, false);
  assert.equal(r.body.checks.redis, true);
  const jwks = await fetch(`${svc.config.issuer}/jwks`);
  assert.equal(jwks.status, 200, 'still serving during SHUTDOWN_DELAY_MS');
  assert.equal(jwks.headers.get('connection'), 'close', 'keep-alive connections are closed while draining');
  await closing;
  await assert.rejects(fetch(`${svc.config.issuer}/jwks`), 'the port is closed after the drain');
});
