// `npm test`'s global setup (node --test-global-setup): every test expects a
// Postgres at TEST_DATABASE_URL and a Redis at TEST_REDIS_URL (defaults: the
// usual ports on 127.0.0.1). When one is not answering and the URL was not set
// explicitly, it starts a throwaway one from the installed binaries (own data
// directory, free port) and points the variable at it; test processes are
// spawned after this and inherit it. If that is impossible, one line says what
// to install or which variable to set.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const DEFAULT_PG = 'postgresql://postgres@127.0.0.1:5432/postgres';
const DEFAULT_REDIS = 'redis://127.0.0.1:6379';
const started: { proc: ChildProcess; dir: string }[] = [];

function fail(line: string): never {
  console.error(`npm test: ${line}`);
  process.exit(1);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379), timeout: 2000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

function postgresBinDir(): string | undefined {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    const root = '/usr/lib/postgresql';
    const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
    return versions.map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'initdb')));
  }
}

async function startPostgres(): Promise<string> {
  const bin = postgresBinDir();
  if (!bin || !existsSync(join(bin, 'initdb'))) {
    fail(`no Postgres answers at ${DEFAULT_PG} and none is installed: install PostgreSQL (Debian: apt-get install postgresql) or set TEST_DATABASE_URL`);
  }
  // initdb and postgres refuse to run as root: as root, run them as the
  // postgres user that Debian's package creates.
  const asUser = userInfo().uid === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const dir = mkdtempSync(join(tmpdir(), 'identity-test-pg-'));
  if (asUser.length) {
    chmodSync(dir, 0o777);
  }
  const data = join(dir, 'data');
  const port = await freePort();
  const cmd = (exe: string, args: string[]) => (asUser.length ? [asUser[0]!, [...asUser.slice(1), join(bin, exe), ...args]] as const : [join(bin, exe), args] as const);
  try {
    const [file, args] = cmd('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-N']);
    execFileSync(file, args, { stdio: 'ignore' });
  } catch {
    fail(`no Postgres answers at ${DEFAULT_PG} and a throwaway one could not be created with ${bin}/initdb: start Postgres or set TEST_DATABASE_URL`);
  }
  const [file, args] = cmd('postgres', ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=300']);
  // Own process group: teardown signals runuser and postgres together.
  const proc = spawn(file, args, { stdio: 'ignore', detached: true });
  started.push({ proc, dir });
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  if (!(await until(() => postgresAnswers(url), 30_000))) fail(`a throwaway Postgres (${bin}/postgres, port ${port}) did not start: start Postgres or set TEST_DATABASE_URL`);
  console.error(`npm test: no Postgres at ${DEFAULT_PG}; started a throwaway one on port ${port}`);
  return url;
}

async function startRedis(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'identity-test-redis-'));
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const spawned = await new Promise<boolean>((resolve) => {
    proc.once('spawn', () => resolve(true));
    proc.once('error', () => resolve(false));
  });
  if (!spawned) fail(`no Redis answers at ${DEFAULT_REDIS} and redis-server is not installed: install Redis (Debian: apt-get install redis-server) or set TEST_REDIS_URL`);
  started.push({ proc, dir });
  const url = `redis://127.0.0.1:${port}`;
  if (!(await until(() => redisAnswers(url), 15_000))) fail(`a throwaway redis-server on port ${port} did not start: start Redis or set TEST_REDIS_URL`);
  console.error(`npm test: no Redis at ${DEFAULT_REDIS}; started a throwaway one on port ${port}`);
  return url;
}

export async function globalSetup(): Promise<void> {
  const pgUrl = process.env.TEST_DATABASE_URL;
  const redisUrl = process.env.TEST_REDIS_URL;
  if (!(await postgresAnswers(pgUrl ?? DEFAULT_PG))) {
    if (pgUrl) fail(`TEST_DATABASE_URL does not answer (${new URL(pgUrl).host}): start that Postgres or unset TEST_DATABASE_URL`);
    process.env.TEST_DATABASE_URL = await startPostgres();
  }
  if (!(await redisAnswers(redisUrl ?? DEFAULT_REDIS))) {
    if (redisUrl) fail(`TEST_REDIS_URL does not answer (${new URL(redisUrl).host}): start that Redis or unset TEST_REDIS_URL`);
    process.env.TEST_REDIS_URL = await startRedis();
  }
}

export async function globalTeardown(): Promise<void> {
  for (const { proc, dir } of started) {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      // postgres: fast shutdown; redis-server: exits.
      if (proc.pid) process.kill(proc.spawnargs[0] === 'runuser' ? -proc.pid : proc.pid, 'SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
