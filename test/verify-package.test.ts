// A consumer installs this package and imports `identity-service/verify` from
// node_modules, where Node refuses to strip TypeScript: the export must be
// plain JavaScript, and it must work there.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    assert.match(out.resolved, flags.length ? /\/node_modules\/identity-service\/src\/verify\/index\.js$/ : /\/src\/verify\/index\.js$/);
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
