// `npm run bench:memory`: Redis memory per active login, the figure README
// quotes. LOGINS logins (one per user, all through one gateway client), each
// refreshed ROTATIONS times, then MEMORY USAGE over every key the service
// holds: the logins, the account indexes and the client index. Also the Redis
// commands one refresh costs (INFO commandstats). Loopback, the local
// Postgres, a redis-server of its own (nothing else counted).
import { freePort, OwnRedis, startTestService } from '../test/support/service.ts';
import { passwordLogin, refresh } from '../test/support/security.ts';

const LOGINS = Number(process.env.BENCH_LOGINS ?? 200);
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 20);

const own = new OwnRedis(await freePort());
await own.start();
const svc = await startTestService({ REDIS_URL: own.url, LOG_LEVEL: 'warn', LOGIN_IP_MAX_FAILURES: '1000000' });
const commandStats = async () =>
  Object.fromEntries(
    (await own.cli('INFO', 'commandstats'))
      .split('\n')
      .filter((l) => l.startsWith('cmdstat_'))
      .map((l) => [l.slice(8, l.indexOf(':')), Number(/calls=(\d+)/.exec(l)![1])]),
  );
try {
  const redis = svc.stores.redis!;
  const client = await svc.client();
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
  const perRefresh = Object.fromEntries(
    Object.entries(after)
      .map(([cmd, n]) => [cmd, Math.round(((n - (before[cmd] ?? 0)) / refreshes) * 100) / 100])
      .filter(([cmd, n]) => (n as number) >= 0.01 && cmd !== 'info'),
  );
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
      },
      null,
      2,
    ),
  );
} finally {
  await svc.stop();
  await own.stop();
}
