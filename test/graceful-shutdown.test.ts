// SIGTERM to a real `identity serve` process under load: readiness turns 503
// first, every request sent before the signal is answered 200, keep-alive
// connections are told to close, Redis and Postgres disconnect, exit code 0.
//
// The load is deterministic: a keep-alive agent first opens N connections,
// then N password logins (each one argon2 verification, so they queue in the
// thread pool) are sent on them at once; SIGTERM goes out when the first
// answer arrives, i.e. while the rest are still in flight.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { after, before, test } from 'node:test';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createUser } from '../src/accounts/users.ts';
import { createDb } from '../src/store/postgres.ts';
import { createClient } from '../src/clients/index.ts';
import { basic, freePort, freshDatabase, REDIS_URL } from './support/service.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const N = 16;
const GRACE_MS = 20_000;

let database: Awaited<ReturnType<typeof freshDatabase>>;
let server: ChildProcess | undefined;
let output = '';
let port: number;
let adminPort: number;
let auth: string;
const password = 'a long password for the load';
const email = 'load@example.com';

type Answer = { status: number; connection: string | undefined; body: string };

function send(agent: Agent, method: string, path: string, body = '', p = port): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: p, method, path, agent, headers: body ? { 'content-type': 'application/x-www-form-urlencoded', authorization: auth } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  database = await freshDatabase();
  const db = createDb(database.url, 2);
  const hasher = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  await createUser(db, hasher, { email, password });
  const client = await createClient(db, { id: 'load-gw', grantTypes: ['password', 'refresh_token'], scopes: ['api:read'] }, ['api:read']);
  auth = basic(client.client_id, client.client_secret);
  await db.$disconnect();

  port = await freePort();
  adminPort = await freePort();
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ISSUER: `http://127.0.0.1:${port}`,
    DATABASE_URL: database.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    SHUTDOWN_DELAY_MS: '1000',
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    // This test is about draining, not load shedding: let all 16 logins hash.
    MAX_CONCURRENT_HASHES: '32',
    // ...and not throttling: 16 parallel logins of one user from one address
    // reserve 16 possible failures of that pair (src/security/throttle.ts).
    LOGIN_FREE_FAILURES: '32',
    LOG_LEVEL: 'info',
  };
  server = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr!.on('data', (d) => (output += d));
  server.stdout!.on('data', (d) => (output += d));
  const deadline = Date.now() + 60_000;
  while (!output.includes('identity service listening')) {
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  await database?.drop();
});

test('SIGTERM under load: readiness 503 first, zero failed requests, clean exit 0', async () => {
  const login = new URLSearchParams({ grant_type: 'password', username: email, password }).toString();
  const agent = new Agent({ keepAlive: true, maxSockets: N });
  try {
    const warm = await send(agent, 'POST', '/token', login);
    assert.equal(warm.status, 200, warm.body);
    // N open keep-alive connections, so the logins below need no new connect.
    await Promise.all(Array.from({ length: N }, () => send(agent, 'GET', '/jwks')));
    assert.equal(Object.values(agent.freeSockets).flat().length, N);

    const exited = once(server!, 'exit');
    const sigtermAt: { t?: number } = {};
    const inFlight = Array.from({ length: N }, () =>
      send(agent, 'POST', '/token', login).then(
        (r) => {
          if (!sigtermAt.t) {
            sigtermAt.t = Date.now();
            server!.kill('SIGTERM');
          }
          return r;
        },
        (err: Error) => ({ status: 0, connection: undefined, body: err.message }),
      ),
    );

    // Readiness turns 503 while the logins are still being answered.
    while (!sigtermAt.t) await new Promise((r) => setTimeout(r, 10));
    const probes = new Agent({ keepAlive: false });
    let ready = await send(probes, 'GET', '/readyz', '', adminPort);
    for (let i = 0; i < 200 && ready.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      ready = await send(probes, 'GET', '/readyz', '', adminPort);
    }
    assert.equal(ready.status, 503, ready.body);
    assert.equal(JSON.parse(ready.body).checks.notDraining, false);

    const answers = await Promise.all(inFlight);
    const failed = answers.filter((a) => a.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${N} requests failed`);
    assert.ok(answers.some((a) => a.connection === 'close'), 'answers sent while draining close their connection');

    const [code] = await exited;
    assert.equal(code, 0, output);
    assert.ok(Date.now() - sigtermAt.t < GRACE_MS, 'exited within the grace period');
    assert.match(output, /shut down: connections closed, Redis and Postgres disconnected/);
    await assert.rejects(send(new Agent(), 'GET', '/jwks'), /ECONNREFUSED/, 'new connections are refused after exit');
  } finally {
    agent.destroy();
  }
});
