// The two first commands a new user runs: `npm start` with nothing configured
// (embedded PGlite, in-memory tokens) and the `identity` CLI beside it.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oauth from 'openid-client';
import { freePort } from './support/service.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let server: ChildProcess | undefined;
let output = '';

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e = { ...process.env };
  for (const k of Object.keys(e)) {
    if (/^(DATABASE_URL|REDIS_URL|KEY_ENCRYPTION_KEY|ISSUER|NODE_ENV|PORT|ADMIN_PORT|DATA_DIR)$/.test(k)) delete e[k];
  }
  return { ...e, ...extra };
}

function cli(args: string[], input?: string, extraEnv: NodeJS.ProcessEnv = env) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: extraEnv, input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function startServer(): Promise<void> {
  server = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr!.on('data', (d) => (output += d));
  for await (const chunk of server.stdout!) {
    output += chunk;
    if (output.includes('identity service listening')) return;
  }
  throw new Error(`server exited:\n${output}`);
}

async function stopServer(): Promise<void> {
  if (!server || server.exitCode !== null) return;
  const exited = once(server, 'exit');
  server.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0, 'clean exit on SIGTERM');
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'identity-dev-'));
  const port = await freePort();
  env = cleanEnv({ DATA_DIR: dataDir, PORT: String(port), ADMIN_PORT: String(await freePort()), ISSUER: `http://127.0.0.1:${port}` });
  await startServer();
});
after(async () => {
  await stopServer();
  await rm(dataDir, { recursive: true, force: true });
});

test('with no DATABASE_URL or REDIS_URL it starts on the embedded default and says so loudly', () => {
  assert.match(output, /DEVELOPMENT MODE/);
  assert.match(output, /embedded PGlite database/);
  assert.match(output, /in-memory token store/);
});

test('the CLI creates a user and a client, and the password grant works', async () => {
  const user = cli(['users', 'create', '--email', 'Dev@Example.com', '--password-stdin', '--roles', 'admin,viewer'], 'a long dev password\n');
  assert.equal(user.code, 0, user.stderr);
  const created = JSON.parse(user.stdout);
  assert.equal(created.email, 'dev@example.com');
  assert.deepEqual(created.roles, ['admin', 'viewer']);
  assert.ok(!user.stdout.includes('argon2'), 'never prints the hash');

  const dup = cli(['users', 'create', '--email', 'dev@example.com', '--password-stdin'], 'another password');
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /already exists/);

  const client = cli(['clients', 'create', '--id', 'gw', '--grant-types', 'password,refresh_token', '--scopes', 'api:read']);
  assert.equal(client.code, 0, client.stderr);
  const { client_id, client_secret } = JSON.parse(client.stdout);
  assert.equal(client_id, 'gw');
  assert.ok(client_secret.length >= 43);

  const issuer = new URL(env.ISSUER!);
  const conf = await oauth.discovery(issuer, client_id, undefined, oauth.ClientSecretBasic(client_secret), {
    execute: [oauth.allowInsecureRequests],
  });
  const tokens = await oauth.genericGrantRequest(conf, 'password', { username: 'dev@example.com', password: 'a long dev password' });
  const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer.origin}/jwks`)), {
    issuer: env.ISSUER!,
    typ: 'at+jwt',
  });
  assert.equal(payload.sub, created.id);
  const refreshed = await oauth.refreshTokenGrant(conf, tokens.refresh_token!);
  assert.ok(refreshed.access_token);
});

test('users persist under the data folder across restarts', async () => {
  await stopServer();
  output = '';
  await startServer();
  const again = cli(['users', 'create', '--email', 'dev@example.com', '--password-stdin'], 'x'.repeat(20));
  assert.match(again.stderr, /already exists/);
});

test('the CLI rejects bad input with a clear message and exit code 2', () => {
  const r = cli(['clients', 'create', '--id', 'bad', '--grant-types', 'implicit']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /grantTypes/);
  const usage = cli(['frobnicate']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage:/);
});

test('NODE_ENV=production without DATABASE_URL is a boot error naming the variable', () => {
  const r = cli(['serve'], undefined, cleanEnv({ NODE_ENV: 'production', REDIS_URL: 'redis://127.0.0.1:6379' }));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /DATABASE_URL: is required when NODE_ENV=production/);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
});
