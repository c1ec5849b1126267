// Redis Sentinel: a primary, one replica and three sentinels, started here.
// The token flow runs through the sentinels; then the primary is killed in
// the middle of refreshes and restarted once a replica has taken over.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { basic, postForm, startTestService, type TestService } from '../support/service.ts';
import { refreshThroughFailover, tokenFlow } from './flow.ts';
import { cli, sentinelPrimary, startSentinel, until, type Topology } from '../support/redis-procs.ts';

let redis: Topology;
let svc: TestService;

before(async () => {
  redis = await startSentinel();
  svc = await startTestService({ ...redis.env, REDIS_WAIT_REPLICAS: '1' });
});
after(async () => {
  await svc?.stop();
  await redis?.stop();
});

test('the token flow works through Sentinel', async () => {
  await tokenFlow(svc);
});

test('primary killed mid-refresh: fail closed during the switch, serve after it, one live token per family', async () => {
  const [primary, replica, sentinel] = redis.nodes as [NonNullable<Topology['nodes'][0]>, ...Topology['nodes']];
  assert.equal(await sentinelPrimary(sentinel!.port), primary.port);
  const outcomes = await refreshThroughFailover(svc, async () => {
    await primary.kill();
    await until('a sentinel failover', async () => (await sentinelPrimary(sentinel!.port)) === replica!.port);
    // A restarted data pod asks the sentinels for the primary and starts as its
    // replica (as Sentinel deployments' start scripts do). Left to come back as
    // an empty master, it waits for a sentinel to convert it: an INFO period
    // (10 s) plus 8 s of role reports, which under load overran the 30 s below.
    // Until it is in sync, writes are refused (min-replicas-to-write 1): 503s.
    await primary.restart([`replicaof 127.0.0.1 ${await sentinelPrimary(sentinel!.port)}`]);
    await until('the old primary to follow the new one', async () =>
      /role:slave[\s\S]*master_link_status:up/.test(await cli(primary.port, 'info', 'replication')),
    );
  });
  console.log('sentinel failover outcomes', outcomes);
});

test('no replica left: nothing is issued, and a presented refresh token is not burned', async () => {
  const client = await svc.client();
  const user = await svc.user();
  const auth = { authorization: basic(client.id, client.secret) };
  const token = (form: Record<string, string>) => postForm(`${svc.config.issuer}/token`, form, auth);
  const login = await token({ grant_type: 'password', username: user.email, password: user.password });
  assert.equal(login.status, 200, login.text);

  const roles = await Promise.all(redis.nodes.slice(0, 2).map(async (n) => ((await cli(n.port, 'role')).startsWith('slave') ? n : undefined)));
  const replica = roles.find((n) => n !== undefined)!;
  await replica.kill();
  const refused = await token({ grant_type: 'password', username: user.email, password: user.password });
  assert.equal(refused.status, 503, refused.text);
  assert.equal(refused.body.access_token, undefined);
  const refresh = () => token({ grant_type: 'refresh_token', refresh_token: login.body.refresh_token as string });
  assert.equal((await refresh()).status, 503);

  await replica.restart([`replicaof 127.0.0.1 ${await sentinelPrimary(redis.nodes[2]!.port)}`]);
  await until('the replica to sync', async () => /master_link_status:up/.test(await cli(replica.port, 'info', 'replication')));
  const again = await refresh();
  assert.equal(again.status, 200, again.text);
});
