// A service process killed with SIGKILL in the middle of parallel refreshes
// never leaves two live refresh tokens in one family: rotation (consume and
// successor) is one atomic Redis script, so a crash leaves the presented
// token or its successor live, never both and never neither.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import { Redis } from 'ioredis';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createUser } from '../src/accounts/users.ts';
import { loadConfig } from '../src/config/index.ts';
import { createDb } from '../src/store/postgres.ts';
import { createClient } from '../src/clients/index.ts';
import { basic, freePort, freshDatabase, postForm, REDIS_URL, startTestService } from './support/service.ts';
import { sleep } from './support/security.ts';

let database: Awaited<ReturnType<typeof freshDatabase>>;
let redis: Redis;
const prefix = `test:${randomBytes(6).toString('hex')}:`;

before(async () => {
  database = await freshDatabase();
  redis = new Redis(REDIS_URL);
});
after(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.unlink(...keys);
  redis.disconnect();
  await database.drop();
});

test('SIGKILL during parallel refreshes: at most one live refresh token per family', async () => {
  const port = await freePort();
  const env = {
    ...process.env,
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    DATABASE_POOL_MAX: '4',
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PORT: String(port),
    ADMIN_PORT: '0',
    ISSUER: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'warn',
    // Parallel presentations of one token get the one rotation's response
    // instead of revoking the family, so every family keeps rotating.
    REFRESH_REUSE_GRACE_SECONDS: '5',
  };
  const config = loadConfig(env);
  const db = createDb(database.url, 2);
  const client = await createClient(db, { id: 'gw', grantTypes: ['password', 'refresh_token'], scopes: ['api:read'] }, config.scopes);
  const user = await createUser(db, new PasswordHasher(config.argon2), { email: 'kill@example.com', password: 'correct horse battery' });
  await db.$disconnect();

  const child = spawn(process.execPath, ['src/cli.ts', 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  try {
    const issuer = config.issuer;
    for (let i = 0; i < 100; i++) {
      const up = await fetch(`${issuer}/jwks`).then((r) => r.ok, () => false);
      if (up) break;
      await sleep(200);
    }
    const auth = { authorization: basic(client.client_id, client.client_secret) };
    const families: { grantId: string; rt: string; seen: string[] }[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await postForm(`${issuer}/token`, { grant_type: 'password', username: user.email, password: 'correct horse battery' }, auth);
      assert.equal(r.status, 200, r.text);
      const rt = r.body.refresh_token as string;
      families.push({ grantId: decodeJwt(r.body.access_token as string).grant_id as string, rt, seen: [rt] });
    }

    // Every family rotates continuously, 3 parallel presentations per round.
    let rounds = 0;
    const churn = families.map(async (family) => {
      for (let round = 0; round < 1000; round++) {
        const results = await Promise.all(
          Array.from({ length: 3 }, () =>
            postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: family.rt }, auth).catch(() => null),
          ),
        );
        const winner = results.find((r) => r?.status === 200);
        if (!winner) return;
        family.rt = winner.body.refresh_token as string;
        family.seen.push(family.rt);
        rounds++;
      }
    });
    for (let i = 0; rounds < 12 && i < 500; i++) await sleep(20);
    child.kill('SIGKILL');
    await Promise.all(churn);
    await exited;
    assert.ok(rounds >= 12, `only ${rounds} rotations before the kill`);

    // Every token a client ever held, introspected by a fresh service on the
    // same database and Redis prefix: at most one is live per family.
    const fresh = await startTestService(
      { REDIS_KEY_PREFIX: prefix, KEY_ENCRYPTION_KEY: env.KEY_ENCRYPTION_KEY, LOG_LEVEL: 'warn' },
      { databaseUrl: database.url },
    );
    try {
      const gateway = { authorization: basic(client.client_id, client.client_secret) };
      let liveTotal = 0;
      for (const { grantId, seen } of families) {
        let live = 0;
        for (const token of seen) {
          const r = await postForm(`${fresh.config.issuer}/token/introspection`, { token }, gateway);
          assert.equal(r.status, 200, r.text);
          if (r.body.active === true) live++;
        }
        assert.ok(live <= 1, `grant ${grantId} has ${live} live refresh tokens`);
        liveTotal += live;
      }
      assert.ok(liveTotal >= 1, 'the check sees live tokens at all');
    } finally {
      await fresh.stop();
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
