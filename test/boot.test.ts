// Boot, as an operator meets it: the service is a child process (`identity
// serve`). A configuration or resource that cannot work ends it within 5 s
// with one line naming the variable; stores that are not there yet are waited
// for (/livez 200, /readyz 503, the public port 503) and it serves as soon as
// they are, without a restart; errors name DATABASE_URL / REDIS_URL, never a
// password.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/store/migrate.ts';
import { freePort, OwnRedis, POSTGRES_URL, REDIS_URL } from './support/service.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const MIGRATIONS = readdirSync(new URL('../prisma/migrations/', import.meta.url), { withFileTypes: true }).filter((d) => d.isDirectory()).length;
const dataDir = mkdtempSync(join(tmpdir(), 'identity-boot-'));
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, DATA_DIR: dataDir, LOG_LEVEL: 'info', ...extra };
  return env;
}

/** Runs `identity serve`, expecting it to end by itself: exit code, stderr lines, milliseconds. */
function bootFails(extra: Record<string, string>) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [CLI, 'serve'], { env: baseEnv(extra), encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, lines: r.stderr.trim().split('\n'), ms: Date.now() - started, stdout: r.stdout };
}

const databaseName = () => `idboot_${randomBytes(6).toString('hex')}`;

/** Creates database `name` (dropped after the tests) and returns its URL. */
async function createDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

const emptyDatabase = () => createDatabase(databaseName());

for (const [name, env, expected] of [
  ['ADMIN_PORT equal to PORT', { PORT: '3456', ADMIN_PORT: '3456' }, /^identity: invalid configuration: ADMIN_PORT: must differ from PORT/],
  ['ISSUER without a scheme', { ISSUER: 'id.example.com' }, /^identity: invalid configuration: ISSUER: must be an http:\/\/ or https:\/\/ URL/],
  ['a HOST that is no address', { HOST: 'bad_host!' }, /^identity: invalid configuration: HOST: /],
  ['a HOST that is not on this machine', { HOST: '192.0.2.1' }, /^identity: cannot listen on 192\.0\.2\.1:\d+: HOST 192\.0\.2\.1 is not an address of this machine$/],
  ['CORS_ORIGINS that is no origin', { CORS_ORIGINS: 'not-a-url' }, /^identity: invalid configuration: CORS_ORIGINS\.0: must be a list of origins/],
  ['a production config missing its stores', { NODE_ENV: 'production' }, /^identity: invalid configuration:$/],
] as const) {
  test(`boot fails within 5 s naming the problem: ${name}`, async () => {
    const ports = { PORT: String(await freePort()), ADMIN_PORT: String(await freePort()) };
    const r = bootFails({ ...ports, ...env });
    assert.notEqual(r.status, 0);
    assert.ok(r.ms < 5000, `exited after ${r.ms} ms`);
    assert.match(r.lines[0]!, expected, r.lines.join('\n'));
    if (name !== 'a production config missing its stores') assert.equal(r.lines.length, 1, r.lines.join('\n'));
  });
}

test('boot fails within 5 s when PORT is in use (a second npm start), naming the port', async () => {
  const busy = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => busy.once('listening', r));
  const port = (busy.address() as { port: number }).port;
  try {
    const r = bootFails({ PORT: String(port), ADMIN_PORT: String(await freePort()) });
    assert.equal(r.status, 1);
    assert.ok(r.ms < 5000, `exited after ${r.ms} ms`);
    assert.deepEqual(r.lines, [`identity: cannot listen on 127.0.0.1:${port}: PORT ${port} is already in use`]);
  } finally {
    busy.close();
  }
});

type Running = { proc: ChildProcess; admin: string; public: string; log: () => { msg?: string; level: number }[]; raw: () => string };

async function serve(extra: Record<string, string>): Promise<Running> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const env = baseEnv({
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ISSUER: `http://127.0.0.1:${port}`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    SHUTDOWN_DELAY_MS: '0',
    ...extra,
  });
  const proc = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  cleanups.push(async () => {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  });
  const log = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; level: number });
  return { proc, admin: `http://127.0.0.1:${adminPort}`, public: `http://127.0.0.1:${port}`, log, raw: () => out };
}

