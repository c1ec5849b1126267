// Several `identity serve` processes on different ports sharing Postgres and
// Redis: one key on a cold start, convergence after a rotation, the keys CLI,
// KEK rotation, and a database dump without private key material.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { JWK } from 'jose';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createUser } from '../src/accounts/users.ts';
import { unseal } from '../src/lib/crypto.ts';
import { createDb, type Db } from '../src/store/postgres.ts';
import { createClient } from '../src/clients/index.ts';
import { freePort, freshDatabase, REDIS_URL } from './support/service.ts';
import { call, eventually, kidOf, passwordToken, startExample } from './support/verify.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const run = promisify(execFile);

let database: Awaited<ReturnType<typeof freshDatabase>>;
let db: Db;
let kek = randomBytes(32).toString('base64');
const prefix = `test:${randomBytes(6).toString('hex')}:`;
const replicas: { url: string; child: ChildProcess }[] = [];

const env = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  NODE_ENV: 'test',
  DATABASE_URL: database.url,
  DATABASE_POOL_MAX: '3',
  REDIS_URL,
  REDIS_KEY_PREFIX: prefix,
  KEY_ENCRYPTION_KEY: kek,
  // One issuer for all replicas, as behind a load balancer.
  ISSUER: 'http://127.0.0.1:1',
  JWKS_MAX_AGE: '1',
  KEY_SYNC_INTERVAL: '1',
  KEY_ROTATION_INTERVAL: '0',
  ADMIN_PORT: '0',
  LOG_LEVEL: 'info',
  ...extra,
});

async function startReplica(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve'], { env: env({ PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica did not start: ${stderr}`)), 60_000);
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('identity service listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`replica exited ${code}: ${stderr}`)));
  });
  const replica = { url: `http://127.0.0.1:${port}`, child };
  replicas.push(replica);
  return replica;
}

async function cli(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; out: unknown; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: env(extra), timeout: 60_000 });
    return { code: 0, out: JSON.parse(stdout), stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, out: undefined, stderr: e.stderr };
  }
}

const jwksOf = async (url: string) => {
  const res = await fetch(`${url}/jwks`);
  return { etag: res.headers.get('etag'), kids: ((await res.json()) as { keys: JWK[] }).keys.map((k) => k.kid) };
};

before(async () => {
  database = await freshDatabase();
  db = createDb(database.url, 2);
});
after(async () => {
  for (const r of replicas) r.child.kill('SIGTERM');
  await Promise.all(replicas.map((r) => (r.child.exitCode === null ? new Promise((res) => r.child.once('exit', res)) : undefined)));
  await db.$disconnect();
  await database.drop();
});

test('three replicas starting at once on an empty database create exactly one key', async () => {
  const started = await Promise.all([startReplica(), startReplica(), startReplica()]);
  const rows = await db.signingKey.findMany();
  assert.equal(rows.length, 1);
  const all = await Promise.all(started.map((r) => jwksOf(r.url)));
  for (const j of all) assert.deepEqual(j, all[0]);
  assert.deepEqual(all[0]!.kids, [rows[0]!.kid]);
});

