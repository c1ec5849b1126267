// OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a /token request
// becomes one trace at an OTLP/HTTP receiver started here (JSON protocol):
// the server span with the request id, and Redis, Postgres and password
// hashing spans in the same trace; no password, secret or token anywhere in
// what is exported. Without the variable nothing is sent.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { freePort, freshDatabase, REDIS_URL } from './support/service.ts';

const ROOT = new URL('..', import.meta.url).pathname;
type Attr = { key: string; value: { stringValue?: string; intValue?: string | number } };
type Span = { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: Attr[] };

let receiver: Server;
let receiverUrl: string;
const bodies: string[] = [];
let db: Awaited<ReturnType<typeof freshDatabase>>;
let env: NodeJS.ProcessEnv;
let publicUrl: string;
let stop: () => Promise<void>;

const spans = (): Span[] =>
  bodies.flatMap((b) =>
    (JSON.parse(b) as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] }).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
  );
const attr = (s: Span, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue;
};

function cli(args: string[], input?: string): string {
  const r = spawnSync(process.execPath, ['src/cli.ts', ...args], { cwd: ROOT, env, input, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/traces') bodies.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  db = await freshDatabase();
  const [port, adminPort] = [await freePort(), await freePort()];
  publicUrl = `http://127.0.0.1:${port}`;
  env = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ISSUER: publicUrl,
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    ARGON2_MEMORY_KIB: '19456',
    ARGON2_TIME_COST: '2',
    SHUTDOWN_DELAY_MS: '0',
  };
  const proc = spawn(process.execPath, ['--import', './src/observability/tracing.ts', 'src/cli.ts', 'serve'], {
    cwd: ROOT,
    env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  stop = async () => {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  };
  await until('the service', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200);
});

after(async () => {
  await stop?.();
  receiver?.close();
  await db?.drop();
});

test('a /token request is one trace with Redis, Postgres and hashing spans, the request id, and no secret', async () => {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  cli(['users', 'create', '--email', 'traced@example.com', '--password-stdin'], password);
  const client = JSON.parse(cli(['clients', 'create', '--id', 'traced', '--grant-types', 'password,refresh_token'])) as { client_secret: string };
  const requestId = `trace-${randomBytes(4).toString('hex')}`;
  const res = await fetch(`${publicUrl}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`traced:${client.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      'x-request-id': requestId,
    },
    body: new URLSearchParams({ grant_type: 'password', username: 'traced@example.com', password }),
  });
  assert.equal(res.status, 200);
  const tokens = (await res.json()) as { access_token: string; refresh_token: string };

  const server = () => spans().find((s) => attr(s, 'identity.request_id') === requestId);
  await until('the server span', () => !!server());
  const root = server()!;
  assert.equal(root.kind, 2, 'SERVER');
  assert.equal(root.parentSpanId || undefined, undefined, 'the request is the root of its trace');
  const inTrace = () => spans().filter((s) => s.traceId === root.traceId);
  const has = {
    redis: () => inTrace().some((s) => attr(s, 'db.system') === 'redis' || attr(s, 'db.system.name') === 'redis'),
    postgres: () => inTrace().some((s) => attr(s, 'db.system') === 'postgresql' || attr(s, 'db.system.name') === 'postgresql'),
    hashing: () => inTrace().some((s) => s.name === 'password verify'),
  };
  await until('Redis, Postgres and hashing spans in the request trace', () => has.redis() && has.postgres() && has.hashing());
  // One trace for the request: no span of it is in another trace.
  assert.equal(new Set(spans().filter((s) => attr(s, 'identity.request_id') === requestId).map((s) => s.traceId)).size, 1);

  const exported = bodies.join('\n');
  for (const [what, secret] of Object.entries({
    password,
    client_secret: client.client_secret,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    basic: Buffer.from(`traced:${client.client_secret}`).toString('base64'),
  })) {
    assert.ok(!exported.includes(secret), `${what} is not in the exported spans`);
  }
  assert.ok(!/argon2id\$/.test(exported), 'no password hash in the exported spans');
});

test('without OTEL_EXPORTER_OTLP_ENDPOINT, nothing is sent', async () => {
  const before = bodies.length;
  const r = spawnSync(process.execPath, ['--import', './src/observability/tracing.ts', 'src/cli.ts', 'keys', 'list'], {
    cwd: ROOT,
    env: { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(bodies.length, before);
});

test('graceful shutdown sends the spans still buffered (a batch delay longer than the test)', async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const proc = spawn(process.execPath, ['--import', './src/observability/tracing.ts', 'src/cli.ts', 'serve'], {
    cwd: ROOT,
    env: {
      ...env,
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ISSUER: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await until('the second service', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200);
    const requestId = `flush-${randomBytes(4).toString('hex')}`;
    const res = await fetch(`http://127.0.0.1:${port}/token`, { method: 'POST', headers: { 'x-request-id': requestId } });
    assert.equal(res.status, 401); // no client authentication: invalid_client (RFC 6749 §5.2)
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!spans().some((s) => attr(s, 'identity.request_id') === requestId), 'still buffered (10 min batch delay)');
    const exited = new Promise<number | null>((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(spans().some((s) => attr(s, 'identity.request_id') === requestId), 'sent before the process exited');
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
});
