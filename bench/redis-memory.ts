// `npm run bench:memory`: Redis memory per active login, the figure README
// quotes. LOGINS logins (one per user, all through one gateway client), each
// refreshed ROTATIONS times, then MEMORY USAGE over every key the service
// holds: the logins, the account indexes and the client index. Also the Redis
// commands one refresh costs (INFO commandstats). Loopback, the local
// Postgres, a redis-server of its own (nothing else counted).
//
// Round trips: Redis commands from INFO commandstats (scripts' inner commands
// included), Redis network writes (with auto-pipelining, commands issued in
// the same tick share one write: that is the round trip a request waits for)
// and Postgres queries, counted at the driver (pg's Client.query, which
// Prisma's adapter goes through), for refresh, client_credentials and
// introspection. The service runs in this process, so the counts are exact.
import { Socket } from 'node:net';
import pg from 'pg';
import { basic, freePort, OwnRedis, postForm, startTestService } from '../test/support/service.ts';
import { passwordLogin, refresh } from '../test/support/security.ts';

let pgQueries = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  pgQueries++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;
let redisWrites = 0;
let redisPort = 0;
const write = Socket.prototype.write;
Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
  if (this.remotePort === redisPort) redisWrites++;
  return (write as (...a: unknown[]) => boolean).apply(this, args);
} as typeof write;

const LOGINS = Number(process.env.BENCH_LOGINS ?? 200);
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 20);

const own = new OwnRedis(await freePort());
await own.start();
redisPort = own.port;
const svc = await startTestService({ REDIS_URL: own.url, LOG_LEVEL: 'warn', LOGIN_IP_MAX_FAILURES: '1000000' });
const commandStats = async () =>
  Object.fromEntries(
    (await own.cli('INFO', 'commandstats'))
      .split('\n')
      .filter((l) => l.startsWith('cmdstat_'))
      .map((l) => [l.slice(8, l.indexOf(':')), Number(/calls=(\d+)/.exec(l)![1])]),
  );
const round = (n: number) => Math.round(n * 100) / 100;
function perRequest(before: Record<string, number>, after: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([cmd, c]) => [cmd, round((c - (before[cmd] ?? 0)) / n)] as const)
      .filter(([cmd, c]) => c >= 0.01 && cmd !== 'info'),
  );
}
try {
  const redis = svc.stores.redis!;
  const client = await svc.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'] });
  const users = await Promise.all(Array.from({ length: LOGINS }, () => svc.user()));
  // Logins one at a time (the hash gate would shed parallel ones), rotations in parallel chains.
  const tokens: string[] = [];
  for (const u of users) tokens.push((await passwordLogin(svc, client, u.email, u.password)).body.refresh_token as string);
  const before = await commandStats();
  await Promise.all(
    tokens.map(async (rt) => {
      for (let i = 0; i < ROTATIONS; i++) {
        const r = await refresh(svc, client, rt);
        if (r.status !== 200) throw new Error(`refresh failed: ${r.status} ${r.text}`);
        rt = r.body.refresh_token as string;
      }
    }),
  );
  const after = await commandStats();
  const refreshes = LOGINS * ROTATIONS;
  // Commands run inside a script count too (TIME, GET, SET in the rotation).
  const perRefresh = perRequest(before, after, refreshes);

  // Sequential requests: per-request Redis writes and Postgres queries.
  const counted = async (n: number, request: () => Promise<{ status: number }>) => {
    const stats = await commandStats();
    const [w, q] = [redisWrites, pgQueries];
    for (let i = 0; i < n; i++) {
      const r = await request();
      if (r.status !== 200) throw new Error(`request failed: ${r.status}`);
    }
    const commands = perRequest(stats, await commandStats(), n);
    const total = Object.values(commands).reduce((sum, c) => sum + c, 0);
    return {
      redis_round_trips: round((redisWrites - w) / n),
      redis_commands_incl_script_inner: round(total),
      postgres_queries: round((pgQueries - q) / n),
      redis_commands_by_name: commands,
    };
  };
  const N = 200;
  let rt = (await passwordLogin(svc, client, users[0]!.email, users[0]!.password)).body.refresh_token as string;
  const roundTrips = {
    refresh: await counted(N, async () => {
      const r = await refresh(svc, client, rt);
      rt = r.body.refresh_token as string;
      return r;
    }),
    client_credentials: await counted(N, () =>
      postForm(`${svc.config.issuer}/token`, { grant_type: 'client_credentials', scope: 'api:read' }, { authorization: basic(client.id, client.secret) }),
    ),
    introspection: await counted(N, () =>
      postForm(`${svc.config.issuer}/token/introspection`, { token: rt }, { authorization: basic(client.id, client.secret) }),
    ),
  };
  const bytes: Record<string, number> = { login: 0, account: 0, client: 0 };
  for (const key of await redis.keys(`${svc.config.redisKeyPrefix}oidc:*`)) {
    const kind = key.includes(':grant:') ? 'login' : key.includes(':account:') ? 'account' : 'client';
    bytes[kind]! += Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
  }
  const total = bytes.login! + bytes.account! + bytes.client!;
  const perLogin = Math.round(total / LOGINS);
  console.log(
    JSON.stringify(
      {
        logins: LOGINS,
        rotations_each: ROTATIONS,
        redis_version: /redis_version:(\S+)/.exec(await redis.info('server'))?.[1],
        bytes_per_login: perLogin,
        of_which: {
          login_key: Math.round(bytes.login! / LOGINS),
          account_index: Math.round(bytes.account! / LOGINS),
          client_index_share: Math.round(bytes.client! / LOGINS),
        },
        per_100k_logins_mb: Math.round((perLogin * 100_000) / 2 ** 20),
        redis_commands_per_refresh: perRefresh,
        round_trips_per_request: roundTrips,
      },
      null,
      2,
    ),
  );
} finally {
  await svc.stop();
  await own.stop();
}
