// Test harness: every test file gets its own Postgres database (migrated with
// the real migrations), its own Redis key prefix and a real HTTP server on
// loopback. Nothing is mocked.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import pg from 'pg';
import * as oauth from 'openid-client';
import { PasswordHasher } from '../../src/accounts/passwords.ts';
import { createUser, type UserView } from '../../src/accounts/users.ts';
import { loadConfig, type Config } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/log.ts';
import { startService, type RunningService } from '../../src/service.ts';
import { migrate } from '../../src/store/migrate.ts';
import { createClient, type ClientInput } from '../../src/clients/index.ts';

const run = promisify(execFile);

export const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Creates an empty, migrated database; returns its URL and a dropper. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `idtest_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Every log line the service wrote, for "no secret in the logs" checks. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export type TestService = RunningService & {
  config: Config;
  logs: LogCapture;
  issuer: URL;
  user(input?: Partial<{ email: string; password: string; roles: string[] }>): Promise<UserView & { password: string }>;
  client(input?: Partial<ClientInput>): Promise<{ id: string; secret: string }>;
  /** openid-client configuration for a client, from discovery. */
  oauth(client: { id: string; secret: string }, auth?: 'basic' | 'post'): Promise<oauth.Configuration>;
  stop(): Promise<void>;
};

export async function startTestService(env: Record<string, string> = {}, opts: { databaseUrl?: string } = {}): Promise<TestService> {
  const database = opts.databaseUrl ? undefined : await freshDatabase();
  const port = await freePort();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: opts.databaseUrl ?? database!.url,
    DATABASE_POOL_MAX: '4',
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PORT: String(port),
    ADMIN_PORT: '0',
    ISSUER: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'info',
    // Tests log in several at a time (4 in flight, plus a password change, is
    // common); shedding beyond the production default (2, one per core) has
    // tests of its own, which set it.
    MAX_CONCURRENT_HASHES: '8',
    ...env,
  });
  const logs = new LogCapture();
  const service = await startService(config, createLogger(config.logLevel, logs));
  const hasher = new PasswordHasher(config.argon2);
  let n = 0;
  return {
    ...service,
    config,
    logs,
    issuer: new URL(config.issuer),
    async user(input = {}) {
      const password = input.password ?? `pw-${randomBytes(12).toString('base64url')}`;
      const user = await createUser(service.stores.db, hasher, {
        email: input.email ?? `user${++n}-${randomBytes(4).toString('hex')}@example.com`,
        password,
        roles: input.roles ?? ['viewer'],
      });
      return { ...user, password };
    },
    async client(input = {}) {
      const created = await createClient(
        service.stores.db,
        {
          id: input.id ?? `client-${++n}-${randomBytes(4).toString('hex')}`,
          grantTypes: input.grantTypes ?? ['password', 'refresh_token'],
          scopes: input.scopes ?? ['api:read'],
          resources: input.resources ?? [],
          dpopBound: input.dpopBound ?? false,
          firstParty: input.firstParty ?? false,
          trustedGateway: input.trustedGateway ?? false,
        },
        config.scopes,
        [config.adminAudience],
      );
      return { id: created.client_id, secret: created.client_secret };
    },
    async oauth(c, auth = 'basic') {
      return oauth.discovery(
        new URL(config.issuer),
        c.id,
        undefined,
        auth === 'basic' ? oauth.ClientSecretBasic(c.secret) : oauth.ClientSecretPost(c.secret),
        { execute: [oauth.allowInsecureRequests] },
      );
    },
    async stop() {
      await service.close();
      await database?.drop();
    },
  };
}

/** POST a form to the token endpoint with raw fetch (for error cases). */
export async function postForm(
  url: string,
  form: string | Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown>; text: string; ms: number }> {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: typeof form === 'string' ? form : new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body, text, ms: performance.now() - started };
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A redis-server of the test's own on a loopback port, which it may stop and restart. */
export class OwnRedis {
  readonly port: number;
  #proc: ChildProcess | undefined;

  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#proc = proc;
    let out = '';
    for await (const chunk of proc.stdout!) {
      out += chunk;
      if (out.includes('Ready to accept connections')) break;
    }
  }

  /** SIGSTOP: the server keeps its connections but answers nothing (a stalled store). */
  pause(): void {
    this.#proc?.kill('SIGSTOP');
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.#proc?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null) return;
    proc.kill('SIGCONT'); // a paused server must run to die
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  }

  /** A redis-cli command against it. */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-p', String(this.port), ...args], { timeout: 10_000 });
    return stdout.trim();
  }
}