test('a rotation through the CLI reaches every replica within seconds', async () => {
  const client = await createClient(db, { id: 'gateway', grantTypes: ['password', 'refresh_token'], scopes: ['api:read'] }, ['api:read']);
  const creds = { id: client.client_id, secret: client.client_secret };
  const user = { email: 'rotating@example.com', password: 'a long enough password 1' };
  await createUser(db, new PasswordHasher({ memoryCost: 7168, timeCost: 5, parallelism: 1 }), { ...user, roles: [] });
  const old = (await db.signingKey.findFirstOrThrow()).kid;
  for (const r of replicas) assert.equal(kidOf(await passwordToken(`${r.url}/token`, creds, user)), old);

  const rotated = await cli(['keys', 'rotate']);
  assert.equal(rotated.code, 0, rotated.stderr);
  const next = rotated.out as { kid: string; status: string };
  assert.equal(next.status, 'next');

  // A verifier that trusts the first replica's JWKS, with caching scaled to JWKS_MAX_AGE=1 s:
  // every token any replica issues during the rotation must verify.
  const example = await startExample({ issuer: 'http://127.0.0.1:1', audience: 'api://default', jwksUri: `${replicas[0]!.url}/jwks`, cooldownDuration: 500, cacheMaxAge: 1000 });
  const failures: unknown[] = [];
  let verified = 0;
  try {
    for (const r of replicas) {
      await eventually(
        async () => {
          const token = await passwordToken(`${r.url}/token`, creds, user);
          const res = await call(`${example.url}/me`, token);
          if (res.status === 200) verified++;
          else failures.push(res.body);
          return kidOf(token) === next.kid;
        },
        30_000,
        `${r.url} to sign with the new key`,
      );
    }
  } finally {
    await example.close();
  }
  assert.deepEqual(failures, []);
  assert.ok(verified >= replicas.length);
  const all = await Promise.all(replicas.map((r) => jwksOf(r.url)));
  for (const j of all) assert.deepEqual(j, all[0], 'every replica publishes the same JWKS');
  assert.deepEqual(all[0]!.kids, [next.kid, old]);

  const listed = await cli(['keys', 'list']);
  assert.deepEqual(
    (listed.out as { kid: string; status: string }[]).map((k) => [k.kid, k.status]),
    [
      [next.kid, 'active'],
      [old, 'retiring'],
    ],
  );
  const unknown = await cli(['keys', 'revoke', 'no-such-kid']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no signing key/);
});

test('a database dump holds no private key material', async () => {
  const rows = await db.signingKey.findMany({ where: { privateJwkEnc: { not: '' } } });
  assert.ok(rows.length >= 2);
  const secrets = rows.map((r) => (JSON.parse(unseal(Buffer.from(kek, 'base64'), r.privateJwkEnc, r.kid)) as { d: string }).d);
  const { stdout: dump } = await run('pg_dump', ['--data-only', database.url], { maxBuffer: 64 * 1024 * 1024 });
  assert.match(dump, /signing_keys/, 'the dump includes the keys table');
  for (const d of secrets) assert.ok(!dump.includes(d));
  assert.ok(!/"d"\s*:/.test(dump));
});

test('keys rekey moves every private key to a new KEK; replicas on the new KEK serve the same keys', async () => {
  const before = await db.signingKey.findMany({ where: { privateJwkEnc: { not: '' } }, orderBy: { kid: 'asc' } });
  const newKek = randomBytes(32).toString('base64');

  const wrong = await cli(['keys', 'rekey'], { OLD_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'), KEY_ENCRYPTION_KEY: newKek });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /cannot decrypt/);
  assert.deepEqual(await db.signingKey.findMany({ where: { privateJwkEnc: { not: '' } }, orderBy: { kid: 'asc' } }), before);

  const done = await cli(['keys', 'rekey'], { OLD_KEY_ENCRYPTION_KEY: kek, KEY_ENCRYPTION_KEY: newKek });
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual((done.out as { rekeyed: string[] }).rekeyed.sort(), before.map((r) => r.kid));
  const again = await cli(['keys', 'rekey'], { OLD_KEY_ENCRYPTION_KEY: kek, KEY_ENCRYPTION_KEY: newKek });
  assert.deepEqual((again.out as { rekeyed: string[]; unchanged: string[] }).rekeyed, []);

  for (const r of await db.signingKey.findMany({ where: { privateJwkEnc: { not: '' } } })) {
    assert.throws(() => unseal(Buffer.from(kek, 'base64'), r.privateJwkEnc, r.kid));
    assert.ok(unseal(Buffer.from(newKek, 'base64'), r.privateJwkEnc, r.kid));
  }
  kek = newKek;
  const fresh = await startReplica();
  assert.deepEqual((await jwksOf(fresh.url)).kids, (await jwksOf(replicas[0]!.url)).kids);
});
