// `identity keys export --pem DIR`: every key the JWKS publishes (the
// pre-published successor included) as a PEM file named by its kid, the
// kids.map and keys.cfg HAProxy needs, nothing stale left behind, and the same
// files whether read from Postgres or from the JWKS URL. Checked with
// independent readers: openssl for the PEMs, haproxy -c for the fragment.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { importSPKI, jwtVerify } from 'jose';
import { startTestService, type TestService } from './support/service.ts';
import { kidOf, passwordToken } from './support/verify.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
// Asynchronous: the service under test runs in this process and must keep answering.
const run = promisify(execFile);

describe('identity keys export --pem', () => {
  let s: TestService;
  let work: string;
  let env: NodeJS.ProcessEnv;

  const exportTo = async (dir: string, ...extra: string[]) => {
    const { stdout } = await run(process.execPath, [CLI, 'keys', 'export', '--pem', dir, ...extra], { env, encoding: 'utf8', timeout: 60_000 });
    return JSON.parse(stdout) as { dir: string; kids: string[]; changed: boolean; removed: string[] };
  };
  const jwks = async () => (await fetch(`${s.config.issuer}/jwks`).then((r) => r.json())) as { keys: { kid: string; x: string; y: string }[] };
  const pemFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.pem')).sort();

  before(async () => {
    s = await startTestService({ KEY_ROTATION_INTERVAL: '0' });
    work = mkdtempSync(join(tmpdir(), 'keys-export-'));
    env = {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      DATABASE_URL: s.config.databaseUrl,
      KEY_ENCRYPTION_KEY: s.stores.kek.toString('base64'),
      LOG_LEVEL: 'warn',
    };
  });
  after(async () => {
    rmSync(work, { recursive: true, force: true });
    await s.stop();
  });

  test('writes every published key (active and pre-published next), the index, and replaces stale files', async () => {
    const next = await s.keys.rotate({ actor: 'test' });
    const published = (await jwks()).keys;
    assert.equal(published.length, 2, 'the active key and its pre-published successor');
    const dir = join(work, 'from-db');

    const first = await exportTo(dir);
    assert.equal(first.changed, true);
    assert.deepEqual([...first.kids].sort(), published.map((k) => k.kid).sort(), 'exactly the JWKS keys');
    assert.ok(first.kids.includes(next.kid), 'the successor is exported before it signs');
    assert.deepEqual(pemFiles(dir), published.map((k) => `${k.kid}.pem`).sort());

    for (const key of published) {
      const pem = join(dir, `${key.kid}.pem`);
      // openssl reads it as an EC P-256 public key whose point is the JWK's x and y.
      const text = execFileSync('openssl', ['pkey', '-pubin', '-in', pem, '-noout', '-text'], { encoding: 'utf8' });
      assert.match(text, /ASN1 OID: prime256v1/);
      const point = Buffer.from(text.split('pub:')[1]!.split('ASN1')[0]!.replace(/[\s:]/g, ''), 'hex');
      assert.equal(point[0], 4, 'uncompressed point');
      assert.equal(point.subarray(1, 33).toString('base64url'), key.x);
      assert.equal(point.subarray(33).toString('base64url'), key.y);
    }

    // The active key's PEM verifies a real token the service signs.
    const client = await s.client();
    const user = await s.user();
    const token = await passwordToken(`${s.config.issuer}/token`, client, user);
    const pem = readFileSync(join(dir, `${kidOf(token)}.pem`), 'utf8');
    await jwtVerify(token, await importSPKI(pem, 'ES256'), { issuer: s.config.issuer, audience: s.config.audience });

    const map = readFileSync(join(dir, 'kids.map'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(map.sort(), published.map((k) => `${k.kid} ${join(dir, `${k.kid}.pem`)}`).sort());

    // HAProxy itself accepts the fragment (every PEM loads as a jwt_verify key).
    const main = join(work, 'main.cfg');
    writeFileSync(
      main,
      'defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 5s\n' +
        'frontend api\n    bind 127.0.0.1:1\n    default_backend identity_jwt_keys\n',
    );
    // -dW: warnings are fatal (a key file HAProxy cannot read is only a warning).
    const check = spawnSync('haproxy', ['-dW', '-c', '-f', main, '-f', join(dir, 'keys.cfg')], { encoding: 'utf8' });
    assert.equal(check.status, 0, `haproxy -c: ${check.stdout}${check.stderr}`);
    // The same check refuses a fragment naming a file that is not a key (the check can fail).
    writeFileSync(join(work, 'not-a-key.pem'), 'not a key\n');
    writeFileSync(join(work, 'broken.cfg'), readFileSync(join(dir, 'keys.cfg'), 'utf8').replace(/"\/[^"]+\.pem"/, `"${join(work, 'not-a-key.pem')}"`));
    assert.notEqual(spawnSync('haproxy', ['-dW', '-c', '-f', main, '-f', join(work, 'broken.cfg')]).status, 0);

    assert.equal((await exportTo(dir)).changed, false, 'nothing changed: nothing written, no reload needed');

    // The successor becomes the only key (emergency revocation of the active one): the old PEM goes.
    const oldKid = published.find((k) => k.kid !== next.kid)!.kid;
    await s.keys.revoke(oldKid, { actor: 'test' });
    const after = await exportTo(dir);
    assert.equal(after.changed, true);
    assert.deepEqual(after.removed, [`${oldKid}.pem`]);
    assert.deepEqual(pemFiles(dir), [`${next.kid}.pem`]);
    assert.doesNotMatch(readFileSync(join(dir, 'keys.cfg'), 'utf8'), new RegExp(oldKid));
  });

  test('--jwks-url writes the same files from the JWKS (no database needed on the gateway host)', async () => {
    const fromDb = join(work, 'db2');
    const fromUrl = join(work, 'url');
    await exportTo(fromDb);
    await run(process.execPath, [CLI, 'keys', 'export', '--pem', fromUrl, '--jwks-url', `${s.config.issuer}/jwks`], {
      env: { PATH: process.env.PATH, NODE_ENV: 'test', LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    assert.deepEqual(pemFiles(fromUrl), pemFiles(fromDb));
    for (const f of pemFiles(fromDb)) assert.equal(readFileSync(join(fromUrl, f), 'utf8'), readFileSync(join(fromDb, f), 'utf8'));
  });

  test('refuses a missing --pem, an unreachable JWKS and a directory HAProxy could not name, without a stack trace', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'keys', 'export', ...args], { env, encoding: 'utf8', timeout: 60_000 });
    const missing = run();
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--pem DIR is required/);
    const down = run('--pem', join(work, 'x'), '--jwks-url', 'http://127.0.0.1:1/jwks');
    assert.equal(down.status, 1);
    assert.match(down.stderr, /^identity: http:\/\/127\.0\.0\.1:1\/jwks/);
    const spaced = run('--pem', join(work, 'a dir'));
    assert.equal(spaced.status, 2);
    assert.doesNotMatch(spaced.stderr + down.stderr, /\n\s+at /);
  });
});