async function status(url: string): Promise<number> {
  return fetch(url).then(
    (r) => r.status,
    () => 0,
  );
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('Redis down at boot: /livez 200, /readyz 503, one log line; Redis started 5 s later → ready without a restart', async () => {
  const redis = new OwnRedis(await freePort());
  const db = await emptyDatabase();
  await migrate(db);
  const svc = await serve({ DATABASE_URL: db, REDIS_URL: redis.url });
  cleanups.push(() => redis.stop());
  await until('/livez 200', async () => (await status(`${svc.admin}/livez`)) === 200);
  // /livez answers before the first Postgres check has finished (a loaded
  // machine once saw postgres:false here): wait for that check, then Redis
  // must still be the one thing missing.
  let ready!: Response;
  let body!: { checks: Record<string, boolean> };
  await until('the Postgres check at boot', async () => {
    ready = await fetch(`${svc.admin}/readyz`);
    body = (await ready.json()) as { checks: Record<string, boolean> };
    return body.checks.postgres === true;
  });
  assert.equal(ready.status, 503);
  assert.equal(body.checks.redis, false);
  const token = await fetch(`${svc.public}/token`, { method: 'POST' });
  assert.equal(token.status, 503);
  assert.equal(token.headers.get('retry-after'), '1');

  await new Promise((r) => setTimeout(r, 5000)); // the scenario: Redis comes 5 s later
  assert.equal(svc.proc.exitCode, null, 'still running');
  const redisLines = svc.log().filter((l) => /Redis at REDIS_URL \(127\.0\.0\.1:\d+\) is unreachable: ECONNREFUSED/.test(l.msg ?? ''));
  assert.equal(redisLines.length, 1, `one line per kind of failure over 5 s of retries:\n${svc.raw()}`);
  await redis.start();
  await until('/readyz 200', async () => (await status(`${svc.admin}/readyz`)) === 200);
  assert.equal(await status(`${svc.public}/.well-known/openid-configuration`), 200);
  assert.equal(svc.proc.exitCode, null);
});

test('schema behind: one line "behind by N migrations", /readyz 503; identity migrate → ready without a restart', async () => {
  const db = await emptyDatabase();
  const svc = await serve({ DATABASE_URL: db, REDIS_URL });
  const line = `schema is behind by ${MIGRATIONS} migrations: run \`identity migrate\``;
  await until('the schema line', async () => svc.log().some((l) => l.msg === line));
  const ready = await fetch(`${svc.admin}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(((await ready.json()) as { checks: Record<string, boolean> }).checks, {
    postgres: true,
    schema: false,
    redis: true,
    signingKey: false,
    notDraining: true,
  });
  const migrated = spawnSync(process.execPath, [CLI, 'migrate'], { env: baseEnv({ DATABASE_URL: db }), encoding: 'utf8', timeout: 60_000 });
  assert.equal(migrated.status, 0, migrated.stderr);
  await until('/readyz 200', async () => (await status(`${svc.admin}/readyz`)) === 200);
  assert.equal(svc.log().filter((l) => l.msg === line).length, 1, 'logged once while waiting');
  assert.equal(svc.proc.exitCode, null);
});

test('Postgres unreachable: the line names DATABASE_URL (host, database), never its password; the CLI says the same', async () => {
  const url = `postgresql://identity:pw-${randomBytes(8).toString('hex')}@127.0.0.1:${await freePort()}/identity`;
  const password = new URL(url).password;
  const svc = await serve({ DATABASE_URL: url, REDIS_URL });
  await until('the Postgres line', async () => svc.log().some((l) => /^Postgres at DATABASE_URL \(127\.0\.0\.1:\d+\/identity\) is unreachable: ECONNREFUSED/.test(l.msg ?? '')));
  assert.equal(await status(`${svc.admin}/livez`), 200);
  assert.equal(await status(`${svc.admin}/readyz`), 503);
  assert.ok(!svc.raw().includes(password), 'no password in the log');

  const cli = spawnSync(process.execPath, [CLI, 'keys', 'list'], { env: baseEnv({ DATABASE_URL: url }), encoding: 'utf8', timeout: 20_000 });
  assert.equal(cli.status, 1);
  assert.match(cli.stderr, /^identity: Postgres at DATABASE_URL \(127\.0\.0\.1:\d+\/identity\) is unreachable: ECONNREFUSED/);
  assert.equal(cli.stderr.trim().split('\n').length, 1);
  assert.ok(!cli.stderr.includes(password));
});

test('Redis unreachable for a CLI command: one line naming REDIS_URL (host only), not "Connection is closed."', async () => {
  const db = await emptyDatabase();
  await migrate(db);
  const port = await freePort();
  const cli = spawnSync(process.execPath, [CLI, 'keys', 'list'], {
    env: baseEnv({ DATABASE_URL: db, REDIS_URL: `redis://:pw-secret-${port}@127.0.0.1:${port}`, KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') }),
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(cli.status, 1, cli.stderr);
  assert.deepEqual(cli.stderr.trim().split('\n'), [`identity: Redis at REDIS_URL (127.0.0.1:${port}) is unreachable: ECONNREFUSED`]);
});

test('Postgres database not there at boot: waits (one line, /readyz 503), ready once it exists and is migrated, without a restart', async () => {
  const name = databaseName();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  const svc = await serve({ DATABASE_URL: url.toString(), REDIS_URL });
  const line = /^Postgres at DATABASE_URL \(127\.0\.0\.1:\d+\/idboot_[0-9a-f]+\) is unreachable: 3D000/;
  await until('the Postgres line', async () => svc.log().some((l) => line.test(l.msg ?? '')));
  assert.equal(await status(`${svc.admin}/readyz`), 503);
  assert.equal(await status(`${svc.admin}/livez`), 200);

  await createDatabase(name);
  await migrate(url.toString());
  await until('/readyz 200', async () => (await status(`${svc.admin}/readyz`)) === 200);
  assert.equal(svc.log().filter((l) => line.test(l.msg ?? '')).length, 1, 'one line while it waited');
  assert.equal(svc.proc.exitCode, null);
});
