// A consumer installs this package and imports `identity-service/verify` from
// node_modules, where Node refuses to strip TypeScript: the export must be
// plain JavaScript, and it must work there.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startTestService, type TestService } from './support/service.ts';
import { passwordToken } from './support/verify.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const run = promisify(execFile);

let dir: string;
let s: TestService;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'verify-consumer-'));
  await mkdir(join(dir, 'node_modules'));
  await symlink(ROOT, join(dir, 'node_modules', 'identity-service'), 'dir');
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  s = await startTestService();
});
after(async () => {
  await s.stop();
  await rm(dir, { recursive: true, force: true });
});

test('identity-service/verify loads from node_modules as JavaScript and verifies a real token', async () => {
  // A minimal consumer: plain node:http, the guards from the package name.
  await writeFile(
    join(dir, 'consumer.mjs'),
    `import http from 'node:http';
import { requireAuth, requireScope, requireRole } from 'identity-service/verify';
const [issuer, audience, token] = process.argv.slice(2);
const auth = requireAuth({ issuer, audience });
const status = (mw, headers) => new Promise((resolve) => {
  const req = Object.assign(new http.IncomingMessage(null), { headers });
  const res = { statusCode: 0, setHeader() {}, end() { resolve(res.statusCode); } };
  mw(req, res, () => resolve({ ok: true, auth: req.auth, next: (m) => status(m, headers) }));
});
const ok = await status(auth, { authorization: 'Bearer ' + token });
const scope = await status((req, res, next) => { req.auth = ok.auth; requireScope('api:read')(req, res, next); }, {});
const role = await status((req, res, next) => { req.auth = ok.auth; requireRole('admin')(req, res, next); }, {});
const bad = await status(auth, { authorization: 'Bearer ' + token.slice(0, -4) + 'AAAA' });
console.log(JSON.stringify({
  resolved: import.meta.resolve('identity-service/verify'),
  sub: ok.auth?.subject, scope: scope.ok === true, role, bad,
}));
`,
  );
  const client = await s.client({ scopes: ['api:read'] });
  const user = await s.user({ roles: ['viewer'] });
  const token = await passwordToken(`${s.config.issuer}/token`, client, user);
  // --preserve-symlinks keeps the file at its node_modules path, where a .ts file would be refused.
  for (const flags of [[], ['--preserve-symlinks']]) {
    const { stdout } = await run(process.execPath, [...flags, 'consumer.mjs', s.config.issuer, s.config.audience, token], {
      cwd: dir,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout) as { resolved: string; sub: string; scope: boolean; role: number; bad: number };
    assert.match(out.resolved, flags.length ? /\/node_modules\/identity-service\/packages\/verify\/index\.js$/ : /\/packages\/verify\/index\.js$/);
    assert.equal(out.sub, user.id);
    assert.equal(out.scope, true);
    assert.equal(out.role, 403);
    assert.equal(out.bad, 401);
  }
});

test('control: Node refuses a TypeScript entry inside node_modules (why verify is JavaScript)', async () => {
  const pkg = join(dir, 'node_modules', 'ts-only');
  await mkdir(pkg, { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'ts-only', type: 'module', exports: './index.ts' }));
  await writeFile(join(pkg, 'index.ts'), 'export const x: number = 1;');
  await writeFile(join(dir, 'ts.mjs'), `await import('ts-only');`);
  await assert.rejects(run(process.execPath, ['ts.mjs'], { cwd: dir }), /ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING/);
});

test('only the declared subpaths are importable', async () => {
  await writeFile(join(dir, 'deep.mjs'), `await import('identity-service/src/service.ts');`);
  await assert.rejects(run(process.execPath, ['deep.mjs'], { cwd: dir }), /ERR_PACKAGE_PATH_NOT_EXPORTED/);
});

test('packages/verify: npm pack, installed into a scratch app outside the repo, is itself and jose only, and an Express app verifies a real token with it', async () => {
  const app = await mkdtemp(join(tmpdir(), 'verify-scratch-app-'));
  try {
    const npm = (args: string[]) => run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeout: 120_000 });
    const { stdout: packed } = await run('npm', ['pack', join(ROOT, 'packages/verify'), '--pack-destination', app, '--json'], { cwd: app });
    const { filename, files } = (JSON.parse(packed) as { filename: string; files: { path: string }[] }[])[0]!;
    assert.ok(!files.some((f) => f.path.startsWith('test/')), 'tests are not published');
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', version: '1.0.0', type: 'module', private: true }));
    await npm(['install', `./${filename}`]);
    const { stdout: tree } = await run('npm', ['ls', '--all', '--parseable'], { cwd: app });
    const installed = tree.trim().split('\n').slice(1).map((p) => p.slice(p.lastIndexOf('node_modules/') + 13));
    assert.deepEqual(installed.sort(), ['@identity-service/verify', 'jose'], `npm ls --all: ${tree}`);

    await npm(['install', 'express@5']);
    await writeFile(
      join(app, 'server.mjs'),
      `import express from 'express';
import { requireAuth, requireScope } from '@identity-service/verify';
const [issuer, audience] = process.argv.slice(2);
const app = express();
app.use(requireAuth({ issuer, audience }));
app.get('/orders', requireScope('api:read'), (req, res) => res.json({ subject: req.auth.subject }));
const server = app.listen(0, '127.0.0.1', () => console.log(server.address().port));
`,
    );
    const client = await s.client({ scopes: ['api:read'] });
    const user = await s.user({ roles: ['viewer'] });
    const token = await passwordToken(`${s.config.issuer}/token`, client, user);
    const child = spawn(process.execPath, ['server.mjs', s.config.issuer, s.config.audience], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
      const base = `http://127.0.0.1:${chunk.toString().trim()}`;
      const ok = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), { subject: user.id });
      assert.equal((await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } })).status, 401);
    } finally {
      child.kill();
    }
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});
