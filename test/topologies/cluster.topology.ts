// Redis Cluster: three masters with one replica each, started here. The token
// flow's keys spread over every master; then a master is killed in the middle
// of refreshes and restarted once its replica has taken over.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as oauth from 'openid-client';
import { startTestService, type TestService } from '../support/service.ts';
import { refreshThroughFailover, tokenFlow } from './flow.ts';
import { cli, startCluster, until, type RedisNode, type Topology } from '../support/redis-procs.ts';

let redis: Topology;
let svc: TestService;

before(async () => {
  redis = await startCluster(3);
  svc = await startTestService({ ...redis.env, REDIS_WAIT_REPLICAS: '1' });
});
after(async () => {
  await svc?.stop();
  await redis?.stop();
});

async function masters(): Promise<RedisNode[]> {
  const roles = await Promise.all(redis.nodes.map(async (n) => ((await cli(n.port, 'role').catch(() => '')).startsWith('master') ? n : undefined)));
  return roles.filter((n) => n !== undefined);
}

test('the token flow works on a 3-master Cluster, with keys on every master', async () => {
  await tokenFlow(svc);
  // tokenFlow revokes what it made; these logins stay, ~30 keys at random slots.
  const client = await svc.client();
  const user = await svc.user();
  for (let i = 0; i < 10; i++) await oauth.genericGrantRequest(await svc.oauth(client), 'password', { username: user.email, password: user.password });
  const sizes = await Promise.all((await masters()).map(async (n) => Number(await cli(n.port, 'dbsize'))));
  assert.equal(sizes.length, 3);
  assert.ok(sizes.every((s) => s > 0), `keys per master: ${sizes}`);
});

test('a master killed mid-refresh: fail closed during the switch, serve after it, one live token per family', async () => {
  const [victim] = await masters();
  const outcomes = await refreshThroughFailover(svc, async () => {
    await victim!.kill();
    await until('a replica to take over and the cluster to heal', async () => {
      const infos = await Promise.all(redis.nodes.filter((n) => n !== victim).map((n) => cli(n.port, 'cluster', 'info')));
      return infos.every((i) => i.includes('cluster_state:ok')) && (await masters()).length === 3;
    });
    await victim!.restart();
    await until('the old master to follow its replica', async () =>
      /role:slave[\s\S]*master_link_status:up/.test(await cli(victim!.port, 'info', 'replication')),
    );
  });
  console.log('cluster failover outcomes', outcomes);
});
